"""The Prometheus exporter (``pip install django-rediskit[prometheus]``).

Names follow Prometheus conventions (``_total`` counters, ``_seconds`` units) and every label
value is bounded (aliases, method names, throttle scopes, fixed words).

Hits and misses are not counted on the hot path: the cache keeps them per alias in
``backend.stats``. In one process a collector reads them at scrape time. Under gunicorn's
multiprocess mode (``PROMETHEUS_MULTIPROC_DIR`` set) the scraped worker cannot read the others'
memory, so each process copies its deltas into prometheus-client counters (files that the
scrape sums) at the end of each request and before each scrape.
"""

from __future__ import annotations

import bisect
import os
import threading
from collections.abc import Iterator, Mapping
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from django_rediskit.metrics.events import (
    DEVICE_BUCKETS,
    LATENCY_BUCKETS,
    LOCAL_EVENTS,
    TAG_OPS,
    Sink,
    alias_stats,
    local_caches,
    lookups,
)


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR")


REQUESTS_HELP = (
    "Cache lookups by alias, operation (get, get_many, get_or_set) and result (hit or miss), "
    "one per key read."
)
STALE_HELP = (
    "Tagged entries read as misses because one of their tags was invalidated after they were "
    "written (each is also counted as a miss)."
)
LOCAL_HELP = "Local cache events: hits, misses, invalidations, flushes, evictions, tracking_losses."
LOCAL_ENTRIES_HELP = "Entries held by the local cache."
LOCAL_BYTES_HELP = "Bytes held by the local cache (values, keys and per-entry overhead)."


class CacheStatsCollector(Collector):
    """Counters the cache keeps anyway (hits and misses; the local cache's events and size),
    read at scrape time: nothing is added to the hot path."""

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        family = CounterMetricFamily(
            "rediskit_cache_requests", REQUESTS_HELP, labels=["alias", "op", "result"]
        )
        for alias, op, result, count in lookups():
            family.add_metric([alias, op, result], count)
        yield family
        stale = CounterMetricFamily("rediskit_cache_stale_entries", STALE_HELP, labels=["alias"])
        for alias, stats in alias_stats():
            stale.add_metric([alias], stats.stale)
        yield stale
        events = CounterMetricFamily(
            "rediskit_local_cache_events", LOCAL_HELP, labels=["alias", "event"]
        )
        entries = GaugeMetricFamily(
            "rediskit_local_cache_entries", LOCAL_ENTRIES_HELP, labels=["alias"]
        )
        size = GaugeMetricFamily("rediskit_local_cache_bytes", LOCAL_BYTES_HELP, labels=["alias"])
        for alias, local in local_caches():
            for event in LOCAL_EVENTS:
                events.add_metric([alias, event], getattr(local.stats, event))
            entries.add_metric([alias], local.entries)
            size.add_metric([alias], local.bytes)
        yield events
        yield entries
        yield size


