"""Helpers to build caches with their own options on the session server or a private one."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.conf import settings

from django_rediskit.cache import RedisCache

MakeCache = Callable[..., RedisCache]


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
