"""``rediskit_info --watch``: totals published by other processes, summed on screen."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.cache import caches
from django.core.management import CommandError, call_command
from rich.console import Console

from django_rediskit.aliases import backend_for_alias
from django_rediskit.metrics import setup
from django_rediskit.metrics.publish import Publisher, Totals, read_published, summed
from django_rediskit.metrics.watch import watch
from tests import servers
from tests.metrics.conftest import metrics_on
from tests.metrics.test_prometheus import _private_alias

ROOT = Path(__file__).resolve().parents[2]

WORKER = """
import django
django.setup()
from django.core.cache import caches
from django_rediskit.metrics import setup
from django_rediskit.throttling import RateLimiter
cache = caches["default"]
cache.set("w", 1)
for _ in range(5):
    cache.get("w")
cache.get("absent")
for _ in range(3):
    RateLimiter("1/min").hit("watched", "client")
assert setup.publisher().publish()
"""


def _env(settings_module: str) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": settings_module,
        "REDIS_URL": settings.REDIS_URL,
        "REDISKIT_TEST_PREFIX": settings.TEST_PREFIX,
    }


def _run_worker() -> None:
    subprocess.run(
        [sys.executable, "-c", WORKER],
        cwd=ROOT,
        env=_env("tests.metrics.publish_site"),
        check=True,
        timeout=60,
    )


@pytest.fixture(autouse=True)
def _drop_published() -> Iterator[None]:
    yield
    backend = caches["default"]
    client = backend.client.get_client(write=True)
    for namespace in ("metrics", "throttle"):  # published metrics outlive clear(), by design
        keys = list(client.scan_iter(match=backend.feature_key(namespace, "*"), count=1000))
        if keys:
            client.unlink(*keys)


def test_frames_change_when_another_process_uses_the_cache() -> None:
    console = Console(record=True, width=140, force_terminal=False)
    shown = watch(
        ["default"],
        console,
        interval=0.05,
        iterations=2,
        after_frame=lambda frame: _run_worker() if frame == 1 else None,
    )
    assert shown == 2
    text = console.export_text()
    first, second = text.split("--- refresh 2")
    assert "this one only" in first and "watched" not in first
    assert re.search(r"hits / misses\s+│ 5 / 1", second), second
    assert re.search(r"hit ratio\s+│ 83\.3%", second)
    assert re.search(r"throttle rejections\s+│ watched: 2", second)
    assert re.search(r"processes\s+│ 1 ", second)


def test_published_totals_sum_processes_and_expire() -> None:
    _run_worker()
    _run_worker()
    total = summed(read_published("default"))
    assert total["processes"] == 2
    assert total["counts"]["hits|default"] == 10
    # 1/min: the first worker is admitted once, then every hit of both is rejected
    assert total["counts"]["throttle|watched|rejected"] == 5
    backend = backend_for_alias("default")
    client = backend.client.get_client(write=True)
    keys = list(client.scan_iter(match=backend.feature_key("metrics", "*")))
    assert len(keys) == 2 and all(0 < client.pttl(key) <= 90_000 for key in keys)


def test_publish_during_an_outage_skips_without_raising(
    private_redis: servers.RedisServer, settings: Any
) -> None:
    alias = _private_alias(settings, private_redis)
    publisher = Publisher(Totals(), 1.0, alias)
    assert publisher.publish()
    assert summed(read_published(alias))["processes"] == 1
    private_redis.stop()
    assert publisher.publish() is False


def test_publisher_on_request_finished_at_most_once_per_interval(settings: Any) -> None:
    from django.test import Client

    with metrics_on(PUBLISH=60):
        publisher = setup.publisher()
        assert publisher is not None
        settings.ROOT_URLCONF = "tests.metrics.urls"
        Client().get("/metrics/")  # 404 (Prometheus off), but the request finished
        Client().get("/metrics/")
        assert summed(read_published("default"))["processes"] == 1
        assert publisher._next > time.monotonic() + 50  # the second request did not publish


def test_bad_watch_arguments() -> None:
    with pytest.raises(CommandError):
        call_command("rediskit_info", "--watch", "--interval", "0")


def test_live_view_redraws_in_a_terminal() -> None:
    """The command itself in a pseudo-terminal: rich redraws in place, and the figures follow
    what this process publishes."""
    leader, follower = pty.openpty()
    os.set_blocking(leader, False)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "django",
            "rediskit_info",
            "--watch",
            "--alias",
            "default",
            "--interval",
            "0.2",
        ],
        cwd=ROOT,
        env={**_env("tests.settings"), "COLUMNS": "120", "LINES": "40", "TERM": "xterm"},
        stdin=follower,
        stdout=follower,
        stderr=follower,
    )
    os.close(follower)
    screen = b""

    def read_until(pattern: str, timeout: float = 30) -> str:
        nonlocal screen
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 0.2)
            if ready:
                try:
                    screen += os.read(leader, 65536)
                except OSError:
                    break
            text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen.decode(errors="replace"))
            if re.search(pattern, text):
                return text
        raise AssertionError(f"{pattern!r} never shown:\n{screen.decode(errors='replace')}")

    try:
        read_until(r"hits / misses")
        assert b"\x1b[" in screen  # drawn with terminal control codes, not printed as a log
        with metrics_on(PUBLISH=30):
            cache = caches["default"]
            cache.set("live", 1)
            for _ in range(7):
                cache.get("live")
            publisher = setup.publisher()
            assert publisher is not None and publisher.publish()
            stats = backend_for_alias("default").stats  # the whole process's, since it began
            assert stats.hits >= 7
            read_until(rf"hits / misses\s+│ {stats.hits} / {stats.misses}")
    finally:
        process.terminate()
        process.wait(timeout=20)
        os.close(leader)
