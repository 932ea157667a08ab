"""Handlers that the worker command tests name in settings (``settings_worker``)."""

from __future__ import annotations

import os
import sqlite3
import time

from django_rediskit.messaging import Delivery
from django_rediskit.messaging.writebehind import write_behind
from tests.messaging.worker_proc import open_ledger


def record_slowly(delivery: Delivery) -> None:
    """Record the start, sleep ``HANDLER_SLEEP`` s, record the finish (the SIGTERM test checks
    that every started message finishes and only finished ones are acknowledged)."""
    ledger = open_ledger(os.environ["LEDGER"])
    try:
        ledger.execute("INSERT INTO attempts VALUES (?, ?)", (delivery.id, "start"))
        time.sleep(float(os.environ.get("HANDLER_SLEEP", "0.2")))
        ledger.execute(
            "INSERT OR IGNORE INTO processed VALUES (?, ?)", (delivery.payload["n"], delivery.id)
        )
    finally:
        ledger.close()


LAST_SEEN: dict[str, object] = {}


@write_behind
def save_last_seen(key: str, value: object) -> None:
    """A function target: the worker calls it with the latest value of a key."""
    LAST_SEEN[key] = value


def not_marked(key: str, value: object) -> None:
    """Not a @write_behind function: a queued message naming it must be refused."""
    LAST_SEEN["hacked"] = True


def _counters() -> sqlite3.Connection:
    """A counter table in an SQLite file (``COUNTER_DB``) that a worker process shares."""
    conn = sqlite3.connect(os.environ["COUNTER_DB"], timeout=30, isolation_level=None)
    conn.execute("CREATE TABLE IF NOT EXISTS counters (key TEXT PRIMARY KEY, total INTEGER)")
    conn.execute("CREATE TABLE IF NOT EXISTS writes (key TEXT, total INTEGER)")
    return conn


def read_counter(key: str) -> int | None:
    conn = _counters()
    try:
        row = conn.execute("SELECT total FROM counters WHERE key = ?", (key,)).fetchone()
        return None if row is None else int(row[0])
    finally:
        conn.close()


@write_behind(read=read_counter)
def save_counter(key: str, value: object) -> None:
    """The durable write of a write-behind counter: the absolute total (idempotent)."""
    conn = _counters()
    try:
        conn.execute("INSERT OR REPLACE INTO counters VALUES (?, ?)", (key, value))
        conn.execute("INSERT INTO writes VALUES (?, ?)", (key, value))
    finally:
        conn.close()
    # widen the window between the database write and the ack, where a SIGKILL hurts most
    time.sleep(float(os.environ.get("WB_SLEEP_AFTER_WRITE", "0")))
