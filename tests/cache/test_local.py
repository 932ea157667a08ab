"""The local cache on a private standalone server: bounds, TTL, invalidation by Redis, the
ticket protocol, and losing tracking (CLIENT KILL, restart, stop, a hung server, FLUSHDB)."""

from __future__ import annotations

import multiprocessing
import random
import sys
import threading
import time
from collections.abc import Iterator

import pytest
from redis import Redis

from django_rediskit.cache.local import ENTRY_OVERHEAD, NOT_HELD, LocalCache
from django_rediskit.cache.local.globs import key_matcher, tracking_prefixes
from django_rediskit.globs import matches
from tests.cache.localtools import (
    fill,
    fill_once,
    kill_tracking,
    local_cache,
    not_held,
    poll,
    settle,
    topology,
)
from tests.servers import RedisServer


@pytest.fixture
def server(private_redis: RedisServer) -> RedisServer:
    return private_redis


@pytest.fixture
def client(server: RedisServer) -> Iterator[Redis]:
    with server.client() as redis_client:
        yield redis_client


@pytest.fixture
def local(server: RedisServer) -> Iterator[LocalCache]:
    cache = local_cache(server.url, ["p:"])
    yield cache
    cache.close()


def test_miss_then_hit_returns_the_raw_bytes_and_counts(local: LocalCache, client: Redis) -> None:
    client.set("p:a", b"\x80raw")
    settle(local, client)
    assert local.get("p:a") is NOT_HELD
    assert fill(local, client, "p:a") is True
    assert local.get("p:a") == b"\x80raw"
    assert local.get("p:a") == b"\x80raw"
    assert local.stats.hits == 2
    assert local.entries == 1
    assert local.bytes == ENTRY_OVERHEAD + len("p:a") + 4


def test_a_missing_key_is_remembered_until_it_is_written(local: LocalCache, client: Redis) -> None:
    assert fill(local, client, "p:absent") is True
    assert local.get("p:absent") is None  # held: "Redis has no such key"
    client.set("p:absent", b"now")  # BCAST announces writes to keys nobody had
    assert poll(not_held(local, "p:absent"))
    fill(local, client, "p:absent")
    assert local.get("p:absent") == b"now"


def test_a_write_by_another_client_invalidates(local: LocalCache, client: Redis) -> None:
    client.set("p:k", b"1")
    settle(local, client)
    assert fill(local, client, "p:k")
    invalidations = local.stats.invalidations
    started = time.monotonic()
    client.set("p:k", b"2")
    assert poll(not_held(local, "p:k"), deadline=2.0)
    assert time.monotonic() - started < 2.0
    assert local.stats.invalidations == invalidations + 1
    fill(local, client, "p:k")
    assert local.get("p:k") == b"2"


def test_writes_of_this_process_through_the_topology_invalidate(local: LocalCache) -> None:
    """No NOLOOP: writes made through this process's own pools are announced too."""
    data = local.topology.client()
    data.set("p:own", b"1")
    fill(local, data, "p:own")
    data.delete("p:own")
    assert poll(not_held(local, "p:own"))


def test_keys_outside_the_prefixes_or_globs_are_not_wanted(server: RedisServer) -> None:
    cache = local_cache(server.url, ["p:"], keys=["p:1:hot:*", "p:tv:*"])
    try:
        assert cache.wants("p:1:hot:x") and cache.wants("p:tv:{t}")
        assert not cache.wants("p:1:cold:x")
        assert not cache.wants("q:1:hot:x")  # no tracking there: never cached
        assert cache.begin("p:1:cold:x") is None
    finally:
        cache.close()


def test_overlapping_prefixes_are_merged_and_accepted_by_redis(
    server: RedisServer, client: Redis
) -> None:
    cache = local_cache(server.url, ["p:tv:", "p:", "p:1:", "other:"])
    try:
        assert cache.prefixes == ("other:", "p:")
        client.set("p:tv:{t}", b"v")
        fill(cache, client, "p:tv:{t}")
        client.delete("p:tv:{t}")
        assert poll(not_held(cache, "p:tv:{t}"))
    finally:
        cache.close()


