"""Shared steps of the queue tests, run on one server, a cluster or behind Sentinel."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from django.conf import settings
from django.test import override_settings

from django_rediskit.connection.policy import forget_policies
from django_rediskit.messaging import Delivery, Queue
from tests.messaging.worker_proc import open_ledger

ROOT = Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def site_on(url: str, prefix: str | None = None, **options: Any) -> Iterator[str]:
    """Point the ``default`` alias at ``url`` under a fresh prefix; yields the prefix."""
    prefix = prefix or f"mq-{uuid.uuid4().hex[:8]}"
    caches = {
        **settings.CACHES,
        "default": {
            "BACKEND": "django_rediskit.cache.RedisCache",
            "LOCATION": url,
            "KEY_PREFIX": prefix,
            "OPTIONS": options,
        },
    }
    with override_settings(CACHES=caches):
        forget_policies()
        yield prefix
    forget_policies()


def start_worker(
    queue: str, ledger: Path, url: str, prefix: str, *, sleep: float = 0.0, visibility: float = 2.0
) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "REDIS_URL": url,
        "REDISKIT_TEST_PREFIX": prefix,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
    }
    # stderr to a file, never an unread pipe (a chatty worker would block on a full pipe)
    log = ledger.with_name(f"{ledger.stem}-{uuid.uuid4().hex[:4]}.log")
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.messaging.worker_proc", queue, str(ledger),
         "--sleep", str(sleep), "--visibility", str(visibility)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=log.open("w"), text=True,
    )  # fmt: skip
    process.log = log  # type: ignore[attr-defined]
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line.strip() == "ready", log.read_text()
    return process


def worker_log(process: subprocess.Popen[str]) -> str:
    log: Path = process.log  # type: ignore[attr-defined]
    return log.read_text()[-3000:]


def ledger_counts(ledger: Path) -> tuple[int, int, int]:
    """(messages processed, sum of their numbers, deliveries recorded)."""
    conn = open_ledger(str(ledger))
    try:
        processed, total = conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(n), 0) FROM processed"
        ).fetchone()
        (attempts,) = conn.execute("SELECT COUNT(*) FROM attempts").fetchone()
        return int(processed), int(total), int(attempts)
    finally:
        conn.close()


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def kill_test(
    url: str,
    prefix: str,
    tmp_path: Path,
    *,
    messages: int = 1000,
    during_second: Callable[[], None] | None = None,
    label: str = "standalone",
) -> dict[str, int]:
    """Enqueue ``messages``; SIGKILL a worker in the middle; a new worker finishes the job.

    Returns the counts; asserts none lost and exact totals (the handler is idempotent).
    ``during_second`` runs while the second worker consumes (a failover, say).
    """
    name = f"kill-{uuid.uuid4().hex[:8]}"
    ledger = tmp_path / f"{name}.sqlite3"
    open_ledger(str(ledger)).close()
    queue = Queue(name, visibility_timeout=2.0, handler_deadline=1.0)
    queue.enqueue_many([{"n": n} for n in range(messages)])
    first = start_worker(name, ledger, url, prefix, sleep=0.003)
    try:
        wait_for(lambda: ledger_counts(ledger)[0] >= messages // 3, 60, "the first worker")
        first.kill()  # SIGKILL: no cleanup, its deliveries stay pending
        first.wait(timeout=10)
    finally:
        if first.poll() is None:
            first.kill()
    at_kill = ledger_counts(ledger)[0]
    pending_at_kill = queue.stats().pending
    second = start_worker(name, ledger, url, prefix, sleep=0.001)
    try:
        if during_second is not None:
            wait_for(lambda: ledger_counts(ledger)[0] >= at_kill + messages // 10, 60, "resume")
            during_second()
        wait_for(lambda: ledger_counts(ledger)[0] >= messages, 120, "every message")
        wait_for(lambda: queue.stats().pending == 0, 30, "every ack")
    except AssertionError:
        print(f"ledger {ledger_counts(ledger)}, {queue.stats()}")
        print("second worker's log:", worker_log(second))
        raise
    finally:
        second.terminate()
        try:
            second.wait(timeout=20)
        except subprocess.TimeoutExpired:
            second.kill()
    processed, total, attempts = ledger_counts(ledger)
    stats = queue.stats()
    result = {
        "processed": processed,
        "deliveries": attempts,
        "duplicates": attempts - processed,
        "processed_at_kill": at_kill,
        "pending_at_kill": pending_at_kill,
        "dead_letters": stats.dead_letters,
    }
    print(f"\nkill test [{label}]: {result}")
    if processed != messages or stats.pending or stats.dead_letters or second.returncode:
        print("first worker's log:", worker_log(first), "second worker's log:", worker_log(second))
    assert processed == messages  # none lost
    assert total == sum(range(messages))  # exact totals with an idempotent handler
    assert attempts >= messages
    assert stats.pending == 0 and stats.dead_letters == 0
    assert second.returncode == 0  # SIGTERM is a graceful stop
    queue.delete()
    return result


def poison_test(*, good: int = 30, max_deliveries: int = 3, label: str = "standalone") -> None:
    """A handler that always raises on one message: it is dead-lettered after
    ``max_deliveries`` deliveries, with the reason, while the other messages keep flowing."""
    queue = Queue(
        f"poison-{uuid.uuid4().hex[:8]}",
        visibility_timeout=1.0,
        handler_deadline=0.5,
        retry_backoff=0.05,
        max_deliveries=max_deliveries,
    )
    seen: list[int] = []
    poison_deliveries: list[int] = []

    def handler(delivery: Delivery) -> None:
        if delivery.payload.get("poison"):
            poison_deliveries.append(delivery.deliveries)
            raise ValueError("cannot digest this")
        seen.append(delivery.payload["n"])

    queue.enqueue_many([{"n": n} for n in range(good // 2)])
    poison_id = queue.enqueue({"poison": True})
    queue.enqueue_many([{"n": n} for n in range(good // 2, good)])
    stop = threading.Event()
    worker = threading.Thread(
        target=queue.consume, args=(handler,), kwargs={"stop": stop, "block_ms": 100, "batch": 5}
    )
    worker.start()
    try:
        wait_for(lambda: queue.stats().dead_letters == 1 and len(seen) == good, 30, "poison")
        # later messages flow too
        queue.enqueue_many([{"n": n} for n in range(good, good + 5)])
        wait_for(lambda: len(seen) == good + 5, 30, "messages after the poison")
    finally:
        stop.set()
        worker.join(timeout=30)
    assert not worker.is_alive()
    assert sorted(seen) == list(range(good + 5))  # each good message exactly once
    assert poison_deliveries == list(range(1, max_deliveries + 1))
    [letter] = queue.dead_letters()
    assert letter.message_id == poison_id
    assert letter.reason == "ValueError: cannot digest this"
    assert letter.deliveries == max_deliveries
    assert letter.fields == {"p": '{"poison":true}'}
    stats = queue.stats()
    assert stats.pending == 0
    print(f"\npoison test [{label}]: {stats}")
    queue.delete()
