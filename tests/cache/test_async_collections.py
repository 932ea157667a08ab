"""The async twins of the collection and key commands (``ahset``, ``asadd``, ``azadd``,
``aexpire``, ``akeys``, ``alock``...): the same answers as the sync methods, on the event loop.

Each command script of ``test_collections.py`` (where the sync methods are checked against
django-redis itself) runs twice: on one cache through the sync methods, on another through their
twins, and every step must give the same outcome. While a twin is awaited the sync driver is
forbidden and no ``sync_to_async`` wrapper may be built. The suite runs on a single server, behind
Sentinel, on a Cluster and on Valkey (``make test-topologies``), so these do too.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from asgiref import sync
from django.core.cache.backends.base import CacheKeyWarning
from redis.asyncio.lock import Lock as AsyncLock
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import DataError, ResponseError

from django_rediskit.cache import RedisCache, twins
from django_rediskit.cache import steps as steps_module
from tests.cache.test_collections import (
    HASH_SCRIPT,
    MUTED_CALLS,
    OWN_COMMANDS,
    SET_SCRIPT,
    ZSET_SCRIPT,
    Step,
    _normalized,
    key_script,
    outcome,
    step,
)
from tests.helpers import MakeCache
from tests.servers import RedisServer

#: The commands beyond django-redis's (hash reads, lists), in one script of their own.
MORE_SCRIPT: list[Step] = [
    step("hset", "h", mapping={"a": 1, "b": [2], "c": None}),
    step("hget", "h", "a"),
    step("hget", "h", "nope", "fallback"),
    step("hgetall", "h"),
    step("hgetall", "missing"),
    step("hmget", "h", ["a", "nope", "c"]),
    step("hincrby", "counts", "n", 5),
    step("hincrby", "counts", "n", -2),
    step("rpush", "l", 1, "two", {"three": 3}),
    step("lpush", "l", 0),
    step("llen", "l"),
    step("lrange", "l", 0, -1),
    step("lindex", "l", 1),
    step("lindex", "l", 99),
    step("lrem", "l", "two"),
    step("ltrim", "l", 0, 1),
    step("lrange", "l", 0, -1),
    step("brpop", "l", timeout=1),
    step("brpop", "empty", timeout=0.1),
    step("ttl", "l"),
    step("pttl", "missing"),
    step("hget", "l", "f"),  # WRONGTYPE: raised by both, never muted
]

#: Twins that are not ``a`` + a script step's name (iterators, locks, keys).
EXTRA_TWINS = {"asscan_iter", "aiter_keys", "akeys", "adelete_pattern", "alock"}


@contextlib.contextmanager
def twins_only() -> Iterator[list[bool]]:
    """While the flag (``[True]``) is set, a sync driver call or a ``sync_to_async`` wrapper
    fails the test: an awaited twin must stay on the loop. Script steps that read state back
    with the sync API run with it unset."""
    on_loop = [False]
    wrapped: list[str] = []
    original_run, original_init = steps_module.run, sync.SyncToAsync.__init__

    def guarded_run(*args: Any, **kwargs: Any) -> Any:
        assert not on_loop[0], "an async twin went through the sync driver"
        return original_run(*args, **kwargs)

    def counting(self: Any, func: Any, *args: Any, **kwargs: Any) -> None:
        if on_loop[0]:
            wrapped.append(getattr(func, "__name__", repr(func)))
        original_init(self, func, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(twins, "run", guarded_run)
        patch.setattr(sync.SyncToAsync, "__init__", counting)
        yield on_loop
    assert wrapped == []


async def _awaited(cache: RedisCache, name: str, args: tuple[Any, ...], kw: dict[str, Any]) -> Any:
    if name == "sscan_iter":
        return sorted([member async for member in cache.asscan_iter(*args, **kw)], key=repr)
    method = getattr(cache, f"a{name}")
    return _normalized(await method(*args, **kw))


async def async_outcome(cache: RedisCache, one: Step, on_loop: list[bool]) -> tuple[str, Any]:
    try:
        if callable(one):
            return "ok", _normalized(one(cache))  # reads state back: sync, off the flag
        name, args, kwargs = one
        on_loop[0] = True
        try:
            return "ok", await _awaited(cache, name, args, dict(kwargs))
        finally:
            on_loop[0] = False
    except Exception as exc:
        return "error", type(exc).__name__


def run_twins(make_cache: MakeCache, script: list[Step]) -> list[tuple[str, Any]]:
    """``script`` through the sync methods on one cache, through the twins on another."""
    plain, twinned = make_cache(), make_cache()
    expected = [outcome(plain, one) for one in script]

    async def scenario(on_loop: list[bool]) -> list[tuple[str, Any]]:
        return [await async_outcome(twinned, one, on_loop) for one in script]

    with twins_only() as on_loop:
        got = asyncio.run(scenario(on_loop))
    for number, (one, want, have) in enumerate(zip(script, expected, got, strict=True)):
        assert have == want, f"step {number} {one!r}: sync {want}, twin {have}"
    return got


@pytest.mark.parametrize(
    "script",
    [SET_SCRIPT, HASH_SCRIPT, ZSET_SCRIPT, MORE_SCRIPT],
    ids=["sets", "hashes", "sorted-sets", "hash-reads-and-lists"],
)
def test_twins_answer_as_the_sync_methods(make_cache: MakeCache, script: list[Step]) -> None:
    answers = run_twins(make_cache, script)
    assert ("error", "ResponseError") in answers  # the scripts end on a WRONGTYPE: raised
    assert any(answer[1] not in (None, 0, False, [], set(), {}) for answer in answers)


def test_expiry_twins_answer_as_the_sync_methods(make_cache: MakeCache) -> None:
    *script, last, _lock_dance = key_script()  # the lock dance has its own test below
    script += [lambda cache: cache.set("k", "v", timeout=None), last]
    answers = run_twins(make_cache, script)
    assert answers[2] == ("ok", 10)
    assert answers[-1] == ("ok", True)  # aexpire(key, 1.5): kept to the millisecond


def test_every_command_has_a_twin() -> None:
    scripted = {
        one[0]
        for script in (SET_SCRIPT, HASH_SCRIPT, ZSET_SCRIPT, MORE_SCRIPT, key_script())
        for one in script
        if isinstance(one, tuple)
    }
    more = {one[0] for one in MORE_SCRIPT if isinstance(one, tuple)}
    for name in set(OWN_COMMANDS) | more | {"keys", "iter_keys", "delete_pattern"}:
        twin = getattr(RedisCache, f"a{name}")
        assert f"a{name}" in EXTRA_TWINS or name in scripted, name
        assert twin.__name__ == f"a{name}"
        assert asyncio.iscoroutinefunction(twin) or f"a{name}" in EXTRA_TWINS


def test_keyspace_twins(make_cache: MakeCache) -> None:
    cache = make_cache()
    for i in range(30):
        cache.set(f"user:{i}", i, 60)
    cache.set("other", 1, 60)

    async def scenario(on_loop: list[bool]) -> None:
        on_loop[0] = True
        assert sorted(await cache.akeys("user:1*")) == sorted(cache_keys("user:1", range(30)))
        assert len([key async for key in cache.aiter_keys("user:*", itersize=7)]) == 30
        assert await cache.adelete_pattern("user:*", itersize=4) == 30
        assert await cache.akeys("user:*") == []
        assert await cache.attl("other") == 60
        on_loop[0] = False

    with twins_only() as on_loop:
        asyncio.run(scenario(on_loop))
    assert cache.get("other") == 1


def cache_keys(prefix: str, numbers: range) -> list[str]:
    return [f"user:{i}" for i in numbers if f"user:{i}".startswith(prefix)]


def test_twins_take_a_callers_asyncio_client(make_cache: MakeCache) -> None:
    """``client=`` (django-redis's) is the driver's: a ``redis.asyncio`` client for a twin,
    by keyword or by position."""
    cache = make_cache()
    if cache.topology.is_cluster:
        pytest.skip("a caller's own client of one node; the cluster client is the topology's")
    from django_rediskit.connection.aio import async_topology

    async def scenario() -> None:
        own = async_topology(cache.topology).client(True)
        calls: list[str] = []
        original = own.execute_command

        async def counting(*args: Any, **kwargs: Any) -> Any:
            calls.append(str(args[0]))
            return await original(*args, **kwargs)

        own.execute_command = counting
        try:
            assert await cache.asadd("s", 1, 2, client=own) == 2
            assert await cache.ascard("s", None, own) == 2
            assert await cache.ahset("h", "f", 1, client=own) == 1
            assert await cache.apexpire("h", 5000, client=own) is True
            assert [key async for key in cache.aiter_keys("*", client=own)]
        finally:
            del own.execute_command
        assert calls[:4] == ["SADD", "SCARD", "HSET", "PEXPIRE"]

    asyncio.run(scenario())
    assert cache.smembers("s") == {1, 2}


def test_abrpop_waits_without_blocking_other_tasks(make_cache: MakeCache) -> None:
    """BRPOP holds its connection until a value comes: the twin waits on a pooled connection,
    so the loop's other cache calls (on the shared one) go on meanwhile."""
    cache = make_cache()

    async def scenario() -> tuple[Any, int]:
        await cache.aset("warm", 1, 60)  # the loop's clients exist before the race
        waiting = asyncio.ensure_future(cache.abrpop("jobs", timeout=10))
        done = 0
        for i in range(50):
            await cache.aset(f"k{i}", i, 60)
            done += await cache.aget(f"k{i}") == i
        assert not waiting.done()
        await cache.alpush("jobs", {"job": 1})
        return await asyncio.wait_for(waiting, 5), done

    popped, done = asyncio.run(scenario())
    assert popped == {"job": 1}
    assert done == 50


def test_alock_excludes_other_tasks(make_cache: MakeCache) -> None:
    cache = make_cache()
    inside: list[int] = []
    overlaps: list[int] = []

    async def worker(number: int) -> None:
        for _ in range(5):
            lock = cache.alock("L", timeout=5, sleep=0.01, blocking_timeout=20)
            assert isinstance(lock, AsyncLock)
            async with lock:
                if inside:
                    overlaps.append(number)
                inside.append(number)
                await asyncio.sleep(0.002)
                inside.remove(number)

    async def scenario() -> None:
        await cache.aset("warm", 1, 60)
        await asyncio.gather(*(worker(n) for n in range(6)))
        assert await cache.ahas_key("L") is False  # released

    asyncio.run(scenario())
    assert overlaps == []


def test_concurrent_twins_on_one_key_add_up(make_cache: MakeCache) -> None:
    """Tasks on two loops in two threads, and the sync API in a third, on one sorted set."""
    cache = make_cache()
    errors: list[BaseException] = []

    async def bump(times: int) -> None:
        await cache.azincrby("scores", 0, "player")
        await asyncio.gather(*(cache.azincrby("scores", 1, "player") for _ in range(times)))

    def loop_thread() -> None:
        try:
            asyncio.run(bump(200))
        except BaseException as exc:  # reported below
            errors.append(exc)

    def sync_thread() -> None:
        for _ in range(100):
            cache.zincrby("scores", 1, "player")

    threads = [threading.Thread(target=loop_thread) for _ in range(2)]
    threads.append(threading.Thread(target=sync_thread))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert cache.zscore("scores", "player") == 500.0


def test_bad_input_is_a_clear_error_and_writes_nothing(make_cache: MakeCache) -> None:
    cache = make_cache()

    async def scenario() -> None:
        with pytest.raises(ResponseError, match="float"):
            await cache.azadd("z", {"a": "not a score"})  # type: ignore[dict-item]
        with pytest.raises(DataError):
            await cache.ahset("h")  # neither a field nor a mapping
        with pytest.warns(CacheKeyWarning):
            assert await cache.asadd("a key with spaces", 1) == 1  # as the sync method: a warning
        assert await cache.azcard("z") == 0
        assert await cache.ahlen("h") == 0

    asyncio.run(scenario())


# --- outages ------------------------------------------------------------------------------------


def test_each_twin_is_muted_as_its_sync_method_and_counts_one_failure(down: RedisCache) -> None:
    async def scenario() -> list[tuple[str, Any, Any, int]]:
        seen = []
        for name, args, kwargs, muted in MUTED_CALLS:
            before = down.breaker.failures
            got = await getattr(down, f"a{name}")(*args, **kwargs)
            seen.append((name, got, muted, down.breaker.failures - before))
        return seen

    for name, got, muted, failures in asyncio.run(scenario()):
        assert (got, failures) == (muted, 1), name


def test_async_iterators_are_muted_and_count_one_failure(down: RedisCache) -> None:
    async def drain(iterator: AsyncIterator[Any]) -> list[Any]:
        return [item async for item in iterator]

    async def scenario() -> None:
        for make in (lambda: down.asscan_iter("s"), lambda: down.aiter_keys("*")):
            before = down.breaker.failures
            assert await drain(make()) == []
            assert down.breaker.failures == before + 1
        assert await down.akeys("*") == []
        assert await down.adelete_pattern("*") == 0

    asyncio.run(scenario())


def test_alock_on_a_dead_server_is_a_lock_whose_acquire_raises(opens_at_once: RedisCache) -> None:
    cache = opens_at_once

    async def scenario() -> None:
        lock = cache.alock("job", timeout=5)
        with pytest.raises(RedisConnectionError):
            await lock.acquire(blocking=False)
        assert await cache.asmembers("s") == set()  # opens the breaker (threshold 1)
        assert cache.breaker.is_open
        muted = cache.alock("job", timeout=5)  # CircuitOpen, muted: still a real Lock
        assert isinstance(muted, AsyncLock)
        with pytest.raises(RedisConnectionError):
            await muted.acquire(blocking=False)

    asyncio.run(scenario())


def test_twin_raises_an_outage_without_ignore_exceptions(
    make_cache: MakeCache, private_redis: RedisServer
) -> None:
    cache = make_cache(private_redis.url, OPTIONS={"SOCKET_CONNECT_TIMEOUT": 0.5})
    private_redis.stop()

    with pytest.raises(RedisConnectionError):
        asyncio.run(cache.asmembers("s"))
    assert cache.breaker.failures == 1
