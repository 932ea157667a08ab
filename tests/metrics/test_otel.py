"""OpenTelemetry: spans per cache call and metrics, captured with the SDK's in-memory exporters."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.core.cache import caches
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from django_rediskit.throttling import RateLimiter
from tests import servers
from tests.metrics.conftest import metrics_on
from tests.metrics.test_prometheus import _private_alias

_spans = InMemorySpanExporter()
_reader = InMemoryMetricReader()
_installed = False


@pytest.fixture
def otel() -> Iterator[tuple[InMemorySpanExporter, InMemoryMetricReader]]:
    """The SDK as a site configures it: global providers are set once per process."""
    global _installed
    if not _installed:
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(_spans))
        trace.set_tracer_provider(provider)
        metrics.set_meter_provider(MeterProvider(metric_readers=[_reader]))
        _installed = True
    _spans.clear()
    with metrics_on(OPENTELEMETRY=True):
        yield _spans, _reader


def _points(reader: InMemoryMetricReader, name: str) -> list[Any]:
    data = reader.get_metrics_data()
    found = []
    for resource in data.resource_metrics if data else []:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name == name:
                    found.extend(metric.data.data_points)
    return found


def test_one_span_per_cache_call_named_after_the_operation(otel: Any) -> None:
    spans, _ = otel
    cache = caches["default"]
    cache.set("user:42:secret", "v")
    cache.get("user:42:secret")
    cache.get_many(["a", "b"])
    finished = spans.get_finished_spans()
    assert [span.name for span in finished] == ["cache.set", "cache.get", "cache.get_many"]
    for span in finished:
        assert span.attributes["rediskit.alias"] == "default"
        assert span.attributes["db.operation.name"] == span.name.removeprefix("cache.")
        assert "user:42" not in str(dict(span.attributes))  # never key contents
        assert span.end_time >= span.start_time


def test_metrics_hits_latency_and_throttle(otel: Any) -> None:
    _, reader = otel
    cache = caches["other"]
    cache.set("k", 1)
    cache.get("k")
    cache.get("nope")
    RateLimiter("1/min").hit("otel", "x")
    RateLimiter("1/min").hit("otel", "x")
    requests = {
        (p.attributes["alias"], p.attributes["op"], p.attributes["result"]): p.value
        for p in _points(reader, "rediskit.cache.requests")
    }
    assert requests[("other", "get", "hit")] >= 1 and requests[("other", "get", "miss")] >= 1
    latency = [
        p
        for p in _points(reader, "rediskit.cache.latency")
        if p.attributes == {"alias": "other", "op": "get"}
    ]
    assert latency and latency[0].count >= 2
    assert latency[0].explicit_bounds[0] == 0.0001  # seconds, not the SDK's ms defaults
    outcomes = {
        p.attributes["outcome"]: p.value
        for p in _points(reader, "rediskit.throttle.decisions")
        if p.attributes["scope"] == "otel"
    }
    assert outcomes["allowed"] >= 1 and outcomes["rejected"] >= 1


def test_an_outage_marks_the_span_as_error(
    otel: Any, private_redis: servers.RedisServer, settings: Any
) -> None:
    spans, reader = otel
    alias = _private_alias(settings, private_redis)
    private_redis.stop()
    assert caches[alias].get("x") is None
    span = [s for s in spans.get_finished_spans() if s.attributes["rediskit.alias"] == alias][-1]
    assert span.name == "cache.get"
    assert span.status.status_code == trace.StatusCode.ERROR
    assert span.attributes["error.type"] in ("ConnectionError", "ConnectionRefusedError")
    errors = [p for p in _points(reader, "rediskit.cache.errors") if p.attributes["alias"] == alias]
    assert errors and errors[0].value == 1
