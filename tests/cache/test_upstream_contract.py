"""Behaviours Django's and DRF's own suites rely on (issue 10), against a real Redis."""

from __future__ import annotations

import warnings
from typing import Any

import pytest
from django.core.cache import cache
from django.core.cache.backends.base import CacheKeyWarning
from django.core.exceptions import ImproperlyConfigured

from django_rediskit.throttling.limiter import RateLimiter
from tests.helpers import MakeCache


def custom_key(key: str, key_prefix: str, version: int) -> str:
    return f"CUSTOM-{key_prefix}-{version}-{key}"


def test_key_func_replaced_on_a_live_backend_is_honoured_by_every_method(
    make_cache: MakeCache,
) -> None:
    cache = make_cache()
    cache.set("before", 1)
    cache.key_func = custom_key
    assert cache.make_and_validate_key("k") == f"CUSTOM-{cache.key_prefix}-1-k"
    raw = cache.client.get_client()
    assert cache.add("k", "v") is True
    assert raw.exists(f"CUSTOM-{cache.key_prefix}-1-k") == 1
    assert cache.get("before") is None  # built with the new function: another key
    with pytest.warns(CacheKeyWarning, match="CUSTOM-"):
        cache.add("key with spaces", 1)
    with pytest.warns(CacheKeyWarning, match="CUSTOM-"):
        cache.get_many(["more spaces here"])
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheKeyWarning)
        assert cache.get("k") == "v"
    raw.delete(f"CUSTOM-{cache.key_prefix}-1-k")


def test_clear_empties_entries_tags_and_throttles_but_spares_sessions_by_default() -> None:
    raw = cache.client.get_client()
    session = cache.feature_key("sessions", "abcdefgh12345678")
    index = cache.feature_key("users", "{u1}", "m")
    queue = cache.feature_key("queue", "{jobs}")
    raw.set(session, "s")
    raw.hset(index, "f", "v")
    raw.set(queue, "q")
    limiter = RateLimiter("1/min")
    assert limiter.hit("scope", "client").allowed
    assert not limiter.hit("scope", "client").allowed
    cache.set("entry", 1, tags=["t1"])
    try:
        cache.clear()
        assert cache.get("entry") is None
        assert limiter.hit("scope", "client").allowed  # a fresh window after clear()
        assert raw.scan(match=cache.feature_key("tags", "") + "*", count=10_000)[1] == []
        assert raw.get(session) == b"s" and raw.exists(index) == 1 and raw.get(queue) == b"q"
    finally:
        raw.delete(session, index, queue)


def test_clear_sessions_option_clears_them_too(make_cache: MakeCache) -> None:
    cache = make_cache(OPTIONS={"CLEAR_SESSIONS": True})
    raw = cache.client.get_client()
    session = cache.feature_key("sessions", "abcdefgh12345678")
    index = cache.feature_key("users", "{u1}", "m")
    queue = cache.feature_key("queue", "{jobs}")
    raw.set(session, "s")
    raw.hset(index, "f", "v")
    raw.set(queue, "q")
    cache.clear()
    assert raw.exists(session, index) == 0
    assert raw.get(queue) == b"q"
    raw.delete(queue)


def test_clear_escapes_a_glob_prefix(make_cache: MakeCache) -> None:
    starry = make_cache(prefix="st*r")
    plain = make_cache(prefix="stXr")
    plain.client.get_client().set(plain.feature_key("throttle", "{x}"), "1")
    starry.clear()
    assert plain.client.get_client().exists(plain.feature_key("throttle", "{x}")) == 1


@pytest.mark.parametrize("bad", ["yes", 1, None])
def test_clear_sessions_must_be_a_bool(make_cache: MakeCache, bad: Any) -> None:
    with pytest.raises(ImproperlyConfigured, match="CLEAR_SESSIONS"):
        make_cache(OPTIONS={"CLEAR_SESSIONS": bad})
