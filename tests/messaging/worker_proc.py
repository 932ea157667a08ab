"""A queue worker in its own process, for the kill and restart tests.

``python -m tests.messaging.worker_proc QUEUE LEDGER [--sleep S] [--visibility S]``

The handler records each message in an SQLite ledger (a file shared with the test process):
every delivery in ``attempts``, and the message once in ``processed`` (``INSERT OR IGNORE`` on
the message number: the idempotent handler whose totals must come out exact). Redis is the one
of ``REDIS_URL`` (see tests/settings.py), keys under ``REDISKIT_TEST_PREFIX``. SIGTERM stops the
loop gracefully; SIGKILL is the crash under test.
"""

from __future__ import annotations

import argparse
import os
import signal
import sqlite3
import sys
import threading
import time


def open_ledger(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE IF NOT EXISTS processed (n INTEGER PRIMARY KEY, message TEXT)")
    conn.execute("CREATE TABLE IF NOT EXISTS attempts (message TEXT, consumer TEXT)")
    return conn


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("queue")
    parser.add_argument("ledger")
    parser.add_argument("--sleep", type=float, default=0.0)
    parser.add_argument("--visibility", type=float, default=2.0)
    parser.add_argument("--batch", type=int, default=10)
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    import django

    django.setup()
    from django_rediskit.messaging import Delivery, Queue

    ledger = open_ledger(args.ledger)
    queue = Queue(
        args.queue,
        visibility_timeout=args.visibility,
        handler_deadline=args.visibility / 2,
        retry_backoff=0.1,
    )
    consumer = f"proc-{os.getpid()}"

    def handle(delivery: Delivery) -> None:
        if args.sleep:
            time.sleep(args.sleep)
        ledger.execute("BEGIN IMMEDIATE")
        ledger.execute("INSERT INTO attempts VALUES (?, ?)", (delivery.id, consumer))
        ledger.execute(
            "INSERT OR IGNORE INTO processed VALUES (?, ?)", (delivery.payload["n"], delivery.id)
        )
        ledger.execute("COMMIT")

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print("ready", flush=True)
    queue.consume(handle, batch=args.batch, block_ms=200, stop=stop, consumer=consumer)
    print("stopped", flush=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
