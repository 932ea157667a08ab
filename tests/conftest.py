"""Fixtures: the session Redis, private per-test servers for fault tests, clean caches."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings
from django.core.cache import caches

from django_rediskit.cache import RedisCache
from tests import servers
from tests.helpers import MakeCache


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under tests.settings_postgres with no PostgreSQL (outside CI): skip, saying why. On a
    cluster or behind Sentinel: skip the tests that measure one server's internals."""
    reason = getattr(settings, "POSTGRES_UNAVAILABLE", "")
    if reason and os.environ.get("CI", "").lower() != "true":
        for item in items:
            item.add_marker(pytest.mark.skip(reason=reason))
    if servers.TOPOLOGY != "standalone":
        skip = pytest.mark.skip(
            reason=f"measures a single server; the suite runs on {servers.TOPOLOGY} "
            "(tests/topology/ measures this topology's own costs)"
        )
        for item in items:
            if item.get_closest_marker("standalone_only"):
                item.add_marker(skip)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    servers.stop_session_server()


@pytest.fixture(scope="session")
def redis_url() -> str:
    return servers.session_redis_url()


@pytest.fixture
def private_redis() -> Iterator[servers.RedisServer]:
    """A redis-server of this test's own, to stop, pause or restart freely.

    In CI (``CI=true``) a missing redis-server fails the test instead of skipping it.
    """
    try:
        server = servers.RedisServer().start()
    except servers.RedisServerUnavailable as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(str(exc))
        pytest.skip(str(exc))
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(autouse=True)
def _clean_caches() -> Iterator[None]:
    """Each test starts and ends with empty caches: prefix-scoped clear(), never FLUSHDB."""
    yield
    for alias in ("default", "other"):
        with contextlib.suppress(Exception):
            caches[alias].clear()


@pytest.fixture
def make_cache() -> Iterator[MakeCache]:
    """Build a RedisCache with given OPTIONS under a fresh prefix; cleared afterwards."""
    built: list[RedisCache] = []

    def build(
        location: str | None = None, *, prefix: str | None = None, **params: Any
    ) -> RedisCache:
        options = params.pop("OPTIONS", {})
        cache = RedisCache(
            location or settings.REDIS_URL,
            {
                "KEY_PREFIX": prefix if prefix is not None else f"t-{uuid.uuid4().hex[:8]}",
                "OPTIONS": options,
                **params,
            },
        )
        built.append(cache)
        return cache

    yield build
    for cache in built:
        with contextlib.suppress(Exception):
            cache.clear()
