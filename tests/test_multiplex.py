"""The shared pipelined async connection (``connection/multiplex.py``) on private servers: one
connection for a loop's concurrent commands, replies to the right callers, and every way a
connection ends (restart, timeout, cancellation, a closed loop) failing only what it must."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
import redis
from redis.exceptions import NoScriptError, ResponseError

from django_rediskit.connection.aio import async_topology
from django_rediskit.connection.multiplex import MultiplexedRedis
from tests import servers
from tests.helpers import MakeCache


def clients_of(server: servers.RedisServer) -> list[dict[str, Any]]:
    """The server's client connections except the one asking."""
    with server.client() as admin:
        me = admin.client_id()
        return [c for c in admin.client_list() if int(c["id"]) != me]


def test_concurrent_commands_get_their_own_replies(
    private_redis: servers.RedisServer, make_cache: MakeCache
) -> None:
    cache = make_cache(private_redis.url)
    values = {f"k{n}": {"n": n, "pad": "x" * (n * 37 % 3000)} for n in range(200)}
    cache.set_many(values)

    async def scenario() -> tuple[list[Any], Any]:
        client = async_topology(cache.topology).client(True)
        reads = [cache.aget(key) for key in values]
        writes = [cache.aset(f"w{n}", n) for n in range(200)]
        got = await asyncio.gather(
            *(item for pair in zip(reads, writes, strict=True) for item in pair)
        )
        return list(got[::2]), client

    got, client = asyncio.run(scenario())
    assert isinstance(client, MultiplexedRedis)
    assert got == list(values.values())
    assert cache.get_many([f"w{n}" for n in range(200)]) == {f"w{n}": n for n in range(200)}


def test_one_connection_for_the_loop_while_it_runs(
    private_redis: servers.RedisServer, make_cache: MakeCache
) -> None:
    cache = make_cache(private_redis.url)
    cache.set("hot", "value")

    async def scenario() -> tuple[int, int]:
        await cache.aget("hot")  # connect
        before = len(clients_of(private_redis))
        results = await asyncio.gather(*(cache.aget("hot") for _ in range(300)))
        assert results == ["value"] * 300
        return before, len(clients_of(private_redis))

    before, during = asyncio.run(scenario())
    assert during == before  # 300 concurrent gets opened nothing


def test_error_replies_are_redis_py_exceptions_and_do_not_desync(
    private_redis: servers.RedisServer, make_cache: MakeCache
) -> None:
    cache = make_cache(private_redis.url)

    async def scenario() -> list[Any]:
        client = async_topology(cache.topology).client(True)
        await client.set("plain", b"1")
        return await asyncio.gather(
            client.hget("plain", "f"),  # WRONGTYPE
            client.get("plain"),
            client.evalsha("0" * 40, 0),  # NOSCRIPT
            client.incr("plain"),
            return_exceptions=True,
        )

    wrongtype, plain, noscript, incremented = asyncio.run(scenario())
    assert isinstance(wrongtype, ResponseError) and "WRONGTYPE" in str(wrongtype)
    assert plain == b"1"
    assert isinstance(noscript, NoScriptError)
    assert incremented == 2


def test_reply_callbacks_apply_as_in_redis_py(
    private_redis: servers.RedisServer, make_cache: MakeCache
) -> None:
    cache = make_cache(private_redis.url)

    async def scenario() -> tuple[Any, ...]:
        client = async_topology(cache.topology).client(True)
        await client.zadd("z", {"a": 1.5, "b": 2})
        await client.hset("h", mapping={"f": "v"})
        return (
            await client.set("s", b"x", nx=True),
            await client.set("s", b"y", nx=True),
            await client.zrange("z", 0, -1, withscores=True),
            await client.hgetall("h"),
            await client.exists("s", "nope"),
            await client.ping(),
        )

    assert asyncio.run(scenario()) == (
        True,
        None,
        [(b"a", 1.5), (b"b", 2.0)],
        {b"f": b"v"},
        1,
        True,
    )


