"""The one in-process metrics API: the hooks features call, and the sinks that receive them.

Every hook starts with ``if not ENABLED: return``: with no sink configured an event costs one
global read (measured by ``benchmarks/metrics_overhead.py``). Sinks are kept in a tuple that is
replaced, never mutated, so the hot path iterates it without a lock.

Label values are bounded by construction: aliases come from ``CACHES``, operations are method
names, scopes are throttle scopes named in code, events and outcomes are fixed words. Keys, user
ids and IP addresses never reach a sink except :class:`RequestRecorder`-style sinks of the Debug
Toolbar, which show one request to its developer and export nothing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

D = TypeVar("D")

#: True while at least one sink is installed. Read by the hooks (and by the cache's guard)
#: before any other work.
ENABLED: bool = False

#: Outcomes of a throttle decision (the ``outcome`` label).
OUTCOMES = ("allowed", "rejected", "fail_open", "fail_closed")

#: Cache methods whose positional arguments are tags being invalidated (counted per tag).
TAG_OPS = frozenset({"invalidate_tags", "ainvalidate_tags"})


class Sink:
    """Receives metric events; every method is a no-op so a sink overrides what it needs.

    Methods run on the caller's thread, inside the feature's call: keep them to in-memory work.
    """

    def cache_call(
        self,
        backend: Any,
        op: str,
        started: float,
        seconds: float,
        args: tuple[Any, ...],
        kwargs: Mapping[str, Any],
    ) -> None:
        """A guarded cache method returned (or raised) after ``seconds``."""

    def cache_error(self, backend: Any, op: str, exc: BaseException) -> None:
        """A cache method hit an outage (muted or raised)."""

    def invalidation_queued(self, tags: Iterable[str], keys: Iterable[str]) -> None:
        """Model invalidation queued tags / keys for after the commit."""

    def invalidation_flushed(self, tags: list[str], keys: list[str], ok: bool) -> None:
        """The on-commit flush sent (``ok``) or failed to send the queued tags and keys."""

    def session_event(self, event: str, device_id: str | None) -> None:
        """``created`` (a login registered a device) or ``revoked``."""

    def session_devices(self, count: int) -> None:
        """A login registered a device; its user now has ``count`` live devices."""

    def throttle_decision(self, scope: str, outcome: str, decision: Any) -> None:
        """A throttle decided; ``outcome`` is one of :data:`OUTCOMES`."""

    def breaker_changed(self, alias: str, is_open: bool) -> None:
        """The alias's circuit breaker opened or closed."""


#: Latency buckets for a cache on a LAN: 100 us to 1 s.
LATENCY_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
)


_sinks: tuple[Sink, ...] = ()
_sinks_lock = threading.Lock()


def sinks() -> tuple[Sink, ...]:
    return _sinks


def add_sink(sink: Sink) -> None:
    """Install ``sink`` (idempotent) and switch the hooks on."""
    global _sinks, ENABLED
    with _sinks_lock:
        if sink not in _sinks:
            _sinks = (*_sinks, sink)
        ENABLED = True


def remove_sink(sink: Sink) -> None:
    """Uninstall ``sink``; the hooks go back to their one-read fast path when none is left."""
    global _sinks, ENABLED
    with _sinks_lock:
        _sinks = tuple(s for s in _sinks if s is not sink)
        ENABLED = bool(_sinks)


# --- hooks -----------------------------------------------------------------------------------


def cache_started() -> float:
    """The start time of a guarded call (the guard calls this only when ENABLED)."""
    return time.perf_counter()


def cache_finished(
    backend: Any, op: str, started: float, args: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> None:
    if not ENABLED:
        return
    seconds = time.perf_counter() - started
    for sink in _sinks:
        sink.cache_call(backend, op, started, seconds, args, kwargs)


def cache_error(backend: Any, op: str, exc: BaseException) -> None:
    if not ENABLED:
        return
    for sink in _sinks:
        sink.cache_error(backend, op, exc)


def invalidation_queued(tags: Iterable[str], keys: Iterable[str] = ()) -> None:
    if not ENABLED:
        return
    tags, keys = list(tags), list(keys)
    for sink in _sinks:
        sink.invalidation_queued(tags, keys)


def invalidation_flushed(tags: list[str], keys: list[str], ok: bool) -> None:
    if not ENABLED:
        return
    for sink in _sinks:
        sink.invalidation_flushed(tags, keys, ok)


def session_event(event: str, device_id: str | None = None) -> None:
    if not ENABLED:
        return
    for sink in _sinks:
        sink.session_event(event, device_id)


#: Buckets of the devices-per-user histogram: sessions piling up show as counts past a few.
DEVICE_BUCKETS = (1, 2, 3, 5, 10, 20, 50, 100)


def session_devices(count: int) -> None:
    if not ENABLED:
        return
    for sink in _sinks:
        sink.session_devices(count)


def outcome_of(decision: Any) -> str:
    if decision.degraded:
        return "fail_open" if decision.allowed else "fail_closed"
    return "allowed" if decision.allowed else "rejected"


def throttle_decision(scope: str, decision: D) -> D:
    """Report a throttle decision and return it, so the limiter can ``return`` through this."""
    if not ENABLED:
        return decision
    outcome = outcome_of(decision)
    for sink in _sinks:
        sink.throttle_decision(scope, outcome, decision)
    return decision


def breaker_changed(alias: str, is_open: bool) -> None:
    if not ENABLED:
        return
    for sink in _sinks:
        sink.breaker_changed(alias, is_open)


#: Counters of the local cache exported as ``rediskit_local_cache_events_total{event=...}``.
LOCAL_EVENTS = ("hits", "misses", "invalidations", "flushes", "evictions", "tracking_losses")


def local_caches() -> Iterable[tuple[str, Any]]:
    """(alias, LocalCache) of every alias with ``OPTIONS["LOCAL_CACHE"]`` in this process."""
    from django_rediskit.aliases import backend_for_alias, rediskit_aliases

    found = []
    for alias in rediskit_aliases():
        local = backend_for_alias(alias).local_cache
        if local is not None:
            found.append((alias, local))
    return found


def alias_stats() -> Iterable[tuple[str, Any]]:
    """(alias, CacheStats) of every rediskit cache of this process: the hit and miss counters
    the cache keeps anyway, which exporters read when scraped instead of hooking each lookup."""
    from django_rediskit.aliases import backend_for_alias, rediskit_aliases

    return [(alias, backend_for_alias(alias).stats) for alias in rediskit_aliases()]


def lookups() -> Iterable[tuple[str, str, str, int]]:
    """(alias, op, result, count) of every rediskit cache of this process: its lookups by
    operation (``stats.LOOKUP_OPS``) and result (``hit``, ``miss``), as exporters label them."""
    return [
        (alias, op, result, count)
        for alias, stats in alias_stats()
        for op, counts in stats.ops.items()
        for result, count in (("hit", counts.hits), ("miss", counts.misses))
    ]