def test_lru_bound_by_entries_evicts_the_least_recently_used(
    server: RedisServer, client: Redis
) -> None:
    cache = local_cache(server.url, ["p:"], max_entries=3)
    try:
        for name in "abc":
            fill(cache, client, f"p:{name}")
        assert cache.get("p:a") is None  # touch a: b is now the oldest
        fill(cache, client, "p:d")
        assert cache.entries == 3
        assert cache.get("p:b") is NOT_HELD
        assert cache.get("p:a") is None and cache.get("p:d") is None
        assert cache.stats.evictions == 1
    finally:
        cache.close()


def test_lru_bound_by_bytes(server: RedisServer, client: Redis) -> None:
    value = b"x" * 1000
    per_entry = ENTRY_OVERHEAD + len("p:0") + len(value)
    cache = local_cache(server.url, ["p:"], max_bytes=3 * per_entry + 10, max_entry_bytes=per_entry)
    try:
        client.mset({f"p:{i}": value for i in range(5)})
        settle(cache, client)
        cache.flush()
        for i in range(5):
            assert fill_once(cache, client, f"p:{i}")
            assert cache.bytes <= cache.max_bytes
        assert cache.entries == 3
        assert [cache.get(f"p:{i}") is NOT_HELD for i in range(5)] == [True, True] + [False] * 3
        client.set("p:big", b"y" * (per_entry + 1))
        assert fill(cache, client, "p:big", deadline=0.3) is False  # over max_entry_bytes
        assert cache.entries == 3
    finally:
        cache.close()


def test_ttl_caps_every_entry(server: RedisServer, client: Redis) -> None:
    cache = local_cache(server.url, ["p:"], ttl=0.3)
    try:
        client.set("p:t", b"1")
        settle(cache, client)
        stored_at = time.monotonic()
        assert fill_once(cache, client, "p:t")
        assert cache.get("p:t") == b"1"
        assert poll(not_held(cache, "p:t"), deadline=3.0)
        assert time.monotonic() - stored_at >= 0.3
    finally:
        cache.close()


def test_put_ttl_from_redis_shortens_the_local_lifetime(local: LocalCache, client: Redis) -> None:
    client.set("p:e", b"1", px=5000)
    settle(local, client)
    ticket = local.begin("p:e")
    raw = client.get("p:e")
    assert local.put("p:e", raw, ticket, ttl=0.2) is True
    assert local.get("p:e") == b"1"
    assert poll(not_held(local, "p:e"), deadline=3.0)
    ticket = local.begin("p:e")
    assert local.put("p:e", b"1", ticket, ttl=0) is False  # already expired: not kept


# --- the ticket protocol ---------------------------------------------------------------------


def test_a_read_that_started_before_an_invalidation_is_not_stored_after_it(
    local: LocalCache, client: Redis
) -> None:
    client.set("p:k", b"old")
    client.set("p:marker", b"m")
    fill(local, client, "p:marker")
    ticket = local.begin("p:k")
    raw = client.get("p:k")  # the reader's GET: "old"
    client.set("p:k", b"new")  # another process writes...
    client.set("p:marker", b"m2")  # ...and announcements arrive in order:
    assert poll(not_held(local, "p:marker"))  # once marker's is in, k's was handled before it
    assert local.put("p:k", raw, ticket) is False
    assert local.get("p:k") is NOT_HELD


