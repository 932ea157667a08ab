"""Write-behind counters stay exact when the worker *process* is SIGKILLed, twice, while 8
threads increment: the worker writes absolute totals, so a message redelivered after a kill
(its database write done, its ack not sent) writes the same total again instead of adding."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.core.cache import caches
from django.test import override_settings

from django_rediskit.messaging import Queue
from tests.messaging import handlers, support

pytestmark = pytest.mark.slow


def start_worker(queue: str, db: Path) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "REDIS_URL": settings.REDIS_URL,
        "REDISKIT_TEST_PREFIX": settings.TEST_PREFIX,
        "COUNTER_DB": str(db),
        "WB_QUEUE": queue,
        "WB_SLEEP_AFTER_WRITE": "0.02",
    }
    log = db.with_name(f"worker-{uuid.uuid4().hex[:4]}.log")
    return subprocess.Popen(
        [sys.executable, "-m", "django", "rediskit_worker", "--settings",
         "tests.messaging.settings_worker", "--queue", queue, "--block-ms", "100"],
        cwd=support.ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log.open("w"), text=True,
    )  # fmt: skip


def _writes(db: Path) -> int:
    conn = sqlite3.connect(db, timeout=30)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM writes").fetchone()[0])
    except sqlite3.OperationalError:  # no table yet
        return 0
    finally:
        conn.close()


def test_10000_increments_exact_across_sigkilled_worker_processes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = f"wb-{uuid.uuid4().hex[:8]}"
    db = tmp_path / "counters.sqlite3"
    monkeypatch.setenv("COUNTER_DB", str(db))
    key = "product-1"
    with override_settings(REDISKIT={"MESSAGING": {"WRITE_BEHIND_QUEUE": name}}):
        views = handlers.save_counter
        done: list[int] = []
        barrier = threading.Barrier(9)

        # Increments run only while a worker is reading: a worker's cold start (imports, a
        # fresh venv's bytecode) must not let them all finish before it writes anything.
        reading = threading.Event()

        def bump() -> None:
            barrier.wait()
            for _ in range(1250):
                reading.wait()
                done.append(views.incr(key))
                time.sleep(0.002)  # spread over seconds, so the workers apply many times

        def beating(pid: int) -> bool:
            """Whether worker ``pid`` wrote its heartbeat (written once its consumers run)."""
            backend = caches["default"]
            client = backend.client.get_client(write=True)
            for beat in client.scan_iter(match=backend.feature_key("worker", "*"), count=1000):
                raw = client.get(beat)
                if raw is not None and json.loads(raw).get("pid") == pid:
                    return True
            return False

        def start_reading_worker() -> subprocess.Popen[str]:
            started = start_worker(name, db)
            support.wait_for(lambda: beating(started.pid), 120, "the worker's heartbeat")
            reading.set()
            return started

        threads = [threading.Thread(target=bump) for _ in range(8)]
        for thread in threads:
            thread.start()
        worker = start_reading_worker()
        kills = 0
        pending_at_kill: list[int] = []
        try:
            barrier.wait()
            for threshold in (3000, 7000):
                support.wait_for(lambda t=threshold: len(done) >= t, 120, f"{threshold} incr")
                seen = _writes(db)
                support.wait_for(lambda s=seen: _writes(db) > s + 2, 60, "this worker's writes")
                reading.clear()
                worker.send_signal(signal.SIGKILL)  # mid-stream, no cleanup
                pending_at_kill.append(Queue(name).stats().pending)
                worker.wait(timeout=10)
                kills += 1
                worker = start_reading_worker()
            for thread in threads:
                thread.join()
            support.wait_for(
                lambda: not views.pending(key) and Queue(name).stats().pending == 0,
                60,
                "the last worker to drain",
            )
        finally:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
        conn = sqlite3.connect(db)
        writes = [total for (total,) in conn.execute("SELECT total FROM writes")]
        conn.close()
        assert sorted(done) == list(range(1, 10_001))
        assert handlers.read_counter(key) == 10_000  # exact in the database
        assert views.get(key) == 10_000
        print(
            f"\nwrite-behind, {kills} SIGKILLs: 10000 increments, {len(writes)} database "
            f"writes; messages in flight at the kills (redelivered after): {pending_at_kill}"
        )
        assert kills == 2 and len(writes) < 2_000
        assert any(pending_at_kill)  # a kill did land mid-message: the redelivery was exercised
        assert writes == sorted(writes)  # totals only ever went up: no stale write won
        Queue(name).delete()