def test_a_restart_fails_what_was_in_flight_then_reconnects(
    private_redis: servers.RedisServer, make_cache: MakeCache
) -> None:
    """The cache's policy sees redis-py's ConnectionError (fail open: a miss), then recovers."""
    cache = make_cache(
        private_redis.url, OPTIONS={"CIRCUIT_BREAKER": False, "IGNORE_EXCEPTIONS": True}
    )
    cache.set("k", "before")

    async def scenario() -> tuple[Any, Any, Any]:
        first = await cache.aget("k")
        private_redis.stop()
        during = await cache.aget("k", "fallback")
        private_redis.start()
        await cache.aset("k", "after")
        return first, during, await cache.aget("k")

    try:
        assert asyncio.run(scenario()) == ("before", "fallback", "after")
    finally:
        if private_redis.process is None:
            private_redis.start()


def test_a_reply_slower_than_the_socket_timeout_resets_the_connection(
    private_redis: servers.RedisServer, make_cache: MakeCache
) -> None:
    cache = make_cache(private_redis.url, OPTIONS={"SOCKET_TIMEOUT": 0.3})

    async def scenario() -> tuple[Any, Any, Any]:
        client = async_topology(cache.topology).client(True)
        await client.set("k", b"v")
        slow = asyncio.ensure_future(client.execute_command("DEBUG", "SLEEP", "1"))
        behind = asyncio.ensure_future(client.get("k"))  # queued behind the slow reply
        results = await asyncio.gather(slow, behind, return_exceptions=True)
        await asyncio.sleep(0.8)  # the server finishes sleeping
        return results[0], results[1], await client.get("k")

    slow, behind, after = asyncio.run(scenario())
    assert isinstance(slow, redis.TimeoutError)
    assert isinstance(behind, redis.TimeoutError)  # its reply could no longer be told apart
    assert after == b"v"  # a new connection, in step


def test_a_cancelled_caller_does_not_shift_the_replies_of_others(
    private_redis: servers.RedisServer, make_cache: MakeCache
) -> None:
    cache = make_cache(private_redis.url)

    async def scenario() -> list[Any]:
        client = async_topology(cache.topology).client(True)
        await client.mset({f"c{n}": str(n).encode() for n in range(50)})
        tasks = [asyncio.ensure_future(client.get(f"c{n}")) for n in range(50)]
        await asyncio.sleep(0)  # all queued and written
        for task in tasks[::3]:
            task.cancel()
        done = await asyncio.gather(*tasks, return_exceptions=True)
        return [None if isinstance(r, asyncio.CancelledError) else r for r in done]

    results = asyncio.run(scenario())
    for n, result in enumerate(results):
        assert result == (None if n % 3 == 0 else str(n).encode())


def test_blocking_commands_use_the_pool_and_block_nobody(
    private_redis: servers.RedisServer, make_cache: MakeCache
) -> None:
    cache = make_cache(private_redis.url)

    async def scenario() -> tuple[Any, list[Any]]:
        client = async_topology(cache.topology).client(True)
        waiting = asyncio.ensure_future(client.brpop(["queue"], timeout=2))
        await asyncio.sleep(0.05)
        meanwhile = [await client.set("x", b"1"), await client.get("x")]
        await client.lpush("queue", b"job")
        return await waiting, meanwhile

    popped, meanwhile = asyncio.run(scenario())
    assert popped == (b"queue", b"job")
    assert meanwhile == [True, b"1"]


