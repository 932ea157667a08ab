"""Fixtures: the session Redis, private per-test servers for fault tests, clean caches."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import pytest
from django.core.cache import caches

from tests import servers


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