def test_without_a_write_in_between_the_same_sequence_stores(
    local: LocalCache, client: Redis
) -> None:
    """Control for the test above: it fails only because of the write."""
    client.set("p:k", b"old")
    client.set("p:marker", b"m")
    fill(local, client, "p:marker")
    # The setup's own announcements come in order: once the marker's second write has been
    # seen, p:k's has too, so it cannot cancel the ticket taken below.
    client.set("p:marker", b"m1")
    assert poll(not_held(local, "p:marker"))
    fill(local, client, "p:marker")
    ticket = local.begin("p:k")
    raw = client.get("p:k")
    client.set("p:marker", b"m2")
    assert poll(not_held(local, "p:marker"))
    assert local.put("p:k", raw, ticket) is True


def test_own_invalidate_and_flush_cancel_tickets(local: LocalCache, client: Redis) -> None:
    ticket = local.begin("p:k")
    local.invalidate(["p:k"])
    assert local.put("p:k", b"v", ticket) is False
    ticket = local.begin("p:k")
    local.flush()
    assert local.put("p:k", b"v", ticket) is False
    ticket = local.begin("p:k")
    assert local.put("p:k", b"v", ticket) is True
    assert local.put("p:k", b"v", ticket) is False  # a ticket is good for one put


def test_concurrent_begins_share_one_ticket_and_one_put_wins(local: LocalCache) -> None:
    first, second = local.begin("p:k"), local.begin("p:k")
    assert first is second
    assert local.put("p:k", b"a", first) is True
    assert local.put("p:k", b"b", second) is False
    assert local.get("p:k") == b"a"


# --- losing tracking ---------------------------------------------------------------------------


def _assert_serving_nothing(cache: LocalCache, key: str) -> None:
    assert cache.get(key) is NOT_HELD
    assert cache.wants(key) is False
    assert cache.begin(key) is None
    assert cache.entries == 0


def _assert_tracking_works(cache: LocalCache, client: Redis, key: str) -> None:
    """Tracking really came back (not just a connection): a write is announced again."""
    client.set(key, b"before")
    settle(cache, client)
    assert fill(cache, client, key) is True
    assert cache.get(key) == b"before"
    client.set(key, b"after")
    assert poll(not_held(cache, key))


def test_client_kill_of_the_tracking_connection_flushes_then_recovers(
    local: LocalCache, client: Redis
) -> None:
    client.set("p:k", b"1")
    fill(local, client, "p:k")
    flushes = local.stats.flushes
    old_ids = {cid for _h, _p, cid in local.tracking_clients()}
    assert kill_tracking(client) == 1
    # the reconnect may take well under a millisecond: watch the counters, not the window
    assert poll(lambda: local.stats.tracking_losses == 1, deadline=2.0)
    assert local.stats.flushes == flushes + 1
    assert local.get("p:k") is NOT_HELD
    assert local.wait_live(5)
    assert {cid for _h, _p, cid in local.tracking_clients()}.isdisjoint(old_ids)
    _assert_tracking_works(local, client, "p:k")


def test_server_restart_flushes_and_recovers(local: LocalCache, server: RedisServer) -> None:
    with server.client() as before:
        before.set("p:k", b"1")
        fill(local, before, "p:k")
    server.restart()
    assert local.stats.flushes >= 1 or poll(lambda: local.stats.flushes >= 1)
    assert local.get("p:k") is NOT_HELD
    assert local.wait_live(5)
    with server.client() as after:
        _assert_tracking_works(local, after, "p:k")


def test_redis_down_serves_nothing_until_it_is_back(local: LocalCache, server: RedisServer) -> None:
    with server.client() as before:
        fill(local, before, "p:k")
    server.stop()
    assert poll(lambda: not local.live, deadline=2.0)
    _assert_serving_nothing(local, "p:k")
    time.sleep(0.5)  # several reconnect attempts fail meanwhile
    _assert_serving_nothing(local, "p:k")
    server.start()
    assert local.wait_live(5)
    with server.client() as after:
        _assert_tracking_works(local, after, "p:k")


