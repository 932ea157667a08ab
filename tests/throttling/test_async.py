"""Async throttles: ``RateLimiter.ahit`` / ``apeek`` and ``@ratelimit`` on ``async def`` views
decide on the event loop (redis.asyncio), exactly as the sync calls decide."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from django.http import HttpRequest, HttpResponse
from django.test import AsyncClient, override_settings
from django.urls import path

from django_rediskit.throttling import limiter as limiter_module
from django_rediskit.throttling.limiter import RateLimiter
from django_rediskit.throttling.views import ratelimit
from tests import servers
from tests.helpers import on_the_loop_only as loop_only


def on_the_loop_only() -> Any:
    """No thread hop and no sync decision path (``limiter._run``) inside the block."""
    return loop_only(((limiter_module, "_run"),))


def outline(decision: Any) -> tuple[Any, ...]:
    return (
        decision.allowed,
        decision.degraded,
        round(decision.retry_after, 3),
        [(status.remaining, round(status.reset, 3)) for status in decision.statuses],
    )


@pytest.mark.parametrize("algorithm", ["exact", "approx", "fixed", "gcra"])
def test_ahit_and_apeek_decide_as_hit_and_peek(unique_scope: str, algorithm: str) -> None:
    limiter = RateLimiter("3/min;5/hour", algorithm=algorithm)
    times = [1000.0 + step / 1000 for step in range(6)]
    # The same identity twice (window starts are jittered per key), forgotten in between.
    expected = [outline(limiter.hit(unique_scope, "alice", now=t)) for t in times]
    expected_peek = outline(limiter.peek(unique_scope, "alice", now=times[-1]))
    assert limiter.reset(unique_scope, "alice") >= 1

    async def scenario() -> tuple[list[Any], Any, int]:
        got = [outline(await limiter.ahit(unique_scope, "alice", now=t)) for t in times]
        peeked = outline(await limiter.apeek(unique_scope, "alice", now=times[-1]))
        return got, peeked, threading.get_ident()

    with on_the_loop_only():
        got, peeked, loop_thread = asyncio.run(scenario())
    assert got == expected
    assert peeked == expected_peek
    if algorithm in ("exact", "gcra"):  # approx / fixed windows start at a per-key offset
        assert [allowed for allowed, *_ in got] == [True, True, True, False, False, False]
    assert loop_thread == threading.get_ident()  # asyncio.run: the loop runs on this thread


def test_bad_input_is_refused_before_any_io(unique_scope: str) -> None:
    limiter = RateLimiter("3/min")

    async def scenario() -> None:
        for cost in (0, 4, True, 1.5):
            with pytest.raises(ValueError, match="cost"):
                await limiter.ahit(unique_scope, "x", cost=cost)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="scope"):
            await limiter.ahit("bad {scope}", "x")
        with pytest.raises(TypeError, match="identity"):
            await limiter.apeek(unique_scope, 42)  # type: ignore[arg-type]

    with on_the_loop_only():
        asyncio.run(scenario())


@pytest.fixture
def roomy_timeouts() -> Iterator[None]:
    """Exactness under concurrency is asserted here, not timeouts: the default 0.2 s connect
    timeout (a throttle must cost a request milliseconds) is shorter than a loop's scheduling
    delay on a loaded CI box while 30 tasks open a pool's connections, and a timed-out connect
    is a (correct) fail-open admission that would break the count. Timeouts have their own
    tests (``throttle_server``)."""
    with override_settings(
        REDISKIT={"THROTTLE": {"SOCKET_TIMEOUT": 5, "SOCKET_CONNECT_TIMEOUT": 5}}
    ):
        yield


def test_concurrent_ahits_admit_exactly_the_limit(unique_scope: str, roomy_timeouts: None) -> None:
    limiter = RateLimiter("7/min")

    async def scenario() -> list[bool]:
        # One decision first: redis.asyncio's RedisCluster can fail commands of tasks that race
        # its very first connections (redis-py 8.1; see docs/async.md).
        await limiter.apeek(unique_scope, "bob")
        decisions = await asyncio.gather(*(limiter.ahit(unique_scope, "bob") for _ in range(40)))
        return [decision.allowed for decision in decisions]

    with on_the_loop_only():
        allowed = asyncio.run(scenario())
    assert allowed.count(True) == 7
    assert limiter.peek(unique_scope, "bob").allowed is False  # the sync view agrees


def test_redis_down_gives_the_fail_open_and_fail_closed_decisions(
    throttle_server: servers.RedisServer, unique_scope: str
) -> None:
    opened = RateLimiter("2/min", fail_open=True)
    closed = RateLimiter("2/min", fail_open=False)
    assert opened.hit(unique_scope, "x").allowed  # warm: the channel and its pools exist
    throttle_server.stop()
    breaker = limiter_module._channel(opened.alias).breaker
    try:

        async def scenario() -> tuple[Any, Any, int]:
            admitted = await opened.ahit(unique_scope, "x")
            refused = await closed.ahit(unique_scope, "x")
            return admitted, refused, breaker.failures

        with on_the_loop_only():
            admitted, refused, failures = asyncio.run(scenario())
        assert (admitted.allowed, admitted.degraded) == (True, True)
        assert (refused.allowed, refused.degraded) == (False, True)
        assert refused.retry_after > 0
        assert failures == 2  # each outage counted once; the breaker is now open
        # The sync call, in the same outage, answers the same (from the open breaker).
        assert outline(closed.hit(unique_scope, "x")) == outline(refused)
    finally:
        throttle_server.restart()


# --- @ratelimit on async def views, through Django's AsyncClient ------------------------------

LIMIT = 5
decided_on: list[int] = []


@ratelimit(f"{LIMIT}/min", key="ip", scope="async-view")
async def limited_view(request: HttpRequest) -> HttpResponse:
    decided_on.append(threading.get_ident())
    return HttpResponse("ok")


async def header_key(request: HttpRequest) -> str | None:
    await asyncio.sleep(0)
    return request.headers.get("x-client")


@ratelimit("1/min", key=header_key, scope="async-soft", block=False)  # type: ignore[arg-type]
async def soft_view(request: HttpRequest) -> HttpResponse:
    return HttpResponse("limited" if request.limited else "free")  # type: ignore[attr-defined]


urlpatterns = [path("limited/", limited_view), path("soft/", soft_view)]


@pytest.fixture
def async_urls() -> Iterator[None]:
    with override_settings(ROOT_URLCONF=__name__, MIDDLEWARE=[]):
        yield


def test_async_view_admits_exactly_the_limit_of_concurrent_requests(
    async_urls: None, roomy_timeouts: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """30 concurrent requests from one address: exactly LIMIT reach the view, the others get
    429 with Retry-After; every decision is made on the loop (the sync path is forbidden)."""

    def forbidden(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("an async view decided through the sync path")

    monkeypatch.setattr(limiter_module, "_run", forbidden)
    decided_on.clear()

    async def scenario() -> tuple[list[Any], int]:
        client = AsyncClient(REMOTE_ADDR="203.0.113.9")
        # Open the loop's Redis clients first (see test_concurrent_ahits_admit_exactly_the_limit).
        await RateLimiter("1/min").apeek("warm-up", "nobody")
        responses = await asyncio.gather(*(client.get("/limited/") for _ in range(30)))
        return list(responses), threading.get_ident()

    responses, loop_thread = asyncio.run(scenario())
    assert set(decided_on) == {loop_thread}
    codes = [response.status_code for response in responses]
    assert codes.count(200) == LIMIT and codes.count(429) == 30 - LIMIT
    assert all(int(r["Retry-After"]) >= 1 for r in responses if r.status_code == 429)
    assert len(decided_on) == LIMIT


def test_async_key_function_and_block_false(async_urls: None) -> None:
    async def scenario() -> list[bytes]:
        client = AsyncClient()
        first = await client.get("/soft/", headers={"x-client": "c1"})
        second = await client.get("/soft/", headers={"x-client": "c1"})
        other = await client.get("/soft/", headers={"x-client": "c2"})
        unkeyed = await client.get("/soft/")  # the key function returned None: not limited
        return [first.content, second.content, other.content, unkeyed.content]

    assert asyncio.run(scenario()) == [b"free", b"limited", b"free", b"free"]


async def plain_view(request: HttpRequest) -> HttpResponse:
    decided_on.append(threading.get_ident())
    return HttpResponse("plain")


urlpatterns.append(path("plain/", plain_view))


def test_async_middleware_applies_the_site_rate(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """In an async middleware chain, RateLimitMiddleware decides with ahit: of 12 concurrent
    anonymous requests exactly MIDDLEWARE_RATE's limit get through, with the RateLimit headers."""

    def forbidden(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the middleware decided through the sync path")

    monkeypatch.setattr(limiter_module, "_run", forbidden)
    decided_on.clear()
    middleware = ["django_rediskit.throttling.views.RateLimitMiddleware"]
    throttle = {"THROTTLE": {"MIDDLEWARE_RATE": "3/min", "HEADERS": True}}

    async def scenario() -> list[Any]:
        await RateLimiter("1/min").apeek("warm-up", "nobody")  # see the view test above
        client = AsyncClient()
        return list(await asyncio.gather(*(client.get("/plain/") for _ in range(12))))

    with override_settings(ROOT_URLCONF=__name__, MIDDLEWARE=middleware, REDISKIT=throttle):
        responses = asyncio.run(scenario())
    codes = [response.status_code for response in responses]
    assert codes.count(200) == 3 and codes.count(429) == 9
    assert all("RateLimit" in response for response in responses if response.status_code == 200)
    assert len(decided_on) == 3
