"""Shared set-up for the tag benchmarks: a private redis-server and a backend on it.

Run the scripts from the repository root (``python benchmarks/tags_invalidate.py``); each starts
its own redis-server through ``tests/servers.py`` and stops it at the end.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def setup_django() -> None:
    import django
    from django.conf import settings

    if not settings.configured:
        settings.configure(
            SECRET_KEY="benchmark-secret",
            INSTALLED_APPS=["django_rediskit"],
            CACHES={"default": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"}},
            USE_TZ=True,
        )
        django.setup()


def backend(url: str, prefix: str = "bench", **options: Any) -> Any:
    """A rediskit backend on ``url`` (outside settings.CACHES)."""
    setup_django()
    from django_rediskit.cache.backend import RedisCache

    options.setdefault("CIRCUIT_BREAKER", False)
    return RedisCache(url, {"KEY_PREFIX": prefix, "OPTIONS": options})


def start_server(*extra_args: str) -> Any:
    from tests.servers import RedisServer

    return RedisServer(extra_args).start()


def percentiles(samples: list[float]) -> str:
    """p50 / p99 / max in microseconds."""
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return (
        f"p50 {statistics.median(ordered) * 1e6:7.1f} µs  p99 {p99 * 1e6:7.1f} µs  "
        f"max {ordered[-1] * 1e6:8.1f} µs"
    )


def _probe(url: str, seconds: float, out: Any) -> None:
    import redis

    client = redis.Redis.from_url(url)
    samples = []
    stop = time.perf_counter() + seconds
    while time.perf_counter() < stop:
        started = time.perf_counter()
        client.ping()
        samples.append((started, time.perf_counter() - started))
    out.send(samples)


class Prober:
    """PINGs from a separate process (so the GIL of the measuring process is not what is
    measured) and reports the worst latency of the pings that overlapped a window."""

    def __init__(self, url: str, seconds: float) -> None:
        import multiprocessing

        context = multiprocessing.get_context("spawn")
        self._receiver, sender = context.Pipe(duplex=False)
        self._process = context.Process(target=_probe, args=(url, seconds, sender), daemon=True)
        self._process.start()

    def collect(self) -> None:
        self._samples: list[tuple[float, float]] = self._receiver.recv()
        self._process.join()

    def worst(self, start: float, end: float) -> tuple[float, int]:
        """Worst latency of the pings overlapping [start, end] (call collect() first)."""
        during = [lat for began, lat in self._samples if began <= end and began + lat >= start]
        return (max(during) if during else 0.0), len(during)