def test_two_word_commands_are_sent_as_two_words_and_routed_by_the_first(
    private_redis: servers.RedisServer, make_cache: MakeCache
) -> None:
    """redis-py names ``SCRIPT LOAD`` or ``CLIENT SETNAME`` in one string; Redis wants two
    arguments. A CLIENT subcommand changes its connection: it goes to a pooled one."""
    cache = make_cache(private_redis.url)

    async def scenario() -> tuple[Any, ...]:
        client = async_topology(cache.topology).client(True)
        sha = await client.script_load("return 7")
        assert await client.evalsha(sha, 0) == 7
        await client.client_setname("pooled-one")
        lock = client.lock("L", timeout=5)
        async with lock:  # redis-py's Lock loads its scripts with SCRIPT LOAD
            held = await client.exists("L")
        return sha, held, await client.exists("L")

    sha, held, after = asyncio.run(scenario())
    assert len(sha) == 40
    assert (held, after) == (1, 0)
    names = [c.get("name") for c in private_redis.client().client_list()]
    assert "pooled-one" in names


def test_password_and_database_are_sent_on_connect(make_cache: MakeCache) -> None:
    server = servers.RedisServer().start()
    try:
        with server.client() as admin:
            admin.config_set("requirepass", "s3cret")
        cache = make_cache(f"redis://:s3cret@127.0.0.1:{server.port}/3")

        async def scenario() -> Any:
            await cache.aset("k", "in db 3")
            return await cache.aget("k")

        assert asyncio.run(scenario()) == "in db 3"
        with server.client(password="s3cret", db=3) as admin:
            assert admin.exists(cache.make_and_validate_key("k")) == 1
        wrong = make_cache(
            f"redis://:wrong@127.0.0.1:{server.port}/3", OPTIONS={"IGNORE_EXCEPTIONS": True}
        )
        # A configuration error, raised even when outages are muted (as on the sync path).
        with pytest.raises(redis.AuthenticationError):
            asyncio.run(wrong.aget("k"))
    finally:
        server.close()


def test_multiplexing_can_be_switched_off(
    private_redis: servers.RedisServer, make_cache: MakeCache
) -> None:
    cache = make_cache(private_redis.url, OPTIONS={"ASYNC_MULTIPLEX": False})

    async def scenario() -> Any:
        await cache.aset("k", 1)
        return async_topology(cache.topology).client(True), await cache.aget("k")

    client, value = asyncio.run(scenario())
    assert not isinstance(client, MultiplexedRedis) and value == 1


def test_two_loops_in_two_threads_each_have_their_own_connection(
    private_redis: servers.RedisServer, make_cache: MakeCache
) -> None:
    cache = make_cache(private_redis.url)
    errors: list[BaseException] = []
    seen: list[int] = []

    def worker(n: int) -> None:
        async def scenario() -> None:
            for i in range(200):
                await cache.aset(f"t{n}:{i}", i)
                assert await cache.aget(f"t{n}:{i}") == i
            seen.append(id(async_topology(cache.topology).client(True).multiplexer))

        try:
            asyncio.run(scenario())
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(set(seen)) == 2


def test_a_closed_loops_connection_is_closed(
    private_redis: servers.RedisServer, make_cache: MakeCache
) -> None:
    cache = make_cache(private_redis.url)
    cache.set("k", 1)

    async def use() -> Any:
        return await cache.aget("k")

    assert asyncio.run(use()) == 1
    opened = len(clients_of(private_redis))  # the closed loop's socket is still open here
    assert asyncio.run(use()) == 1  # a new loop: the closed loop's socket is closed
    assert _settled_count(private_redis, opened) == opened


def _settled_count(server: servers.RedisServer, limit: int) -> int:
    """The connection count once the server has seen abandoned sockets close."""
    deadline = time.monotonic() + 2
    while (count := len(clients_of(server))) > limit and time.monotonic() < deadline:
        time.sleep(0.02)
    return count


@pytest.mark.parametrize("bad", [object(), True])
def test_a_value_redis_cannot_take_is_refused_before_anything_is_sent(
    private_redis: servers.RedisServer, make_cache: MakeCache, bad: Any
) -> None:
    cache = make_cache(private_redis.url)

    async def scenario() -> Any:
        client = async_topology(cache.topology).client(True)
        with pytest.raises(redis.DataError):
            await client.set("k", bad)
        return await client.ping()  # the connection is still in step

    assert asyncio.run(scenario()) is True