class QueueCollector(Collector):
    """Length, pending, lag and dead letters of every configured queue, read from Redis at
    scrape time (one pipeline per queue), so every worker reports the same numbers and a
    multiprocess server needs no shared files for them. Queue names are configuration, so
    the label is bounded. Redis down: the queue families are left out of that scrape."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from django_rediskit.connection.policy import RedisUnavailable
        from django_rediskit.messaging.queue import Queue
        from django_rediskit.messaging.worker import configured_queues

        families = {
            name: GaugeMetricFamily(f"rediskit_queue_{name}", help_text, labels=["queue"])
            for name, help_text in (
                ("length", "Entries in the queue's stream (acknowledged ones until trimmed)."),
                ("pending", "Messages delivered and not yet acknowledged."),
                ("lag", "Messages not yet delivered to the consumer group."),
                ("dead_letters", "Messages moved to the dead-letter stream."),
            )
        }
        try:
            for queue in configured_queues():
                stats = Queue(queue).stats()
                families["length"].add_metric([queue], stats.length)
                families["pending"].add_metric([queue], stats.pending)
                if stats.lag is not None:
                    families["lag"].add_metric([queue], stats.lag)
                families["dead_letters"].add_metric([queue], stats.dead_letters)
        except RedisUnavailable:
            return
        yield from families.values()


LATENCY_HELP = "Time spent in cache methods, by alias and operation."


class LatencyTable(Collector):
    """``rediskit_cache_latency_seconds`` kept as plain bucket counts, exported at scrape.

    prometheus-client's ``Histogram.observe`` takes two locks and walks every bucket (about a
    microsecond); one ``bisect`` and two list updates cost a fifth of that, on every cache call.
    Under heavy threading an increment can be lost now and then (``+=`` is not atomic), the
    same trade ``CacheStats`` makes; a histogram of latencies does not need more.
    """

    def __init__(self) -> None:
        #: (alias, op) -> [count per bucket (last: above the last bound) ..., sum of seconds]
        self.rows: dict[tuple[str, str], list[float]] = {}
        self._lock = threading.Lock()

    def row(self, alias: str, op: str) -> list[float]:
        with self._lock:
            return self.rows.setdefault((alias, op), [0] * (len(LATENCY_BUCKETS) + 2))

    def collect(self) -> Iterator[HistogramMetricFamily]:
        family = HistogramMetricFamily(
            "rediskit_cache_latency_seconds", LATENCY_HELP, labels=["alias", "op"]
        )
        for (alias, op), row in list(self.rows.items()):
            counts, total = row[:-1], row[-1]
            buckets, running = [], 0
            for bound, count in zip((*map(str, LATENCY_BUCKETS), "+Inf"), counts, strict=True):
                running += int(count)
                buckets.append((bound, running))
            family.add_metric([alias, op], buckets, total)
        yield family


class Instruments:
    """The prometheus-client objects, made once per process (a registry refuses duplicates)."""

    def __init__(self, registry: CollectorRegistry, multiprocess: bool) -> None:
        self.multiprocess = multiprocess
        self.errors = Counter(
            "rediskit_cache_errors",
            "Cache calls that met a Redis outage, by alias and operation.",
            ["alias", "op"],
            registry=registry,
        )
        # One process: a table read at scrape. Several: prometheus-client's files (which
        # sum across workers), at the price of its observe() on every call.
        self.latency: Histogram | None = None
        self.latency_table: LatencyTable | None = None
        if multiprocess:
            self.latency = Histogram(
                "rediskit_cache_latency_seconds",
                LATENCY_HELP,
                ["alias", "op"],
                buckets=LATENCY_BUCKETS,
                registry=registry,
            )
        else:
            self.latency_table = LatencyTable()
            registry.register(self.latency_table)
        self.tag_invalidations = Counter(
            "rediskit_tag_invalidations",
            "Tags invalidated (each makes every entry carrying it a miss).",
            ["alias"],
            registry=registry,
        )
        self.flushes = Counter(
            "rediskit_model_invalidation_flushes",
            "Post-commit flushes of model invalidations, by result (ok or failed).",
            ["result"],
            registry=registry,
        )
        self.sessions = Counter(
            "rediskit_sessions",
            "Session events: created (a login registered a device) and revoked.",
            ["event"],
            registry=registry,
        )
        self.devices = Histogram(
            "rediskit_session_devices",
            "Live devices of a user right after a login registered one (sessions piling up "
            "show as counts past a few).",
            buckets=DEVICE_BUCKETS,
            registry=registry,
        )
        self.throttle = Counter(
            "rediskit_throttle_decisions",
            "Throttle decisions by scope and outcome (allowed, rejected, fail_open, fail_closed).",
            ["scope", "outcome"],
            registry=registry,
        )
        self.breaker_state = Gauge(
            "rediskit_breaker_state",
            "1 while the alias's circuit breaker is open, 0 once it closed again.",
            ["alias"],
            registry=registry,
            multiprocess_mode="livemax",
        )
        self.breaker_transitions = Counter(
            "rediskit_breaker_transitions",
            "Circuit breaker state changes by alias and new state (open, closed).",
            ["alias", "state"],
            registry=registry,
        )
        self.requests: Counter | None = None
        self.stale: Counter | None = None
        self.local_events: Counter | None = None
        self.local_entries: Gauge | None = None
        self.local_bytes: Gauge | None = None
        if multiprocess:
            self.requests = Counter(
                "rediskit_cache_requests",
                REQUESTS_HELP,
                ["alias", "op", "result"],
                registry=registry,
            )
            self.stale = Counter(
                "rediskit_cache_stale_entries", STALE_HELP, ["alias"], registry=registry
            )
            self.local_events = Counter(
                "rediskit_local_cache_events", LOCAL_HELP, ["alias", "event"], registry=registry
            )
            self.local_entries = Gauge(
                "rediskit_local_cache_entries",
                LOCAL_ENTRIES_HELP,
                ["alias"],
                registry=registry,
                multiprocess_mode="livesum",
            )
            self.local_bytes = Gauge(
                "rediskit_local_cache_bytes",
                LOCAL_BYTES_HELP,
                ["alias"],
                registry=registry,
                multiprocess_mode="livesum",
            )
        else:
            registry.register(CacheStatsCollector())


_instruments: Instruments | None = None
_instruments_lock = threading.Lock()


def instruments() -> Instruments:
    global _instruments
    with _instruments_lock:
        if _instruments is None:
            _instruments = Instruments(REGISTRY, multiprocess_dir() is not None)
        return _instruments


class PrometheusSink(Sink):
    def __init__(self) -> None:
        self.m = instruments()
        # label lookups cost a lock and a dict; the hot path reuses each child
        self._latency: dict[tuple[str, str], Any] = {}
        self._table = self.m.latency_table is not None
        self._synced: dict[tuple[str, ...], int] = {}
        self._sync_lock = threading.Lock()

    def cache_call(
        self,
        backend: Any,
        op: str,
        started: float,
        seconds: float,
        args: tuple[Any, ...],
        kwargs: Mapping[str, Any],
    ) -> None:
        alias: str = backend.scope
        row = self._latency.get((alias, op))
        if row is None:
            row = self._latency[(alias, op)] = self._latency_row(alias, op)
        if self._table:
            row[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
            row[-1] += seconds
        else:
            row.observe(seconds)
        if op in TAG_OPS:
            self.m.tag_invalidations.labels(alias).inc(len(args))

    def _latency_row(self, alias: str, op: str) -> Any:
        if self.m.latency_table is not None:
            return self.m.latency_table.row(alias, op)
        assert self.m.latency is not None
        return self.m.latency.labels(alias, op)

    def cache_error(self, backend: Any, op: str, exc: BaseException) -> None:
        self.m.errors.labels(backend.scope, op).inc()

    def invalidation_flushed(self, tags: list[str], keys: list[str], ok: bool) -> None:
        self.m.flushes.labels("ok" if ok else "failed").inc()

    def session_event(self, event: str, device_id: str | None) -> None:
        self.m.sessions.labels(event).inc()

    def session_devices(self, count: int) -> None:
        self.m.devices.observe(count)

    def throttle_decision(self, scope: str, outcome: str, decision: Any) -> None:
        self.m.throttle.labels(scope, outcome).inc()

    def breaker_changed(self, alias: str, is_open: bool) -> None:
        self.m.breaker_state.labels(alias).set(1 if is_open else 0)
        self.m.breaker_transitions.labels(alias, "open" if is_open else "closed").inc()

    def sync_stats(self) -> None:
        """Multiprocess mode: copy this process's new hits and misses into the shared files."""
        m = self.m
        if m.requests is None or m.stale is None or m.local_events is None:
            return
        with self._sync_lock:
            for alias, op, result, count in lookups():
                self._add(m.requests, (alias, op, result), count)
            for alias, stats in alias_stats():
                self._add(m.stale, (alias,), stats.stale, "s")
            for alias, local in local_caches():
                for event in LOCAL_EVENTS:
                    self._add(m.local_events, (alias, event), getattr(local.stats, event), "l")
                if m.local_entries is not None and m.local_bytes is not None:
                    m.local_entries.labels(alias).set(local.entries)
                    m.local_bytes.labels(alias).set(local.bytes)

    def _add(self, counter: Counter, labels: tuple[str, ...], value: int, kind: str = "") -> None:
        seen = self._synced.get((kind, *labels), 0)
        if value > seen:
            counter.labels(*labels).inc(value - seen)
        # a reset() of the stats starts a new baseline, never a negative increment
        self._synced[(kind, *labels)] = value


def exposition() -> tuple[bytes, str]:
    """The scrape body and its content type: every worker's files in multiprocess mode."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest, multiprocess

    if multiprocess_dir():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        registry.register(QUEUES)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY) + generate_latest(_queues_registry()), CONTENT_TYPE_LATEST


QUEUES = QueueCollector()
_queue_registry: list[CollectorRegistry] = []


def _queues_registry() -> CollectorRegistry:
    """A registry of the queue collector alone (kept off the default registry, which other
    code in the process may scrape or reset)."""
    if not _queue_registry:
        registry = CollectorRegistry()
        registry.register(QUEUES)
        _queue_registry.append(registry)
    return _queue_registry[0]
