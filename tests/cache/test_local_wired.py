"""The local cache wired into the backend (OPTIONS["LOCAL_CACHE"]), against a real Redis."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured

from django_rediskit.cache.backend import RedisCache
from django_rediskit.cache.local import NOT_HELD
from django_rediskit.cache.local.registry import close_local_caches
from tests.cache.commands import count_commands
from tests.helpers import MakeCache

pytestmark = pytest.mark.standalone_only  # tests/cache/test_local_topologies.py covers the rest


@pytest.fixture(autouse=True)
def _stop_trackers() -> Iterator[None]:
    yield
    close_local_caches()


def eventually(check: Callable[[], bool], deadline: float = 5.0) -> bool:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if check():
            return True
        time.sleep(0.005)
    return check()


def pair(make_cache: MakeCache, **local: Any) -> tuple[RedisCache, RedisCache]:
    """A cache with the local cache on, and a plain writer on the same prefix (another
    process, as far as the local cache can tell: it has no local cache of its own)."""
    prefix = f"lc-{uuid.uuid4().hex[:8]}"
    cache = make_cache(prefix=prefix, OPTIONS={"LOCAL_CACHE": local or True})
    writer = make_cache(prefix=prefix)
    local_cache = cache.local_cache
    assert local_cache is not None and local_cache.wait_live(5)
    return cache, writer


def test_hot_reads_are_served_locally_and_a_write_elsewhere_invalidates(
    make_cache: MakeCache,
) -> None:
    cache, writer = pair(make_cache)
    writer.set("k", {"v": 1}, 60)
    assert cache.get("k") == {"v": 1}
    with count_commands() as log:
        assert cache.get("k") == {"v": 1}
    assert "GET" not in log.commands
    writer.set("k", {"v": 2}, 60)
    assert eventually(lambda: cache.get("k") == {"v": 2})
    writer.delete("k")
    assert eventually(lambda: cache.get("k") is None)


def test_own_writes_are_read_back_at_once_and_values_are_fresh_objects(
    make_cache: MakeCache,
) -> None:
    cache, _writer = pair(make_cache)
    for n in range(20):
        cache.set("mine", [n], 60)
        assert cache.get("mine") == [n]  # never the previous value
    got = cache.get("mine")
    got.append("mutated")
    assert cache.get("mine") == [19]
    assert cache.incr("count", 1, ignore_key_check=True) == 1
    assert cache.get("count") == 1
    cache.incr("count")
    assert cache.get("count") == 2
    cache.delete("mine")
    assert cache.get("mine") is None


def test_tagged_entries_follow_invalidations_from_another_process(make_cache: MakeCache) -> None:
    cache, writer = pair(make_cache)
    cache.set("card", "old", 60, tags=["product:1"])
    assert cache.get("card") == "old"
    assert cache.get("card") == "old"  # entry and tag version both held locally now
    writer.invalidate_tags("product:1")
    assert eventually(lambda: cache.get("card") is None)


def test_get_many_clear_and_keys_outside_the_globs(make_cache: MakeCache) -> None:
    cache, writer = pair(make_cache, KEYS=["hot:*"])
    writer.set_many({"hot:a": 1, "hot:b": 2, "cold": 3}, 60)
    assert cache.get_many(["hot:a", "hot:b", "cold"]) == {"hot:a": 1, "hot:b": 2, "cold": 3}
    local = cache.local_cache
    assert local is not None
    assert local.entries >= 2 and local.get(cache.make_key("cold")) is local.get("nothing")
    cache.clear()
    assert local.entries == 0
    assert cache.get_many(["hot:a", "cold"]) == {}


def test_async_reads_share_the_local_cache(make_cache: MakeCache) -> None:
    cache, writer = pair(make_cache)
    writer.set("a", "x", 60)

    async def scenario() -> None:
        assert await cache.aget("a") == "x"
        hits = cache.local_cache.stats.hits  # type: ignore[union-attr]
        assert await cache.aget("a") == "x"
        assert cache.local_cache.stats.hits == hits + 1  # type: ignore[union-attr]

    asyncio.run(scenario())


def test_a_restarted_server_flushes_the_local_cache(
    make_cache: MakeCache, private_redis: Any
) -> None:
    cache = make_cache(private_redis.url, OPTIONS={"LOCAL_CACHE": True})
    local = cache.local_cache
    assert local is not None and local.wait_live(5)
    cache.set("k", 1, 60)
    assert cache.get("k") == 1
    private_redis.restart()  # empty again: a held value would now be stale
    assert eventually(lambda: local.entries == 0)
    assert local.wait_live(10)
    assert cache.get("k") is None


@pytest.mark.parametrize(
    "bad", [{"MAX_ENTRIES": 0}, {"SIZE": 1}, {"KEYS": "hot:*"}, "yes", {"TTL": -1}]
)
def test_bad_local_cache_options_are_configuration_errors(make_cache: MakeCache, bad: Any) -> None:
    with pytest.raises(ImproperlyConfigured):
        cache = make_cache(OPTIONS={"LOCAL_CACHE": bad})
        cache.get("k")


RAN: list[str] = []


class Evil:
    def __reduce__(self) -> tuple[Any, ...]:
        return (RAN.append, ("pickle ran",))


def test_a_forged_value_is_never_kept_locally_nor_unpickled(make_cache: MakeCache) -> None:
    """Local hits skip the signature check because only values that passed it are kept: a
    planted pickle with a wrong signature is a miss every time, and never runs."""
    import pickle

    from django_rediskit.cache.codec import SIGNATURE_SIZE

    cache, writer = pair(make_cache)
    writer.set("k", "genuine", 60)
    genuine = writer.client.get_client().get(writer.make_key("k"))
    forged = genuine[:1] + bytes(SIGNATURE_SIZE) + pickle.dumps(Evil())
    writer.client.get_client().set(writer.make_key("k"), forged)
    local = cache.local_cache
    assert local is not None
    for _ in range(3):
        assert cache.get("k") is None
    assert RAN == []
    assert local.get(cache.make_key("k")) is NOT_HELD  # never kept
    writer.set("k", "genuine again", 60)
    # A genuine value is kept (once the write's own announcement has gone by: it may drop the
    # first copy read, which is right).
    assert eventually(
        lambda: cache.get("k") == "genuine again" and local.get(cache.make_key("k")) is not NOT_HELD
    )
