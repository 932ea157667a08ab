"""Each Prometheus metric moves as its feature acts, on a real Redis."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from django.core.cache import caches
from django.db import transaction
from django.test import Client, override_settings

from django_rediskit import pending
from django_rediskit.connection.policy import forget_policies
from django_rediskit.metrics import events
from django_rediskit.throttling import RateLimiter
from tests import servers

Sample = Callable[..., float]


def test_off_by_default_no_sink_and_no_events() -> None:
    assert events.ENABLED is False and events.sinks() == ()
    caches["default"].get("nothing")  # runs the guard's fast path without error


def lookups(prometheus: Sample, op: str) -> tuple[float, float]:
    """(hits, misses) of ``op`` on the default alias."""
    return (
        prometheus("rediskit_cache_requests_total", alias="default", op=op, result="hit"),
        prometheus("rediskit_cache_requests_total", alias="default", op=op, result="miss"),
    )


def test_hits_and_misses_are_read_from_the_cache_counters_by_operation(
    prometheus: Sample,
) -> None:
    cache = caches["default"]
    get, many, gos = (lookups(prometheus, op) for op in ("get", "get_many", "get_or_set"))
    cache.set("k", 1)
    assert cache.get("k") == 1
    assert cache.get("absent") is None
    cache.get_many(["k", "absent", "absent2"])
    assert cache.get_or_set("computed", lambda: 2) == 2  # a miss, then the compute
    assert cache.get_or_set("computed", lambda: 3) == 2  # a hit
    assert lookups(prometheus, "get") == (get[0] + 1, get[1] + 1)
    assert lookups(prometheus, "get_many") == (many[0] + 1, many[1] + 2)
    assert lookups(prometheus, "get_or_set") == (gos[0] + 1, gos[1] + 1)


def test_an_entry_of_an_invalidated_tag_counts_one_stale_read(prometheus: Sample) -> None:
    cache = caches["default"]
    stale = prometheus("rediskit_cache_stale_entries_total", alias="default")
    misses = lookups(prometheus, "get")[1]
    cache.set("tagged", 1, tags=["stale-test"])
    assert cache.get("tagged") == 1
    assert prometheus("rediskit_cache_stale_entries_total", alias="default") == stale
    cache.invalidate_tags("stale-test")
    assert cache.get("tagged") is None
    assert prometheus("rediskit_cache_stale_entries_total", alias="default") == stale + 1
    assert lookups(prometheus, "get")[1] == misses + 1  # a stale read is a miss too
    assert cache.get("never-written") is None  # a plain miss is not stale
    assert prometheus("rediskit_cache_stale_entries_total", alias="default") == stale + 1


def test_latency_histogram_by_alias_and_operation(prometheus: Sample) -> None:
    before = prometheus("rediskit_cache_latency_seconds_count", alias="other", op="get")
    before_set = prometheus("rediskit_cache_latency_seconds_count", alias="other", op="set")
    caches["other"].set("a", 1)
    for _ in range(3):
        caches["other"].get("a")
    assert prometheus("rediskit_cache_latency_seconds_count", alias="other", op="get") == before + 3
    assert (
        prometheus("rediskit_cache_latency_seconds_count", alias="other", op="set")
        == before_set + 1
    )
    assert prometheus("rediskit_cache_latency_seconds_sum", alias="other", op="get") > 0


def test_tag_invalidations_count_tags(prometheus: Sample) -> None:
    before = prometheus("rediskit_tag_invalidations_total", alias="default")
    caches["default"].set("p", 1, tags=["product:1"])
    caches["default"].invalidate_tags("product:1", "product:2")
    assert prometheus("rediskit_tag_invalidations_total", alias="default") == before + 2
    assert caches["default"].get("p") is None


@pytest.mark.django_db(transaction=True)
def test_model_invalidation_flush_counted_after_commit_only(prometheus: Sample) -> None:
    ok = prometheus("rediskit_model_invalidation_flushes_total", result="ok")
    with transaction.atomic():
        pending.queue(["product:9"], "default")
        assert prometheus("rediskit_model_invalidation_flushes_total", result="ok") == ok
    assert prometheus("rediskit_model_invalidation_flushes_total", result="ok") == ok + 1
    with pytest.raises(RuntimeError), transaction.atomic():
        pending.queue(["product:9"], "default")
        raise RuntimeError("rolled back: nothing is sent, nothing counted")
    assert prometheus("rediskit_model_invalidation_flushes_total", result="ok") == ok + 1


def test_throttle_decisions_by_scope_and_outcome(prometheus: Sample) -> None:
    scope = f"mx{time.monotonic_ns()}"
    limiter = RateLimiter("2/min")
    for _ in range(3):
        limiter.hit(scope, "client")
    limiter.peek(scope, "client")  # a peek decides nothing: not counted
    sample = prometheus
    assert sample("rediskit_throttle_decisions_total", scope=scope, outcome="allowed") == 2
    assert sample("rediskit_throttle_decisions_total", scope=scope, outcome="rejected") == 1


def _private_alias(settings: Any, server: servers.RedisServer, **options: Any) -> str:
    alias = f"mx{server.port}"
    settings.CACHES = {
        **settings.CACHES,
        alias: {
            "BACKEND": "django_rediskit.cache.RedisCache",
            "LOCATION": server.url,
            "KEY_PREFIX": "mx",
            "OPTIONS": {
                "SOCKET_TIMEOUT": 0.3,
                "SOCKET_CONNECT_TIMEOUT": 0.3,
                "IGNORE_EXCEPTIONS": True,
                "CIRCUIT_BREAKER": {"FAILURE_THRESHOLD": 2, "RECOVERY_TIME": 0.2},
                **options,
            },
        },
    }
    forget_policies()
    return alias


def test_redis_down_counts_errors_and_breaker_transitions(
    prometheus: Sample, private_redis: servers.RedisServer, settings: Any
) -> None:
    alias = _private_alias(settings, private_redis)
    cache = caches[alias]
    cache.set("x", 1)
    private_redis.stop()
    assert cache.get("x") is None  # muted outage: a miss
    assert cache.get("x") is None  # second failure opens the breaker
    assert prometheus("rediskit_cache_errors_total", alias=alias, op="get") == 2
    assert prometheus("rediskit_breaker_state", alias=alias) == 1
    assert prometheus("rediskit_breaker_transitions_total", alias=alias, state="open") == 1
    cache.get("x")  # refused by the open breaker: still an error of get
    assert prometheus("rediskit_cache_errors_total", alias=alias, op="get") == 3
    private_redis.start()
    time.sleep(0.3)
    assert cache.get("x") is None  # the probe succeeds (restarted empty) and closes it
    assert prometheus("rediskit_breaker_state", alias=alias) == 0
    assert prometheus("rediskit_breaker_transitions_total", alias=alias, state="closed") == 1


def test_throttle_fail_open_and_fail_closed_counted(
    prometheus: Sample, private_redis: servers.RedisServer, settings: Any
) -> None:
    alias = _private_alias(settings, private_redis)
    settings.REDISKIT = {
        "METRICS": {"PROMETHEUS": True},
        "THROTTLE": {"CACHE_ALIAS": alias, "SOCKET_TIMEOUT": 0.3, "SOCKET_CONNECT_TIMEOUT": 0.3},
    }
    private_redis.stop()
    RateLimiter("5/min", fail_open=True).hit("down", "a")
    RateLimiter("5/min", fail_open=False).hit("down", "a")
    assert prometheus("rediskit_throttle_decisions_total", scope="down", outcome="fail_open") == 1
    assert prometheus("rediskit_throttle_decisions_total", scope="down", outcome="fail_closed") == 1


@pytest.mark.django_db
def test_sessions_created_and_revoked(prometheus: Sample) -> None:
    from django.contrib.auth import get_user_model

    from django_rediskit.sessions import revoke_all

    with override_settings(
        SESSION_ENGINE="django_rediskit.sessions.backend",
        MIDDLEWARE=[
            "django_rediskit.sessions.middleware.SessionMiddleware",
            "django.contrib.auth.middleware.AuthenticationMiddleware",
        ],
        ROOT_URLCONF="tests.sessions.urls",
        PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],
    ):
        user = get_user_model().objects.create_user("mx-user", password="pw-123456")
        created = prometheus("rediskit_sessions_total", event="created")
        revoked = prometheus("rediskit_sessions_total", event="revoked")
        observed = prometheus("rediskit_session_devices_count")
        total = prometheus("rediskit_session_devices_sum")
        up_to_two = prometheus("rediskit_session_devices_bucket", le="2.0")
        for ip in ("10.0.0.1", "10.0.0.2", "10.0.0.3"):
            client = Client(REMOTE_ADDR=ip)
            response = client.post("/login/", {"username": "mx-user", "password": "pw-123456"})
            assert response.status_code == 302
        assert prometheus("rediskit_sessions_total", event="created") == created + 3
        # Three devices of one user: the histogram saw 1, 2 and 3 devices.
        assert prometheus("rediskit_session_devices_count") == observed + 3
        assert prometheus("rediskit_session_devices_sum") == total + 6
        assert prometheus("rediskit_session_devices_bucket", le="2.0") == up_to_two + 2
        assert revoke_all(user) == 3
        assert prometheus("rediskit_sessions_total", event="revoked") == revoked + 3


def test_no_label_holds_a_key_or_identity(prometheus: Sample) -> None:
    from prometheus_client import REGISTRY

    caches["default"].get("secret-key-name")
    RateLimiter("5/min").hit("labels", "203.0.113.9")
    values = {
        value
        for family in REGISTRY.collect()
        if family.name.startswith("rediskit")
        for sample in family.samples
        for value in sample.labels.values()
    }
    assert "secret-key-name" not in str(values) and "203.0.113.9" not in str(values)
    assert "labels" in values


def test_bad_settings_are_refused() -> None:
    from django.core.exceptions import ImproperlyConfigured
    from django.core.signals import setting_changed

    from django_rediskit.metrics import setup

    # checked directly: configure() would raise inside override_settings' signal
    setting_changed.disconnect(dispatch_uid="rediskit-metrics-settings")
    try:
        for bad in ({"PROMETHEUS": "yes"}, {"PUBLISH": 0}, {"PUBLISH": True}, {"EXPORT": True}):
            with override_settings(REDISKIT={"METRICS": bad}), pytest.raises(ImproperlyConfigured):
                setup.settings_section()
    finally:
        setting_changed.connect(setup._settings_changed, dispatch_uid="rediskit-metrics-settings")


def test_the_view_serves_the_exposition_and_404s_when_off(prometheus: Sample) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    with override_settings(ROOT_URLCONF="tests.metrics.urls"):
        caches["default"].get("m")
        response = Client().get("/metrics/")
        assert response.status_code == 200
        names = {f.name for f in text_string_to_metric_families(response.content.decode())}
        assert {"rediskit_cache_requests", "rediskit_cache_latency_seconds"} <= names
    with override_settings(ROOT_URLCONF="tests.metrics.urls", REDISKIT={}):
        assert Client().get("/metrics/").status_code == 404


def test_async_twins_are_timed_under_their_own_name(prometheus: Sample) -> None:
    import asyncio

    before = prometheus("rediskit_cache_latency_seconds_count", alias="default", op="aget")
    hits = lookups(prometheus, "get")[0]

    async def main() -> None:
        cache = caches["default"]
        await cache.aset("async", 1)
        assert await cache.aget("async") == 1

    asyncio.run(main())
    assert prometheus("rediskit_cache_latency_seconds_count", alias="default", op="aget") == (
        before + 1
    )
    assert lookups(prometheus, "get")[0] == hits + 1  # counted under the sync method's name


@pytest.mark.django_db(transaction=True)
def test_a_failed_flush_is_counted_as_failed(
    prometheus: Sample, private_redis: servers.RedisServer, settings: Any
) -> None:
    # an unmuted alias: a muted one turns the failure into a quiet 0 and the flush "succeeds"
    alias = _private_alias(settings, private_redis, IGNORE_EXCEPTIONS=False)
    settings.REDISKIT = {"CACHE_ALIAS": alias, "METRICS": {"PROMETHEUS": True}}
    failed = prometheus("rediskit_model_invalidation_flushes_total", result="failed")
    private_redis.stop()
    with transaction.atomic():
        pending.queue(["product:1"], "default")
    assert prometheus("rediskit_model_invalidation_flushes_total", result="failed") == failed + 1


def test_concurrent_threads_every_decision_counted(prometheus: Sample) -> None:
    import threading

    scope = f"mxc{time.monotonic_ns()}"
    limiter = RateLimiter("100/min")
    cache = caches["default"]
    cache.set("shared", 1)
    before = prometheus("rediskit_cache_latency_seconds_count", alias="default", op="get")

    def work() -> None:
        for _ in range(50):
            limiter.hit(scope, "same-client")
            cache.get("shared")

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    allowed = prometheus("rediskit_throttle_decisions_total", scope=scope, outcome="allowed")
    rejected = prometheus("rediskit_throttle_decisions_total", scope=scope, outcome="rejected")
    assert (allowed, rejected) == (100, 300)  # the limiter is atomic, the counter exact
    timed = prometheus("rediskit_cache_latency_seconds_count", alias="default", op="get") - before
    # the latency table trades exactness under threads for speed (documented): near, never over
    assert 0.9 * 400 <= timed <= 400


def test_a_missing_exporter_library_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    from django.core.exceptions import ImproperlyConfigured

    from django_rediskit.metrics import setup

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name.startswith("opentelemetry") else real(name, *a),
    )
    with (
        override_settings(REDISKIT={}),
        pytest.raises(ImproperlyConfigured, match=r"\[otel\]"),
        override_settings(REDISKIT={"METRICS": {"OPENTELEMETRY": True}}),
    ):
        pass
    setup.configure()  # back to the settings of the suite
    assert not events.ENABLED


def test_local_cache_events_and_size_read_at_scrape(
    prometheus: Sample, private_redis: servers.RedisServer, settings: Any
) -> None:
    import redis

    from tests.cache.localtools import poll

    alias = _private_alias(settings, private_redis, LOCAL_CACHE=True)
    cache = caches[alias]
    local = cache.local_cache
    assert local is not None and local.wait_live(10)
    cache.set("hot", 1)
    for _ in range(3):
        assert cache.get("hot") == 1
    events_total = "rediskit_local_cache_events_total"
    assert prometheus(events_total, alias=alias, event="hits") >= 1
    assert prometheus("rediskit_local_cache_entries", alias=alias) == local.entries >= 1
    assert prometheus("rediskit_local_cache_bytes", alias=alias) == local.bytes > 0
    before = prometheus(events_total, alias=alias, event="invalidations")
    redis.Redis.from_url(private_redis.url).set(cache.make_key("hot"), b"changed elsewhere")
    assert poll(lambda: prometheus(events_total, alias=alias, event="invalidations") > before)


def test_queue_gauges_are_read_from_redis_at_scrape() -> None:
    """Length, lag, pending and dead letters of each configured queue, on the /metrics body."""
    from prometheus_client.parser import text_string_to_metric_families

    from django_rediskit.messaging import Queue
    from django_rediskit.metrics.prometheus import exposition

    settings_section = {
        "METRICS": {"PROMETHEUS": True},
        "MESSAGING": {"QUEUES": {"mx-orders": "tests.metrics.test_prometheus.handle"}},
    }
    with override_settings(REDISKIT=settings_section):
        queue = Queue("mx-orders")
        try:
            for n in range(3):
                queue.enqueue({"n": n})

            def gauges() -> dict[tuple[str, str], float]:
                body = exposition()[0].decode()
                return {
                    (sample.name, sample.labels.get("queue", "")): sample.value
                    for family in text_string_to_metric_families(body)
                    for sample in family.samples
                    if sample.name.startswith("rediskit_queue_")
                }

            found = gauges()
            assert found[("rediskit_queue_length", "mx-orders")] == 3
            assert found[("rediskit_queue_lag", "mx-orders")] == 3
            assert found[("rediskit_queue_pending", "mx-orders")] == 0
            assert found[("rediskit_queue_dead_letters", "mx-orders")] == 0
        finally:
            queue.delete()


def handle(delivery: object) -> None:
    """The configured handler of the queue above (never run: nothing consumes)."""
