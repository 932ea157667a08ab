"""The OpenTelemetry exporter (``pip install django-rediskit[otel]``): metrics and spans.

Only ``opentelemetry-api`` is used here; the site configures the SDK (providers, exporters) as
for the rest of its telemetry. Each cache call becomes one span named ``cache.<operation>``
with the alias as ``rediskit.alias``; keys and values are never attributes (they may hold user
data, and they would make every span unique). The span is made when the call ends, with the
call's start time, so the hot path with tracing off pays nothing for it.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Iterable, Mapping
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.trace import Status, StatusCode

from django_rediskit.metrics.events import (
    DEVICE_BUCKETS,
    LATENCY_BUCKETS,
    TAG_OPS,
    Sink,
    alias_stats,
    lookups,
)

SCOPE = "django_rediskit"

#: The outage a guarded call met (set by cache_error, read when the same call ends).
_failed: contextvars.ContextVar[tuple[int, str, str] | None] = contextvars.ContextVar(
    "rediskit_otel_failed", default=None
)


def _hits_and_misses(options: CallbackOptions) -> Iterable[Observation]:
    for alias, op, result, count in lookups():
        yield Observation(count, {"alias": alias, "op": op, "result": result})


def _stale_entries(options: CallbackOptions) -> Iterable[Observation]:
    for alias, stats in alias_stats():
        yield Observation(stats.stale, {"alias": alias})


class OpenTelemetrySink(Sink):
    def __init__(self) -> None:
        self.tracer = trace.get_tracer(SCOPE)
        meter = metrics.get_meter(SCOPE)
        self.latency = meter.create_histogram(
            "rediskit.cache.latency",
            unit="s",
            description="Time spent in cache methods.",
            explicit_bucket_boundaries_advisory=list(LATENCY_BUCKETS),
        )
        self.errors = meter.create_counter(
            "rediskit.cache.errors", description="Cache calls that met a Redis outage."
        )
        self.tag_invalidations = meter.create_counter(
            "rediskit.tag.invalidations", description="Tags invalidated."
        )
        self.flushes = meter.create_counter(
            "rediskit.model_invalidation.flushes", description="Post-commit invalidation flushes."
        )
        self.sessions = meter.create_counter("rediskit.sessions", description="Session events.")
        self.devices = meter.create_histogram(
            "rediskit.session.devices",
            description="Live devices of a user right after a login registered one.",
            explicit_bucket_boundaries_advisory=[float(b) for b in DEVICE_BUCKETS],
        )
        self.throttle = meter.create_counter(
            "rediskit.throttle.decisions", description="Throttle decisions by scope and outcome."
        )
        self.breaker = meter.create_counter(
            "rediskit.breaker.transitions", description="Circuit breaker state changes."
        )
        meter.create_observable_counter(
            "rediskit.cache.requests",
            callbacks=[_hits_and_misses],
            description="Cache lookups by alias, operation and result (the cache's counters).",
        )
        meter.create_observable_counter(
            "rediskit.cache.stale_entries",
            callbacks=[_stale_entries],
            description="Tagged entries read as misses because a tag of theirs moved on.",
        )

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
        attributes = {"rediskit.alias": alias, "db.system.name": "redis", "db.operation.name": op}
        self.latency.record(seconds, {"alias": alias, "op": op})
        if op in TAG_OPS:
            self.tag_invalidations.add(len(args), {"alias": alias})
        end = time.time_ns()
        span = self.tracer.start_span(
            f"cache.{op}", start_time=end - int(seconds * 1e9), attributes=attributes
        )
        failed = _failed.get()
        if failed is not None and failed[:2] == (id(backend), op):
            span.set_attribute("error.type", failed[2])
            span.set_status(Status(StatusCode.ERROR, failed[2]))
            _failed.set(None)
        span.end(end_time=end)

    def cache_error(self, backend: Any, op: str, exc: BaseException) -> None:
        self.errors.add(1, {"alias": backend.scope, "op": op})
        _failed.set((id(backend), op, type(exc).__name__))

    def invalidation_flushed(self, tags: list[str], keys: list[str], ok: bool) -> None:
        self.flushes.add(1, {"result": "ok" if ok else "failed"})

    def session_event(self, event: str, device_id: str | None) -> None:
        self.sessions.add(1, {"event": event})

    def session_devices(self, count: int) -> None:
        self.devices.record(count)

    def throttle_decision(self, scope: str, outcome: str, decision: Any) -> None:
        self.throttle.add(1, {"scope": scope, "outcome": outcome})

    def breaker_changed(self, alias: str, is_open: bool) -> None:
        self.breaker.add(1, {"alias": alias, "state": "open" if is_open else "closed"})