def test_an_unresponsive_server_is_caught_by_the_ping_health_check(
    local: LocalCache, server: RedisServer
) -> None:
    """A socket that stays open but never answers (here CLIENT PAUSE; in life a silent network
    failure) must not keep the cache serving: the PING goes unanswered and tracking is dropped."""
    with server.client() as redis_client:
        fill(local, redis_client, "p:k")
    with server.paused(2.0):
        assert poll(lambda: not local.live, deadline=1.8)
        assert local.get("p:k") is NOT_HELD
    assert local.wait_live(5)


def test_flushdb_flushes_everything(local: LocalCache, client: Redis) -> None:
    client.mset({f"p:{name}": b"v" for name in "abc"})
    settle(local, client)
    for name in "abc":
        assert fill(local, client, f"p:{name}")
    flushes = local.stats.flushes
    client.flushdb()
    assert poll(lambda: local.entries == 0)
    assert local.stats.flushes == flushes + 1
    assert local.live  # a flush, not a loss of tracking


def test_close_drops_tracking_and_is_idempotent(server: RedisServer, client: Redis) -> None:
    cache = local_cache(server.url, ["p:"])
    fill(cache, client, "p:k")
    cache.close()
    cache.close()
    assert not cache.live and cache.get("p:k") is NOT_HELD and cache.begin("p:k") is None
    # The server notices the closed socket a moment later (it reads the EOF on its own loop).
    deadline = time.monotonic() + 5
    while "rediskit-local-invalidation" in (names := [c.get("name") for c in client.client_list()]):
        if time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert "rediskit-local-invalidation" not in names


def _child_checks(url: str, cache: LocalCache, queue: multiprocessing.Queue[str]) -> None:
    try:
        assert cache.get("p:k") is NOT_HELD, "inherited entries must not be served"
        assert cache.wait_live(10), "child never tracked on its own"
        with Redis.from_url(url) as redis_client:
            _assert_tracking_works(cache, redis_client, "p:child")
        queue.put("ok")
    except BaseException as exc:
        queue.put(repr(exc))


def test_a_forked_child_starts_empty_and_tracks_on_its_own(
    local: LocalCache, server: RedisServer, client: Redis
) -> None:
    client.set("p:k", b"1")
    settle(local, client)
    assert fill(local, client, "p:k")
    context = multiprocessing.get_context("fork")
    queue: multiprocessing.Queue[str] = context.Queue()
    child = context.Process(target=_child_checks, args=(server.url, local, queue))
    child.start()
    assert queue.get(timeout=30) == "ok"
    child.join(10)
    # the parent's own tracking connection survived the child
    assert local.get("p:k") == b"1"
    _assert_tracking_works(local, client, "p:parent")


# --- input and concurrency ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prefixes", "kwargs", "error"),
    [
        ("p:", {}, TypeError),
        ([], {}, ValueError),
        ([b"p:"], {}, TypeError),
        (["p:"], {"max_entries": 0}, ValueError),
        (["p:"], {"max_bytes": -1}, ValueError),
        (["p:"], {"max_entries": True}, ValueError),
        (["p:"], {"ttl": 0}, ValueError),
        (["p:"], {"keys": "p:*"}, TypeError),
        (["p:"], {"keys": []}, ValueError),
        (["p:"], {"health_interval": 0}, ValueError),
    ],
)
def test_bad_configuration_is_refused(
    redis_url: str, prefixes: object, kwargs: dict[str, object], error: type[Exception]
) -> None:
    with pytest.raises(error):
        LocalCache(topology(redis_url), prefixes, **kwargs)  # type: ignore[arg-type]


def test_bad_arguments_are_refused(local: LocalCache) -> None:
    ticket = local.begin("p:k")
    with pytest.raises(TypeError):
        local.put("p:k", "text", ticket)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        local.invalidate("p:k")
    assert local.put("p:k", b"v", None) is False


