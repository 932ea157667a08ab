"""Redis down, paused or restarted: decisions follow the failure policy, never a 500."""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest
from django.test import Client

from django_rediskit.throttling import RateLimiter
from django_rediskit.throttling.signals import throttle_backend_failure
from tests import servers

pytestmark = [pytest.mark.urls("tests.throttling.urls"), pytest.mark.django_db]


@pytest.fixture(autouse=True)
def _drf_settings(settings: Any) -> None:
    settings.REST_FRAMEWORK = {"DEFAULT_THROTTLE_RATES": {"user": "3/min"}, "NUM_PROXIES": 0}


def _responses(client: Client) -> dict[str, list[Any]]:
    return {
        url: [client.generic(method, url) for _ in range(10)]
        for url, method in [
            ("/minute/", "GET"),  # DRF, fail open
            ("/closed/", "GET"),  # DRF, fail closed
            ("/limited/", "GET"),  # @ratelimit, fail open
            ("/login/", "POST"),  # @ratelimit, fail closed
        ]
    }


def test_redis_down_no_500_open_admits_closed_answers_503(
    throttle_server: servers.RedisServer, client: Client
) -> None:
    # while Redis is up the limits bite
    assert [client.get("/minute/").status_code for _ in range(4)] == [200, 200, 200, 429]
    throttle_server.stop()
    responses = _responses(client)
    codes = {url: {r.status_code for r in rs} for url, rs in responses.items()}
    assert codes == {"/minute/": {200}, "/closed/": {503}, "/limited/": {200}, "/login/": {503}}
    for url in ("/closed/", "/login/"):
        for response in responses[url]:
            assert int(response.headers["Retry-After"]) >= 1
    # back up: after the breaker's recovery time, limits apply again
    throttle_server.start()
    time.sleep(0.6)
    assert client.get("/closed/").status_code == 200
    assert [client.post("/login/").status_code for _ in range(3)] == [200, 200, 429]


def test_restart_loses_state_and_scripts_without_a_failed_decision(
    throttle_server: servers.RedisServer,
) -> None:
    limiter = RateLimiter("2/min")
    assert [limiter.hit("r", "a").allowed for _ in range(3)] == [True, True, False]
    throttle_server.restart()  # no persistence: history and script cache are gone
    decisions = [limiter.hit("r", "a") for _ in range(3)]
    # the pooled connection died with the server: at most the first decision is degraded
    assert [d.allowed for d in decisions if not d.degraded][-2:] == [True, False]
    assert sum(d.degraded for d in decisions) <= 1


def test_breaker_open_decisions_are_fast(throttle_server: servers.RedisServer) -> None:
    limiter = RateLimiter("5/min", fail_open=False)
    throttle_server.stop()
    limiter.hit("b", "a")
    limiter.hit("b", "a")  # two failures open the breaker
    started = time.perf_counter()
    decisions = [limiter.hit("b", "a") for _ in range(200)]
    per_decision = (time.perf_counter() - started) / 200
    assert all(d.degraded and not d.allowed for d in decisions)
    assert per_decision < 0.001, per_decision


def test_a_paused_redis_costs_one_socket_timeout(throttle_server: servers.RedisServer) -> None:
    limiter = RateLimiter("5/min")
    assert limiter.hit("p", "a").allowed  # connected
    with throttle_server.paused(3):
        started = time.perf_counter()
        decision = limiter.hit("p", "a")
        elapsed = time.perf_counter() - started
    assert decision.degraded and decision.allowed
    assert elapsed < 2.0  # the 0.5 s throttle timeout, not the cache's 5 s


def test_a_timed_out_connection_never_hands_its_late_reply_to_the_next_decision(
    throttle_server: servers.RedisServer,
) -> None:
    """Decisions bypass redis-py's command wrapper: a connection whose reply is still on its way
    must be closed, not pooled, or every later decision would read the reply of the one before."""
    limiter = RateLimiter("50/min")
    assert limiter.hit("late", "a").allowed
    with throttle_server.paused(1.0):
        assert limiter.hit("late", "a").degraded  # timed out; the server answers after the pause
    (key,) = limiter.keys("late", "a")
    with throttle_server.client() as admin:
        for cost in (1, 2, 3):
            decision = limiter.hit("late", "a", cost=cost)
            assert not decision.degraded
            assert decision.statuses[0].remaining == 50 - admin.llen(key)


def test_failures_send_a_signal_and_log_once_per_interval(
    throttle_server: servers.RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[dict[str, Any]] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        seen.append(kwargs)

    throttle_backend_failure.connect(receiver)
    try:
        throttle_server.stop()
        limiter = RateLimiter("5/min", fail_open=False)
        with caplog.at_level(logging.WARNING):
            for _ in range(5):
                limiter.hit("sig", "a")
    finally:
        throttle_backend_failure.disconnect(receiver)
    assert len(seen) == 5
    assert {(s["scope"], s["fail_open"], s["alias"]) for s in seen} == {
        ("sig", False, limiter.alias)
    }
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "throttle[sig]" in warnings[0].getMessage()
