"""django-redis's extras with their mends: patterns, TTLs, hashes, lists, sets, locks."""

from __future__ import annotations

import inspect
import time

import pytest
from django.core.cache import cache

from tests.cache.commands import count_commands
from tests.helpers import MakeCache


@pytest.mark.standalone_only
def test_ttl_and_pttl_take_one_round_trip() -> None:
    cache.set("t", 1, timeout=100)
    with count_commands() as log:
        assert cache.ttl("t") == 100
        assert 99_000 < cache.pttl("t") <= 100_000
        assert cache.ttl("missing") == 0
        assert cache.pttl("missing") == 0
    assert log.round_trips == 4
    assert set(log.commands) == {"PTTL"}


def test_expire_persist_helpers_are_available() -> None:
    cache.set("e", 1, timeout=None)
    assert cache.expire("e", 20)
    assert cache.ttl("e") == 20
    assert cache.pexpire("e", 1500)
    assert 0 < cache.pttl("e") <= 1500
    assert cache.persist("e")
    assert cache.ttl("e") is None
    assert cache.expire_at("e", int(time.time()) + 30)
    assert 28 <= cache.ttl("e") <= 30


@pytest.mark.standalone_only
def test_delete_pattern_counts_and_batches(make_cache: MakeCache) -> None:
    small_batches = make_cache(OPTIONS={"DELETE_BATCH_SIZE": 7, "SCAN_COUNT": 50})
    small_batches.set_many({f"user:{i}": i for i in range(40)})
    small_batches.set_many({f"item:{i}": i for i in range(5)})
    with count_commands() as log:
        assert small_batches.delete_pattern("user:*") == 40
    assert log.commands.count("UNLINK") == 6  # ceil(40 / 7): bounded batches, no DEL
    assert "KEYS" not in log.commands and "DEL" not in log.commands
    assert sorted(small_batches.keys("*")) == [f"item:{i}" for i in range(5)]
    assert small_batches.delete_pattern("nothing:*") == 0


def test_keys_and_iter_keys_use_scan_and_strip_prefix(make_cache: MakeCache) -> None:
    colon_prefix = make_cache(prefix="site:a")  # django-redis's reverse_key breaks on this
    colon_prefix.set_many({"a:1": 1, "a:2": 2, "b": 3})
    with count_commands() as log:
        assert sorted(colon_prefix.keys("a:*")) == ["a:1", "a:2"]
        assert sorted(colon_prefix.iter_keys("*")) == ["a:1", "a:2", "b"]
    assert "KEYS" not in log.commands
    assert "SCAN" in log.commands


def test_glob_metacharacters_in_prefix_and_version_are_escaped(make_cache: MakeCache) -> None:
    starry = make_cache(prefix="pre*")
    plain = make_cache(prefix="prefix")
    starry.set("k", 1)
    plain.set("k", 2)
    bracket = make_cache(prefix="b[ab]")
    bracket_victim = make_cache(prefix="ba")
    bracket.set("k", 1)
    bracket_victim.set("k", 1)
    assert starry.delete_pattern("*") == 1
    assert bracket.delete_pattern("*") == 1
    starry.clear()
    bracket.clear()
    assert plain.get("k") == 2
    assert bracket_victim.get("k") == 1
    assert starry.make_pattern("x", version=1) == "pre\\*:1:x"


def test_hash_commands() -> None:
    assert cache.hset("h", "name", "Ada") == 1
    cache.hset("h", mapping={"age": 36, "langs": ["en", "fr"]})
    assert cache.hget("h", "name") == "Ada"
    assert cache.hget("h", "missing", default="?") == "?"
    assert cache.hgetall("h") == {"name": "Ada", "age": 36, "langs": ["en", "fr"]}
    assert cache.hmget("h", ["age", "nope", "name"]) == [36, None, "Ada"]
    assert cache.hincrby("h", "age", 2) == 38
    assert cache.hget("h", "age") == 38
    assert cache.hlen("h") == 3
    assert sorted(cache.hkeys("h")) == ["age", "langs", "name"]
    assert cache.hexists("h", "name")
    assert cache.hdel("h", "name") == 1
    assert cache.hgetall("missing-hash") == {}


def test_list_commands() -> None:
    assert cache.rpush("l", "a", {"b": 1}) == 2
    assert cache.lpush("l", 0) == 3
    assert cache.lrange("l", 0, -1) == [0, "a", {"b": 1}]
    assert cache.llen("l") == 3
    assert cache.lindex("l", 1) == "a"
    assert cache.lindex("l", 10) is None
    assert cache.lrem("l", "a") == 1
    assert cache.ltrim("l", 0, 0)
    assert cache.lrange("l", 0, -1) == [0]
    assert cache.brpop("l", timeout=1) == 0
    assert cache.brpop("l", timeout=0.1) is None