def test_globs_read_like_redis() -> None:
    """The compiled KEYS matcher agrees with the inspector's Redis-faithful glob reader."""
    rng = random.Random(12)
    alphabet = ["a", "b", ":", "*", "?", "[", "]", "^", "-", "\\", "é"]
    for _ in range(3000):
        pattern = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 7)))
        match = key_matcher([pattern])
        for _ in range(5):
            key = "".join(rng.choice(["a", "b", ":", "-", "]", "^", "é"]) for _ in range(6))
            key = key[: rng.randint(0, 6)]
            data = key.encode()
            expected = matches(pattern, data)
            got = True if match is None else match(data) is not None
            assert got == expected, (pattern, key)


def test_tracking_prefixes_drop_covered_ones() -> None:
    assert tracking_prefixes(["a:b", "a:", "b", "bc", "a:"]) == ("a:", "b")
    assert tracking_prefixes(["", "x"]) == ("",)


def test_threads_hammering_one_instance_keep_its_books(server: RedisServer, client: Redis) -> None:
    """8 threads get/begin/put/invalidate on 50 keys while Redis announces writes: the byte and
    entry counts stay exact and within bounds, and no thread sees an error."""
    cache = local_cache(server.url, ["p:"], max_entries=20, max_bytes=20 * (ENTRY_OVERHEAD + 40))
    errors: list[BaseException] = []
    stop = threading.Event()

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        with server.client() as own:
            try:
                while not stop.is_set():
                    key = f"p:{rng.randrange(50)}"
                    action = rng.random()
                    if action < 0.6:
                        if cache.get(key) is NOT_HELD:
                            fill(cache, own, key)
                    elif action < 0.8:
                        own.set(key, b"v" * rng.randrange(30))
                    else:
                        cache.invalidate([key])
            except BaseException as exc:
                errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    time.sleep(1.5)
    stop.set()
    for thread in threads:
        thread.join(10)
    try:
        assert not errors
        with cache._lock:
            held = list(cache._entries.items())
            assert cache.bytes == sum(size for _k, (_raw, _exp, size) in held)
        assert len(held) <= 20 and cache.bytes <= cache.max_bytes
        assert cache.stats.hits > 0 and cache.stats.invalidations > 0
    finally:
        cache.close()


def _write_later(url: str, key: str, delay: float, out: multiprocessing.Queue[float]) -> None:
    time.sleep(delay)
    with Redis.from_url(url) as redis_client:
        before = time.monotonic()
        redis_client.set(key, b"new")
    out.put(before)


def test_a_busy_reader_handles_invalidations_the_starved_tracker_thread_has_not(
    local: LocalCache, client: Redis, server: RedisServer
) -> None:
    """With a 1 s GIL switch interval the tracker thread cannot run while this thread spins on
    get(); the reader itself must handle the announcement (Tracker.help), not serve the old
    value until the thread gets the GIL."""
    client.set("p:k", b"old")
    settle(local, client)
    assert fill(local, client, "p:k")
    context = multiprocessing.get_context("fork")
    out: multiprocessing.Queue[float] = context.Queue()
    writer = context.Process(target=_write_later, args=(server.url, "p:k", 0.3, out))
    interval = sys.getswitchinterval()
    writer.start()
    sys.setswitchinterval(1.0)
    try:
        end = time.monotonic() + 3.0
        while local.get("p:k") is not NOT_HELD and time.monotonic() < end:
            pass
        gone = time.monotonic()
    finally:
        sys.setswitchinterval(interval)
    written = out.get(timeout=10)
    writer.join(10)
    assert gone - written < 0.15, f"served the old value {gone - written:.3f}s after the write"


def test_works_over_a_unix_socket() -> None:
    server = RedisServer()
    path = f"{server.directory}/redis.sock"
    server.extra_args += ["--unixsocket", path, "--unixsocketperm", "700"]
    server.start()
    try:
        cache = local_cache(f"unix://{path}?db=0", ["p:"])
        try:
            with Redis(unix_socket_path=path) as over_unix:
                _assert_tracking_works(cache, over_unix, "p:u")
        finally:
            cache.close()
    finally:
        server.close()
