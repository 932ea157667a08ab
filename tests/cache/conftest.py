"""Fixtures of the cache tests."""

from __future__ import annotations

import pytest

from django_rediskit.cache import RedisCache
from tests.helpers import MakeCache
from tests.servers import RedisServer


def _stopped(make_cache: MakeCache, server: RedisServer, **options: object) -> RedisCache:
    cache = make_cache(
        server.url, OPTIONS={"IGNORE_EXCEPTIONS": True, "SOCKET_CONNECT_TIMEOUT": 0.5, **options}
    )
    server.stop()
    return cache


@pytest.fixture
def down(make_cache: MakeCache, private_redis: RedisServer) -> RedisCache:
    """A muted cache on a stopped server, with a breaker that never opens (to count)."""
    return _stopped(
        make_cache,
        private_redis,
        SOCKET_TIMEOUT=0.5,
        CIRCUIT_BREAKER={"FAILURE_THRESHOLD": 10_000, "RECOVERY_TIME": 60},
    )


@pytest.fixture
def opens_at_once(make_cache: MakeCache, private_redis: RedisServer) -> RedisCache:
    """A muted cache on a stopped server whose breaker opens at the first failure."""
    return _stopped(
        make_cache, private_redis, CIRCUIT_BREAKER={"FAILURE_THRESHOLD": 1, "RECOVERY_TIME": 60}
    )