def test_set_and_sorted_set_commands() -> None:
    assert cache.sadd("s", "a", "b") == 2
    assert cache.smembers("s") == {"a", "b"}
    assert cache.sismember("s", "a")
    assert cache.zadd("z", {"x": 1.0, "y": 2.0}) == 2
    assert cache.zrange("z", 0, -1) == ["x", "y"]


def test_lock_is_prefixed_and_exclusive() -> None:
    lock = cache.lock("job", timeout=5)
    assert lock.acquire(blocking=False)
    other = cache.lock("job", timeout=5)
    assert not other.acquire(blocking=False)
    lock.release()
    raw = cache.client.get_client()
    assert raw.exists(cache.make_key("job")) == 0


@pytest.mark.standalone_only
def test_sliding_ttl_per_read_and_as_option(make_cache: MakeCache) -> None:
    cache.set("s", 1, timeout=5)
    assert cache.get("s", refresh_ttl=100) == 1
    assert 99 <= cache.ttl("s") <= 100
    sliding = make_cache(TIMEOUT=200, OPTIONS={"SLIDING": True})
    sliding.set("k", "v", timeout=10)
    with count_commands() as log:
        assert sliding.get("k") == "v"
    assert log.commands == ["GETEX"]  # one command, not GET + EXPIRE
    assert 199 <= sliding.ttl("k") <= 200


def test_set_nx_xx() -> None:
    assert cache.set("n", 1, nx=True) is True
    assert cache.set("n", 2, nx=True) is False
    assert cache.set("absent", 1, xx=True) is False
    assert cache.set("n", 3, xx=True) is True
    assert cache.get("n") == 3


@pytest.mark.standalone_only
def test_plain_get_is_one_command() -> None:
    cache.set("one", "x")
    with count_commands() as log:
        cache.get("one")
        cache.get_many(["one", "two"])
        cache.set_many({"a": 1, "b": 2})
    assert log.commands[:2] == ["GET", "MGET"]
    assert log.round_trips == 3


def test_stats_count_hits_and_misses(make_cache: MakeCache) -> None:
    counted = make_cache()
    counted.stats.reset()
    counted.set("x", 1)
    counted.get("x")
    counted.get("y")
    counted.get_many(["x", "y", "z"])
    assert counted.stats.as_dict() == {
        "hits": 2,
        "misses": 3,
        "stale": 0,
        "errors": 0,
        "hit_ratio": 0.4,
    }
    by_op = {op: (s.hits, s.misses) for op, s in counted.stats.ops.items()}
    assert by_op == {"get": (1, 1), "get_many": (1, 2), "get_or_set": (0, 0)}


def test_every_public_method_is_guarded() -> None:
    from django_rediskit.cache.backend import RedisCache
    from django_rediskit.cache.policy import is_guarded

    exempt = {
        # pure key/timeout arithmetic or local objects: no Redis I/O to guard
        "make_key", "make_and_validate_key", "validate_key", "make_pattern", "feature_key",
        "timeout_ms", "reverse_key", "get_backend_timeout", "stampede_lock", "tag_key",
        # no Redis I/O, called by Django after every request: must never raise CircuitOpen
        "close",
    }  # fmt: skip
    unguarded = [
        name
        for name in dir(RedisCache)
        if not name.startswith("_")
        and callable(getattr(RedisCache, name))
        and not inspect.iscoroutinefunction(getattr(RedisCache, name))
        and not isinstance(getattr(RedisCache, name), type)
        and name not in exempt
        and not is_guarded(getattr(RedisCache, name))
    ]
    assert unguarded == []
    assert {"get", "set", "add", "hget", "sadd", "zadd", "iter_keys", "lock", "clear"} <= {
        name for name in dir(RedisCache) if is_guarded(getattr(RedisCache, name))
    }


@pytest.mark.standalone_only
def test_get_or_set_miss_takes_three_round_trips_and_frees_its_lock() -> None:
    cache.get_or_set("warm-up", lambda: 0, 60)  # loads the release script once per pool
    with count_commands() as log:
        assert cache.get_or_set("computed", lambda: 42, 60) == 42
    # GET (miss) | SET NX lock + GET | SET value + release script
    assert log.round_trips == 3
    raw = cache.client.get_client()
    assert raw.exists(cache.feature_key("lock", cache.make_key("computed"))) == 0

    def broken() -> int:
        raise RuntimeError("producer failed")

    with pytest.raises(RuntimeError):
        cache.get_or_set("broken", broken, 60)
    assert raw.exists(cache.feature_key("lock", cache.make_key("broken"))) == 0
    assert cache.get_or_set("broken", lambda: "second try", 60) == "second try"
