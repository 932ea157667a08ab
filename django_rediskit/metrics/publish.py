"""Per-process totals published to Redis, so ``rediskit_info --watch`` sums every worker.

Each process keeps plain in-memory totals (a :class:`Totals` sink) and, at most once per
``REDISKIT["METRICS"]["PUBLISH"]`` seconds, at the end of a request, writes them as one JSON
string under ``<prefix>:mx:<host>:<pid>`` with a TTL of three intervals: one SET per interval
per process, and a worker that dies drops out of the sum by itself. The totals hold the same
bounded labels as the exporters (aliases, scopes, fixed words), never keys or identities.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections import Counter
from collections.abc import Mapping
from typing import Any

from django_rediskit.metrics.events import TAG_OPS, Sink, alias_stats

logger = logging.getLogger("django_rediskit.metrics")

#: SCAN budget of one read of the published totals (there is one key per process).
READ_BUDGET = 10_000


class Totals(Sink):
    """Counts since the process started, by the exporters' labels joined with ``|``."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.breaker_open: dict[str, bool] = {}

    def cache_call(
        self,
        backend: Any,
        op: str,
        started: float,
        seconds: float,
        args: tuple[Any, ...],
        kwargs: Mapping[str, Any],
    ) -> None:
        self.counts["calls|" + backend.scope] += 1
        if op in TAG_OPS:
            self.counts["tag_invalidations|" + backend.scope] += len(args)

    def cache_error(self, backend: Any, op: str, exc: BaseException) -> None:
        self.counts["errors|" + backend.scope] += 1

    def invalidation_flushed(self, tags: list[str], keys: list[str], ok: bool) -> None:
        self.counts["flushes|" + ("ok" if ok else "failed")] += 1

    def session_event(self, event: str, device_id: str | None) -> None:
        self.counts["sessions|" + event] += 1

    def throttle_decision(self, scope: str, outcome: str, decision: Any) -> None:
        self.counts[f"throttle|{scope}|{outcome}"] += 1

    def breaker_changed(self, alias: str, is_open: bool) -> None:
        self.breaker_open[alias] = is_open

    def snapshot(self) -> dict[str, Any]:
        counts: dict[str, int] = dict(self.counts)
        for alias, stats in alias_stats():
            counts["hits|" + alias] = stats.hits
            counts["misses|" + alias] = stats.misses
        return {
            "counts": counts,
            "breaker_open": dict(self.breaker_open),
            "pid": os.getpid(),
            "at": time.time(),
        }


def process_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Publisher:
    def __init__(self, totals: Totals, interval: float, alias: str) -> None:
        self.totals = totals
        self.interval = interval
        self.alias = alias
        self._next = 0.0
        self._lock = threading.Lock()

    def maybe_publish(self, **_: Any) -> None:
        """A ``request_finished`` receiver: publish when the interval has passed."""
        now = time.monotonic()
        if now < self._next or not self._lock.acquire(blocking=False):
            return
        try:
            self._next = now + self.interval
            self.publish()
        finally:
            self._lock.release()

    def publish(self) -> bool:
        """Write this process's totals now; an outage skips one publication (logged once)."""
        from redis.exceptions import RedisError

        from django_rediskit.aliases import backend_for_alias

        backend = backend_for_alias(self.alias)
        key = backend.feature_key("metrics", process_id())
        try:
            backend.topology.client_for(key, True).set(
                key, json.dumps(self.totals.snapshot()), px=int(self.interval * 3000)
            )
        except (RedisError, OSError) as exc:
            backend.outage_log("metrics.publish", exc, "totals not published")
            return False
        return True


def read_published(alias: str) -> list[dict[str, Any]]:
    """Every live process's published totals for ``alias``'s Redis (bounded SCAN)."""
    from django_rediskit.aliases import backend_for_alias
    from django_rediskit.patterns import glob_escape

    backend = backend_for_alias(alias)
    pattern = glob_escape(backend.feature_key("metrics", "")) + "*"
    found: list[dict[str, Any]] = []
    topology = backend.topology
    seen = 0
    for key in topology.scan_iter(pattern, 500, write=True):
        seen += 1
        if seen > READ_BUDGET:
            break
        name = key.decode() if isinstance(key, bytes) else str(key)
        raw = topology.client_for(name, True).get(name)
        if raw is None:
            continue
        try:
            data = json.loads(raw)
        except ValueError:
            continue
        if isinstance(data, dict) and isinstance(data.get("counts"), dict):
            found.append(data)
    return found


def summed(published: list[dict[str, Any]]) -> dict[str, Any]:
    """The totals of all processes added up; a breaker counts as open if any process has it so."""
    counts: Counter[str] = Counter()
    breaker: dict[str, bool] = {}
    for data in published:
        for name, value in data["counts"].items():
            if isinstance(value, int):
                counts[name] += value
        for alias, is_open in (data.get("breaker_open") or {}).items():
            breaker[alias] = breaker.get(alias, False) or bool(is_open)
    return {"counts": dict(counts), "breaker_open": breaker, "processes": len(published)}
