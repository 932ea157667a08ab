"""Django's cache contract, as Django's own RedisCache behaves, against a real Redis."""

from __future__ import annotations

import asyncio
import pickle
import threading
import time
import warnings
from typing import Any

import pytest
from django.core.cache import cache, caches
from django.core.cache.backends.base import CacheKeyWarning

from tests.helpers import MakeCache


class Unpicklable:
    def __reduce__(self) -> Any:
        raise pickle.PicklingError("not today")


def test_set_get_delete_roundtrip() -> None:
    value = {"list": [1, 2.5, "ü"], "tuple": (1, None), "bytes": b"\x00\x80", "set": {1, 2}}
    assert cache.set("k", value) is True
    assert cache.get("k") == value
    assert cache.delete("k") is True
    assert cache.get("k") is None
    assert cache.delete("k") is False
    assert cache.get("k", "fallback") == "fallback"


def test_falsy_values_are_hits() -> None:
    for value in (0, "", [], {}, False, None, b""):
        cache.set("falsy", value)
        assert cache.get("falsy", "missing") == value
        assert cache.has_key("falsy")


def test_add_only_when_absent() -> None:
    assert cache.add("a", 1) is True
    assert cache.add("a", 2) is False
    assert cache.get("a") == 1


def test_add_with_nonpositive_timeout_stores_nothing() -> None:
    assert cache.add("gone", "x", timeout=0) is True
    assert cache.has_key("gone") is False
    cache.set("kept", "x")
    assert cache.add("kept", "y", timeout=-1) is False
    assert cache.get("kept") == "x"


def test_timeouts(make_cache: MakeCache) -> None:
    cache.set("forever", 1, timeout=None)
    assert cache.ttl("forever") is None
    cache.set("zero", 1)
    cache.set("zero", 1, timeout=0)
    assert cache.get("zero") is None
    cache.set("neg", 1)
    cache.set("neg", 1, timeout=-5)
    assert cache.get("neg") is None
    cache.set("default", 1)
    assert 299 <= cache.ttl("default") <= 300
    # Sub-second precision: Django's backend truncates 0.5 s to 0 and deletes the key.
    cache.set("half", 1, timeout=0.5)
    assert 0 < cache.pttl("half") <= 500
    time.sleep(0.6)
    assert cache.get("half") is None


def test_callable_timeout_sees_the_value() -> None:
    seen: list[Any] = []

    def ttl_for(value: Any) -> int:
        seen.append(value)
        return 10 if value["short"] else 1000

    cache.set("short", {"short": True}, timeout=ttl_for)
    cache.set("long", {"short": False}, timeout=ttl_for)
    assert cache.ttl("short") == 10
    assert 999 <= cache.ttl("long") <= 1000
    assert seen == [{"short": True}, {"short": False}]


def test_bad_timeout_type_is_a_clear_error_and_nothing_is_written() -> None:
    with pytest.raises(TypeError, match="timeout"):
        cache.set("bad-timeout", 1, timeout="60")
    assert not cache.has_key("bad-timeout")


def test_touch() -> None:
    assert cache.touch("missing", 10) is False
    cache.set("t", 1, timeout=100)
    assert cache.touch("t", 10) is True
    assert cache.ttl("t") == 10
    assert cache.touch("t", None) is True
    assert cache.ttl("t") is None
    # Touching a key that already has no TTL still reports it exists (PERSIST alone says 0).
    assert cache.touch("t", None) is True
    assert cache.touch("t", 0) is True
    assert cache.has_key("t") is False


def test_incr_decr() -> None:
    cache.set("n", 10, timeout=100)
    assert cache.incr("n") == 11
    assert cache.incr("n", 5) == 16
    assert cache.decr("n", 20) == -4
    assert cache.get("n") == -4
    assert 99 <= cache.ttl("n") <= 100  # INCRBY keeps the TTL


def test_incr_missing_key_raises_value_error() -> None:
    with pytest.raises(ValueError, match="not found"):
        cache.incr("nope")
    with pytest.raises(ValueError):
        cache.decr("nope")
    assert cache.incr("created", 3, ignore_key_check=True) == 3


def test_incr_non_integer_is_a_clear_error_and_value_kept() -> None:
    cache.set("s", "text")
    with pytest.raises(TypeError, match="not an integer"):
        cache.incr("s")
    assert cache.get("s") == "text"
    cache.set("big", 2**63 - 1)
    with pytest.raises(TypeError):
        cache.incr("big")
    assert cache.get("big") == 2**63 - 1
    with pytest.raises(TypeError):
        cache.incr("big", 1.5)  # type: ignore[arg-type]


def test_bool_is_not_stored_as_int() -> None:
    cache.set("flag", True)
    assert cache.get("flag") is True


def test_get_many_set_many_delete_many() -> None:
    assert cache.set_many({"a": 1, "b": "two", "c": [3]}) == []
    assert cache.get_many(["a", "b", "c", "missing"]) == {"a": 1, "b": "two", "c": [3]}
    assert cache.get_many([]) == {}
    assert cache.set_many({}) == []
    assert cache.delete_many(["a", "b"]) is None
    assert cache.get_many(["a", "b", "c"]) == {"c": [3]}
    cache.delete_many([])


def test_set_many_timeout_and_zero() -> None:
    cache.set_many({"x": 1, "y": 2}, timeout=50)
    assert cache.ttl("x") == 50
    cache.set_many({"x": 1}, timeout=0)
    assert cache.get("x") is None


