"""The one failure policy: nesting counts one failure, a wrong password is never an outage.

Against real servers: a stopped private server for outages, one with ``requirepass`` for the
wrong password, for the cache, the sessions and the throttles alike.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings
from django.test import override_settings
from redis.exceptions import AuthenticationError

from django_rediskit.aliases import backend_for_alias
from django_rediskit.cache import RedisCache
from django_rediskit.connection.policy import CircuitBreaker, RedisUnavailable, shielded
from django_rediskit.throttling.limiter import RateLimiter
from tests.helpers import MakeCache
from tests.servers import RedisServer


def _muted(make_cache: MakeCache, server: RedisServer, threshold: int) -> RedisCache:
    return make_cache(
        server.url,
        OPTIONS={
            "IGNORE_EXCEPTIONS": True,
            "SOCKET_CONNECT_TIMEOUT": 0.5,
            "CIRCUIT_BREAKER": {"FAILURE_THRESHOLD": threshold, "RECOVERY_TIME": 30},
        },
    )


@pytest.mark.parametrize(
    ("call", "muted"),
    [
        (lambda cache: cache.get_or_set("k", lambda: "computed"), "computed"),
        (lambda cache: cache.get_or_set("k", lambda: "computed", tags=["t"]), "computed"),
        (lambda cache: cache.decr("k"), None),
        (lambda cache: cache.get("k", "dflt"), "dflt"),
    ],
    ids=["get_or_set", "get_or_set-tagged", "decr", "get"],
)
def test_one_failed_call_records_one_breaker_failure(
    make_cache: MakeCache, private_redis: RedisServer, call: Any, muted: Any
) -> None:
    cache = _muted(make_cache, private_redis, threshold=2)
    cache.set("k", 5)
    private_redis.stop()
    assert call(cache) == muted
    assert cache.breaker.failures == 1
    assert not cache.breaker.is_open  # at the default threshold of 2, one call must not open it
    assert call(cache) == muted
    assert cache.breaker.is_open


def test_shielded_counts_nested_blocks_once_and_reraises_as_unavailable() -> None:
    breaker = CircuitBreaker(failure_threshold=5, recovery_time=1.0)
    with pytest.raises(RedisUnavailable) as caught, shielded(breaker), shielded(breaker):
        raise ConnectionRefusedError("nobody listens")
    assert isinstance(caught.value.__cause__, ConnectionRefusedError)
    assert breaker.failures == 1
    with pytest.raises(ValueError, match="a bug"), shielded(breaker):
        raise ValueError("a bug")  # not an outage: propagates unchanged, not counted
    assert breaker.failures == 1


@pytest.fixture
def guarded_server() -> Iterator[RedisServer]:
    server = RedisServer(password="right-password").start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def wrong_password_alias(guarded_server: RedisServer) -> Iterator[str]:
    alias = f"wrongpw-{uuid.uuid4().hex[:8]}"
    caches = {
        **settings.CACHES,
        alias: {
            "BACKEND": "django_rediskit.cache.RedisCache",
            "LOCATION": f"redis://:wrong-password@127.0.0.1:{guarded_server.port}/0",
            "KEY_PREFIX": "wrongpw",
            "OPTIONS": {"IGNORE_EXCEPTIONS": True},
        },
    }
    rediskit = {"SESSIONS": {"CACHE_ALIAS": alias}, "THROTTLE": {"CACHE_ALIAS": alias}}
    with override_settings(CACHES=caches, REDISKIT=rediskit):
        yield alias


def test_wrong_password_raises_from_cache_even_when_muted(wrong_password_alias: str) -> None:
    cache = backend_for_alias(wrong_password_alias)
    for _ in range(3):
        with pytest.raises(AuthenticationError):
            cache.get("k")
        with pytest.raises(AuthenticationError):
            cache.set("k", 1)
    assert not cache.breaker.is_open  # configuration errors never open the breaker


@pytest.mark.django_db
def test_wrong_password_raises_from_sessions(wrong_password_alias: str) -> None:
    from django_rediskit.sessions.backend import SessionStore

    store = SessionStore("a" * 32)
    for _ in range(3):
        with pytest.raises(AuthenticationError):
            store.load()  # never silently an anonymous session
    with pytest.raises(AuthenticationError):
        SessionStore().create()
    assert not backend_for_alias(wrong_password_alias).breaker.is_open


def test_wrong_password_raises_from_throttles(wrong_password_alias: str) -> None:
    limiter = RateLimiter("5/min", alias=wrong_password_alias)
    for _ in range(3):
        with pytest.raises(AuthenticationError):
            limiter.hit("login", "1.2.3.4")  # neither admitted nor refused: a bug to fix
    assert not backend_for_alias(wrong_password_alias).breaker.is_open


def test_an_outage_still_fails_open_for_throttles(make_cache: MakeCache) -> None:
    server = RedisServer().start()
    alias = f"thr-{uuid.uuid4().hex[:8]}"
    caches = {
        **settings.CACHES,
        alias: {"BACKEND": "django_rediskit.cache.RedisCache", "LOCATION": server.url},
    }
    try:
        with override_settings(CACHES=caches):
            limiter = RateLimiter("1/min", alias=alias, fail_open=True)
            assert limiter.hit("s", "a").allowed and not limiter.hit("s", "a").allowed
            server.stop()
            decision = limiter.hit("s", "a")
            assert decision.allowed and decision.degraded
    finally:
        server.close()


def test_close_breakers_closes_every_alias_breaker_at_once() -> None:
    from django_rediskit.connection.policy import alias_policy, close_breakers, forget_policies

    forget_policies()
    breaker = alias_policy("closing", {"CIRCUIT_BREAKER": {"FAILURE_THRESHOLD": 1}}).breaker
    breaker.record_failure()
    assert breaker.is_open
    close_breakers()
    assert not breaker.is_open
    forget_policies()
