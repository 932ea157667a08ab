"""``manage.py rediskit_worker``: SIGTERM in a real subprocess, heartbeat, bad arguments."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.test import override_settings

from django_rediskit.inspector import config as inspector_config
from django_rediskit.inspector.access import Target
from django_rediskit.messaging import Queue
from django_rediskit.messaging.worker import Worker, heartbeat_key, live_workers
from tests.messaging import support
from tests.messaging.worker_proc import open_ledger

pytestmark = pytest.mark.slow


def start_command(
    queue: str, ledger: Path, *args: str, sleep: float = 0.3
) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "REDIS_URL": settings.REDIS_URL,
        "REDISKIT_TEST_PREFIX": settings.TEST_PREFIX,
        "WORKER_QUEUE": queue,
        "LEDGER": str(ledger),
        "HANDLER_SLEEP": str(sleep),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "django", "rediskit_worker", "--settings",
         "tests.messaging.settings_worker", "--queue", queue, "--block-ms", "200", *args],
        cwd=support.ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def rows(ledger: Path) -> tuple[list[str], set[str]]:
    """(started message ids in order, finished message ids)."""
    conn = open_ledger(str(ledger))
    try:
        started = [r[0] for r in conn.execute("SELECT message FROM attempts ORDER BY rowid")]
        finished = {r[0] for r in conn.execute("SELECT message FROM processed")}
        return started, finished
    finally:
        conn.close()


def test_sigterm_finishes_current_messages_and_acks_nothing_unfinished(tmp_path: Path) -> None:
    name = f"w-{uuid.uuid4().hex[:8]}"
    ledger = tmp_path / "ledger.sqlite3"
    open_ledger(str(ledger)).close()
    with override_settings(REDISKIT={"MESSAGING": {"QUEUES": {name: "x.y"}}}):
        queue = Queue(name, visibility_timeout=30, handler_deadline=5)
        ids = queue.enqueue_many([{"n": n} for n in range(40)])
        worker = start_command(name, ledger, "--concurrency", "2", "--batch", "5")
        try:
            support.wait_for(lambda: len(rows(ledger)[1]) >= 4, 30, "the worker to start")
            # the heartbeat is visible while it runs, with a TTL
            beats = live_workers()
            mine = [b for b in beats if b["pid"] == worker.pid]
            assert len(mine) == 1 and mine[0]["queues"] == [name] and mine[0]["concurrency"] == 2
            key = heartbeat_key("default", mine[0]["id"])
            assert 0 < queue.client.ttl(key) <= 2
            started_before, _ = rows(ledger)
            worker.send_signal(signal.SIGTERM)
            out, err = worker.communicate(timeout=30)
        finally:
            if worker.poll() is None:
                worker.kill()
        assert worker.returncode == 0, err
        assert "stopped" in out
        started, finished = rows(ledger)
        assert set(started) == finished  # every message started was finished
        assert len(started) == len(set(started))  # and run once
        # acknowledged == finished: nothing unfinished was acked, nothing finished left pending
        pending = {
            p["message_id"].decode()
            for p in queue.client.xpending_range(queue.stream_key, queue.group, "-", "+", 100)
        }
        delivered = set(ids[: len(started) + len(pending)])
        assert pending.isdisjoint(finished)
        assert delivered - pending == finished
        assert len(finished) < 40  # it did stop early
        assert len(started) >= len(started_before)
        # the heartbeat went with the worker
        assert not queue.client.exists(key)
        # a new worker gets the handed-back messages at once (not after the 30 s timeout)
        second = start_command(name, ledger, sleep=0.02)
        try:
            support.wait_for(lambda: len(rows(ledger)[1]) == 40, 60, "the rest")
            second.send_signal(signal.SIGTERM)
            second.communicate(timeout=30)
        finally:
            if second.poll() is None:
                second.kill()
        started, finished = rows(ledger)
        assert finished == {str(i) for i in ids} and len(started) == 40  # no duplicates
        assert json.loads(json.dumps(queue.stats().__dict__))["pending"] == 0
        queue.delete()


def test_unknown_queue_and_bad_concurrency_are_command_errors() -> None:
    with pytest.raises(CommandError, match="Unknown queue"):
        call_command("rediskit_worker", "--queue", "nope")
    with pytest.raises(CommandError, match="concurrency"):
        call_command("rediskit_worker", "--concurrency", "0")
    with (
        override_settings(REDISKIT={"MESSAGING": {"QUEUES": {"a": {"HANDLR": "x"}}}}),
        pytest.raises(CommandError, match="HANDLER"),
    ):
        call_command("rediskit_worker", "--queue", "a")
    with (
        override_settings(REDISKIT={"MESSAGING": {"QUEUES": {"a": "no.such.module.handler"}}}),
        pytest.raises(CommandError),
    ):
        call_command("rediskit_worker", "--queue", "a")


def test_list_prints_live_workers_and_forgets_stopped_ones(
    capsys: pytest.CaptureFixture[str],
) -> None:
    name = f"w-{uuid.uuid4().hex[:8]}"
    with override_settings(REDISKIT={"MESSAGING": {"HEARTBEAT_INTERVAL": 0.2}}):
        queue = Queue(name)
        worker = Worker([(queue, lambda d: None)], concurrency=3, block_ms=50)
        thread = threading.Thread(target=worker.run)
        thread.start()
        try:
            support.wait_for(
                lambda: any(b["id"] == worker.worker_id for b in live_workers()), 10, "a beat"
            )
            call_command("rediskit_worker", "--list")
            listed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
            [mine] = [beat for beat in listed if beat["id"] == worker.worker_id]
            assert mine["queues"] == [name] and mine["concurrency"] == 3
            assert mine["pid"] == os.getpid()
            # the admin inspector files the heartbeat under the "worker" namespace
            key = heartbeat_key("default", worker.worker_id)
            target = Target.for_alias("default", inspector_config.load())
            assert target.namespace_of(key.encode()) == "worker"
            assert dict(target.presets())["worker"].endswith(":wk:*)")
        finally:
            worker.stop.set()
            thread.join(timeout=30)
        assert not thread.is_alive()
        call_command("rediskit_worker", "--list")
        out = capsys.readouterr().out
        assert worker.worker_id not in out
        queue.delete()


def test_the_write_behind_queue_is_always_configured() -> None:
    from django_rediskit.messaging.worker import configured_queues, select_queues

    with override_settings(
        REDISKIT={"MESSAGING": {"QUEUES": {"mail": "tests.messaging.handlers.record_slowly"}}}
    ):
        queues = configured_queues()
        assert set(queues) == {"mail", "write-behind"}
        assert queues["write-behind"]["HANDLER"] == "django_rediskit.messaging.writebehind.apply"
        [(queue, handler)] = select_queues(["write-behind"])
        assert queue.name == "write-behind" and handler.__name__ == "apply"
