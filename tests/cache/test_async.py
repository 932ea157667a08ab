"""The async twins run natively on redis.asyncio: on the loop's thread, with per-loop pools."""

from __future__ import annotations

import asyncio
import gc
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from django_rediskit.cache import backend as backend_module
from django_rediskit.connection import aio
from django_rediskit.connection.policy import forget_policies
from tests.helpers import MakeCache, on_the_loop_only


@pytest.fixture
def no_threads() -> Iterator[list[str]]:
    """No thread hop and no sync driver during the test."""
    with on_the_loop_only(((backend_module, "run"),)) as wrapped:
        yield wrapped


def test_every_twin_runs_on_the_event_loop_thread(
    make_cache: MakeCache, no_threads: list[str]
) -> None:
    cache = make_cache()

    async def scenario() -> None:
        loop_thread = threading.get_ident()
        assert await cache.aset("a", {"x": 1}, 60) is True
        assert await cache.aget("a") == {"x": 1}
        assert await cache.aget("missing", "dflt") == "dflt"
        assert await cache.aadd("a", 2) is False
        assert await cache.aadd("b", 2) is True
        assert await cache.ahas_key("b") is True
        assert await cache.atouch("b", 120) is True
        assert await cache.aincr("b", 5) == 7
        assert await cache.adecr("b", 2) == 5
        with pytest.raises(ValueError, match="not found"):
            await cache.aincr("nope")
        await cache.aset_many({"m1": 1, "m2": [2]}, 60)
        assert await cache.aget_many(["m1", "m2", "m3"]) == {"m1": 1, "m2": [2]}
        await cache.adelete_many(["m1", "m2"])
        assert await cache.aget_many(["m1", "m2"]) == {}
        assert await cache.aincr_version("a") == 2
        assert await cache.aget("a", version=2) == {"x": 1}
        assert await cache.adecr_version("a", version=2) == 1
        assert await cache.adelete("a") is True
        computed: list[int] = []
        assert await cache.aget_or_set("g", lambda: computed.append(1) or "v", 60) == "v"
        assert await cache.aget_or_set("g", lambda: computed.append(1) or "w", 60) == "v"
        assert computed == [1]
        versions = await cache.atag_versions("t")
        assert versions is not None and set(versions) == {"t"}
        await cache.aset("tagged", 1, 60, versions=versions)
        assert await cache.aget("tagged", tags=["t"]) == 1
        assert await cache.ainvalidate_tags("t") == 1
        assert await cache.aget("tagged") is None
        assert await cache.acompute_and_store("c", lambda: 3, 60, tags=["t"]) == 3
        assert await cache.aget("c") == 3
        await cache.aclear()
        assert await cache.aget("b") is None and await cache.aget("c") is None
        await cache.aclose()
        assert threading.get_ident() == loop_thread

    asyncio.run(scenario())


def test_two_event_loops_in_two_threads_share_nothing_but_the_data(make_cache: MakeCache) -> None:
    cache = make_cache()
    errors: list[BaseException] = []

    async def worker(name: str) -> None:
        for i in range(100):
            await cache.aset(f"{name}:{i}", i, 60)
            assert await cache.aget(f"{name}:{i}") == i
        await asyncio.gather(*(cache.aincr(f"{name}:0", 1) for _ in range(20)))

    def thread(name: str) -> None:
        try:
            asyncio.run(worker(name))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=thread, args=(f"t{n}",)) for n in range(2)]
    for each in threads:
        each.start()
    for each in threads:
        each.join(60)
    assert errors == []
    assert cache.get("t0:0") == 20 and cache.get("t1:99") == 99


def test_a_closed_loops_clients_are_released(make_cache: MakeCache) -> None:
    cache = make_cache()

    async def use() -> int:
        await cache.aset("k", 1, 60)
        return aio.loops_with_clients()

    for _ in range(3):
        asyncio.run(use())
        gc.collect()
    # Only the running loop holds clients: the three closed ones were dropped.
    assert asyncio.run(use()) == 1


def test_async_outages_follow_the_same_policy(make_cache: MakeCache, private_redis: Any) -> None:
    muted = make_cache(private_redis.url, OPTIONS={"IGNORE_EXCEPTIONS": True})

    async def scenario() -> None:
        await muted.aset("k", 1, 60)
        private_redis.stop()
        before = muted.breaker.failures
        assert await muted.aget("k", "fallback") == "fallback"
        assert muted.breaker.failures == before + 1
        forget_policies()
        fresh = make_cache(private_redis.url, prefix="fresh")
        with pytest.raises(redis.exceptions.ConnectionError):
            await fresh.aget("k")
        assert fresh.breaker.failures == 1

    asyncio.run(scenario())
    private_redis.restart()


@pytest.mark.standalone_only
def test_three_hundred_concurrent_reads_share_a_bounded_pool(
    make_cache: MakeCache, private_redis: Any
) -> None:
    """Tasks wait for one of ASYNC_MAX_CONNECTIONS connections instead of opening one each
    (or failing past redis-py's cap, which the breaker would take for an outage)."""
    cache = make_cache(private_redis.url, OPTIONS={"ASYNC_MAX_CONNECTIONS": 4})
    cache.set("k", "v", 60)

    async def scenario() -> list[Any]:
        return await asyncio.gather(*(cache.aget("k") for _ in range(300)))

    assert asyncio.run(scenario()) == ["v"] * 300
    clients = private_redis.client().client_list()
    assert len(clients) <= 4 + 2  # the pool, plus this listing and the sync client


def test_a_fresh_client_serves_a_burst_of_concurrent_first_calls(make_cache: MakeCache) -> None:
    """No warm-up call needed: on Cluster the slot map is loaded once, before the burst."""
    cache = make_cache()
    cache.set("burst", 1, 60)

    async def scenario() -> list[Any]:
        return await asyncio.gather(*(cache.aget("burst") for _ in range(50)))

    assert asyncio.run(scenario()) == [1] * 50