def test_unpicklable_value_writes_nothing() -> None:
    with pytest.raises(pickle.PicklingError):
        cache.set("u", Unpicklable())
    assert not cache.has_key("u")
    with pytest.raises(pickle.PicklingError):
        cache.set_many({"ok": 1, "u": Unpicklable()})
    assert cache.get_many(["ok", "u"]) == {}


def test_versions() -> None:
    cache.set("v", "one", version=1)
    cache.set("v", "two", version=2)
    assert cache.get("v") == "one"
    assert cache.get("v", version=2) == "two"
    cache.set("moved", "x", timeout=100)
    assert cache.incr_version("moved") == 2
    assert cache.get("moved") is None
    assert cache.get("moved", version=2) == "x"
    assert 99 <= cache.ttl("moved", version=2) <= 100  # the TTL travels with the value
    assert cache.decr_version("moved", version=2) == 1
    assert cache.get("moved") == "x"
    with pytest.raises(ValueError):
        cache.incr_version("does-not-exist")


def test_persistent_value_keeps_no_ttl_across_versions() -> None:
    cache.set("p", 1, timeout=None)
    cache.incr_version("p")
    assert cache.ttl("p", version=2) is None


def test_key_prefix_isolation() -> None:
    cache.set("shared", "default")
    caches["other"].set("shared", "other")
    assert cache.get("shared") == "default"
    assert caches["other"].get("shared") == "other"


def test_key_function(make_cache: MakeCache) -> None:
    custom = make_cache(KEY_FUNCTION=lambda key, prefix, version: f"custom|{prefix}|{key}")
    custom.set("k", 1)
    assert custom.get("k") == 1
    assert custom.make_key("k") == f"custom|{custom.key_prefix}|k"
    custom.delete("k")


def test_non_ascii_and_long_keys() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cache.set("ключ-🔑", "value")
        assert cache.get("ключ-🔑") == "value"
        long_key = "x" * 300
        cache.set(long_key, "long")
        assert cache.get(long_key) == "long"
    assert any(issubclass(w.category, CacheKeyWarning) for w in caught)


def test_memcached_unsafe_keys_warn_as_django_does() -> None:
    with pytest.warns(CacheKeyWarning):
        cache.set("has space", 1)
    with pytest.warns(CacheKeyWarning):
        cache.get("x" * 251)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cache.set("plain:key-1", 1)  # no warning for an ordinary key


def test_get_or_set() -> None:
    assert cache.get_or_set("gs", "v") == "v"
    assert cache.get_or_set("gs", "other") == "v"
    calls: list[int] = []

    def produce() -> int:
        calls.append(1)
        return 42

    assert cache.get_or_set("gsc", produce, timeout=100) == 42
    assert cache.get_or_set("gsc", produce) == 42
    assert calls == [1]
    assert cache.get_or_set("none", None) is None


def test_get_or_set_with_zero_timeout_returns_value_without_storing() -> None:
    assert cache.get_or_set("z", lambda: "computed", timeout=0) == "computed"
    assert not cache.has_key("z")


def test_has_key_and_contains() -> None:
    cache.set("h", 1)
    assert cache.has_key("h")
    assert "h" in cache
    assert "nope" not in cache


def test_clear_spares_other_prefixes_and_features() -> None:
    cache.set("mine", 1)
    caches["other"].set("theirs", 2)
    raw = cache.client.get_client()
    foreign = f"{cache.key_prefix}:s:session-like"
    raw.set(foreign, "feature key")
    raw.set("unrelated", "x")
    try:
        cache.clear()
        assert cache.get("mine") is None
        assert caches["other"].get("theirs") == 2
        assert raw.get(foreign) == b"feature key"
        assert raw.get("unrelated") == b"x"
    finally:
        raw.delete(foreign, "unrelated")


def test_close_keeps_the_pool_usable() -> None:
    cache.set("c", 1)
    cache.close()
    assert cache.get("c") == 1


def test_async_twins() -> None:
    async def scenario() -> None:
        assert await cache.aset("x", 1) is True
        assert await cache.aget("x") == 1
        assert await cache.aadd("x", 2) is False
        assert await cache.aadd("y", 2) is True
        assert await cache.ahas_key("y")
        assert await cache.aincr("x", 4) == 5
        assert await cache.adecr("x", 1) == 4
        assert await cache.atouch("x", 50) is True
        assert await cache.aset_many({"m1": 1, "m2": 2}) == []
        assert await cache.aget_many(["m1", "m2"]) == {"m1": 1, "m2": 2}
        await cache.adelete_many(["m1"])
        assert await cache.aget("m1") is None
        assert await cache.aget_or_set("gos", lambda: "made") == "made"
        assert await cache.aincr_version("x") == 2
        assert await cache.adecr_version("x", version=2) == 1
        assert await cache.adelete("x") is True
        await cache.aclear()
        assert await cache.aget("y") is None
        await cache.aclose()

    asyncio.run(scenario())


def test_concurrent_incr_is_exact() -> None:
    cache.set("counter", 0)

    def bump() -> None:
        for _ in range(1000):
            cache.incr("counter")

    threads = [threading.Thread(target=bump) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert cache.get("counter") == 8000


def test_get_or_set_calls_the_producer_once_under_a_stampede() -> None:
    calls: list[int] = []
    lock = threading.Lock()
    barrier = threading.Barrier(16)
    results: list[Any] = []

    def produce() -> str:
        with lock:
            calls.append(1)
        time.sleep(0.2)  # slow enough that every thread arrives while it computes
        return "expensive"

    def worker() -> None:
        barrier.wait()
        results.append(cache.get_or_set("stampede", produce, timeout=60))

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1
    assert results == ["expensive"] * 16
