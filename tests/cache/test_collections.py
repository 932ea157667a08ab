"""Sets, sorted sets, django-redis's hash commands, expiry and locks: our own, not inherited.

The differential tests run one command script against django-redis's own backend (its pickle
serializer, another prefix) and against ours, and compare every answer (decoded values, or the
exception's type). The outage tests stop a private server and call each command once.
"""

from __future__ import annotations

import datetime
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.conf import settings
from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django_redis.cache import RedisCache as DjangoRedisCache
from django_redis.client import DefaultClient
from django_redis.client.mixins import SortedSetMixin
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.lock import Lock

from django_rediskit.cache import RedisCache
from django_rediskit.cache.expiry import KeyCommands
from django_rediskit.cache.policy import CircuitOpen
from django_rediskit.cache.sets import SetCommands, glob_regex
from django_rediskit.cache.sorted_sets import SortedSetCommands
from django_rediskit.cache.structures import HashAndListCommands
from tests import servers
from tests.helpers import MakeCache
from tests.servers import RedisServer

# fmt: off
SET_COMMANDS = [
    "sadd", "scard", "sdiff", "sdiffstore", "sinter", "sinterstore", "sismember", "smembers",
    "smove", "spop", "srandmember", "srem", "sscan", "sscan_iter", "smismember", "sunion",
    "sunionstore",
]
HASH_COMMANDS = ["hset", "hdel", "hlen", "hkeys", "hexists"]
ZSET_COMMANDS = [
    "zadd", "zcard", "zcount", "zincrby", "zpopmax", "zpopmin", "zrange", "zrangebyscore",
    "zrank", "zrem", "zremrangebyscore", "zrevrange", "zrevrangebyscore", "zscore",
]
KEY_COMMANDS = ["persist", "expire", "expire_at", "pexpire", "pexpire_at", "lock"]
# fmt: on
OWN_COMMANDS = SET_COMMANDS + HASH_COMMANDS + ZSET_COMMANDS + KEY_COMMANDS
MIXINS: tuple[type, ...] = (SetCommands, HashAndListCommands, SortedSetCommands, KeyCommands)


# --- the differential harness -------------------------------------------------------------------

#: One step: a method name with its arguments, or a callable of the cache (to read state back).
Step = tuple[str, tuple[Any, ...], dict[str, Any]] | Callable[[Any], Any]


def step(name: str, *args: Any, **kwargs: Any) -> Step:
    return (name, args, kwargs)


def _normalized(value: Any) -> Any:
    """Iterators become lists; floats are compared as floats, everything else as it is."""
    if isinstance(value, Iterator):
        return sorted(value, key=repr)
    return value


def outcome(cache: Any, one: Step) -> tuple[str, Any]:
    try:
        if callable(one):
            return "ok", _normalized(one(cache))
        name, args, kwargs = one
        return "ok", _normalized(getattr(cache, name)(*args, **kwargs))
    except Exception as exc:
        return "error", type(exc).__name__


def run_both(reference: DjangoRedisCache, ours: RedisCache, script: list[Step]) -> list[Any]:
    """Run ``script`` on both backends; assert each step's outcome is the same; return ours."""
    answers = []
    for number, one in enumerate(script):
        expected, got = outcome(reference, one), outcome(ours, one)
        assert got == expected, f"step {number} {one!r}: django-redis {expected}, ours {got}"
        answers.append(got)
    return answers


def names_in(script: list[Step]) -> set[str]:
    return {one[0] for one in script if isinstance(one, tuple)}


def raw_of(cache: Any) -> Any:
    """The redis-py client the cache sends commands to (reads state back in the scripts)."""
    return cache.client.get_client(write=True)


@pytest.fixture
def reference() -> Iterator[DjangoRedisCache]:
    """django-redis's backend, untouched: on the suite's server when it is a plain one, else on
    a private standalone server (django-redis speaks neither Cluster nor our Sentinel URLs)."""
    private = None if servers.TOPOLOGY == "standalone" else RedisServer().start()
    location = private.url if private else settings.REDIS_URL
    backend = DjangoRedisCache(location, {"KEY_PREFIX": f"dr-{uuid.uuid4().hex[:8]}"})
    try:
        yield backend
    finally:
        backend.delete_pattern("*")
        if private is not None:
            private.close()


@pytest.fixture
def ours(make_cache: MakeCache) -> RedisCache:
    return make_cache()


# --- sets ---------------------------------------------------------------------------------------

SET_SCRIPT: list[Step] = [
    step("sadd", "s", "a", "b", 1, 2.5, ("t", 1), None, True),
    step("sadd", "s", "a", 1),
    step("scard", "s"),
    step("scard", "missing"),
    step("smembers", "s"),
    step("smembers", "missing"),
    step("sismember", "s", "a"),
    step("sismember", "s", 1),
    step("sismember", "s", "zz"),
    step("smismember", "s", "a", "zz", 1, ("t", 1)),
    step("sadd", "{g}a", 1, 2, 3, "x"),
    step("sadd", "{g}b", 2, 3, 4),
    step("sdiff", "{g}a", "{g}b"),
    step("sinter", "{g}a", "{g}b"),
    step("sunion", "{g}a", "{g}b"),
    step("sdiff", "{g}a", "{g}missing"),
    step("sdiffstore", "{g}d", "{g}a", "{g}b"),
    step("smembers", "{g}d"),
    step("sinterstore", "{g}i", "{g}a", "{g}b"),
    step("smembers", "{g}i"),
    step("sunionstore", "{g}u", "{g}a", "{g}b"),
    step("smembers", "{g}u"),
    step("smove", "{g}a", "{g}b", "x"),
    step("smove", "{g}a", "{g}b", "never"),
    step("smembers", "{g}b"),
    step("srem", "s", "a", "zz", None),
    step("smembers", "s"),
    step("sadd", "one", {"only": "member"}),
    step("spop", "one"),
    step("spop", "one"),
    step("spop", "missing", 3),
    step("spop", "{g}u", 10),
    step("scard", "{g}u"),
    step("srandmember", "missing"),
    step("srandmember", "missing", 2),
    lambda cache: sorted(cache.srandmember("s", 20), key=repr),
    step("sadd", "single", "lone"),
    step("srandmember", "single"),
    step("sscan", "s"),
    step("sscan", "missing"),
    step("sscan_iter", "s"),
    step("sscan_iter", "s", count=1),
    # versions
    step("sadd", "{v}x", "two", version=2),
    step("smembers", "{v}x"),
    step("smembers", "{v}x", version=2),
    step("sadd", "{v}y", "other"),
    step("sdiffstore", "{v}d", "{v}x", "{v}y", version_dest=3, version_keys=2),
    step("smembers", "{v}d", version=3),
    step("sunion", "{v}x", "{v}y", version=2),
    step("sinterstore", "{v}i", "{v}x", version=2),
    step("scard", "{v}i", version=2),
    step("sunionstore", "{v}u", "{v}x", version=2),
    step("smembers", "{v}u", version=2),
    # wrong type: raised, never muted (a bug, not an outage)
    lambda cache: raw_of(cache).set(cache.make_key("str"), b"plain"),
    step("sadd", "str", "a"),
    step("smembers", "str"),
]


@pytest.mark.parametrize("serializer", ["pickle", "json"])
def test_set_commands_answer_as_django_redis_does(
    reference: DjangoRedisCache, make_cache: MakeCache, serializer: str
) -> None:
    ours = make_cache(OPTIONS={"SERIALIZER": serializer})
    script = SET_SCRIPT if serializer == "pickle" else [_json_safe(one) for one in SET_SCRIPT]
    answers = run_both(reference, ours, script)
    assert answers[0] == ("ok", 7)  # True and 1 are two members (pickled True, raw 1)
    member = ("t", 1) if serializer == "pickle" else "('t', 1)"
    assert answers[4] == ("ok", {"a", "b", 1, 2.5, member, None})
    assert answers[-1] == ("error", "ResponseError")
    assert set(SET_COMMANDS) <= names_in(SET_SCRIPT)


def _json_safe(one: Step) -> Step:
    """JSON reads tuples back as lists, which cannot be set members: use their repr instead."""
    if not isinstance(one, tuple):
        return one
    name, args, kwargs = one
    return (name, tuple(repr(a) if isinstance(a, tuple) else a for a in args), kwargs)


def test_set_members_are_stored_as_before(ours: RedisCache) -> None:
    """The bytes are those django-redis's client wrote through our codec: no data migration."""
    members = ("a", 1, 2.5, ("t", 1), None, True, b"bytes")
    DefaultClient.sadd(ours.client, "old", *members)
    assert ours.sadd("new", *members) == len(members)
    raw = raw_of(ours)
    assert raw.smembers(ours.make_key("old")) == raw.smembers(ours.make_key("new"))
    assert ours.smembers("old") == ours.smembers("new") == set(members)


def test_undecodable_members_are_left_out(ours: RedisCache) -> None:
    ours.sadd("s", "kept")
    raw_of(ours).sadd(ours.make_key("s"), b"\x95forged")
    assert ours.scard("s") == 2
    assert ours.smembers("s") == {"kept"}
    assert list(ours.sscan_iter("s")) == ["kept"]
    assert ours.srandmember("s", 5) == ["kept"]
    assert ours.spop("s", 5) == {"kept"}


def test_smove_applies_version_to_both_keys(ours: RedisCache) -> None:
    ours.sadd("{m}src", "m", version=2)
    assert ours.smove("{m}src", "{m}dst", "m", version=2) is True
    assert ours.smembers("{m}dst", version=2) == {"m"}
    assert ours.smembers("{m}dst") == set()


def test_sscan_match_is_a_glob_over_decoded_strings(ours: RedisCache) -> None:
    ours.sadd("s", "a*", "abc", "ab", "xa", 1, ("a", 1), "a]")
    assert ours.sscan("s", match="a*") == {"a*", "abc", "ab", "a]"}
    assert ours.sscan("s", match="a?") == {"a*", "ab", "a]"}
    assert ours.sscan("s", match="a\\*") == {"a*"}
    assert sorted(ours.sscan_iter("s", match="[ax]*")) == ["a*", "a]", "ab", "abc", "xa"]
    assert ours.sscan("s", match="nothing*") == set()


@pytest.mark.parametrize(
    ("pattern", "matching", "not_matching"),
    [
        ("a*", ["a", "abc", "a\n"], ["ba", ""]),
        ("?", ["x", "*"], ["", "xy"]),
        ("[a-c]x", ["ax", "bx", "cx"], ["dx", "-x"]),
        ("[c-a]x", ["bx"], ["dx"]),
        ("[^a]", ["b", "]"], ["a", ""]),
        ("[\\]]", ["]"], ["\\"]),
        ("x[]", [], ["x", "x]", "x[]"]),
        ("h[^]", ["ha", "h^"], ["h"]),
        ("\\*", ["*"], ["a"]),
        ("a\\", ["a\\"], ["a"]),
        ("[ab", ["a", "b"], ["[ab", "c"]),
        ("(.+)$^", ["(.+)$^"], ["aa"]),
    ],
)
def test_glob_regex_reads_patterns_as_redis_does(
    pattern: str, matching: list[str], not_matching: list[str]
) -> None:
    match = glob_regex(pattern)
    assert [text for text in matching if match(text)] == matching
    assert [text for text in not_matching if match(text)] == []


def test_glob_regex_agrees_with_redis_sscan(ours: RedisCache) -> None:
    """Raw strings in a raw set, matched by Redis itself and by glob_regex: the same members."""
    raw = raw_of(ours)
    key = ours.make_key("globs")
    words = ["a", "ab", "abc", "b", "ba", "a*", "*", "]", "-", "^", "x]y", "a-c", "\\", "[ab"]
    raw.sadd(key, *words)
    for pattern in ["a*", "?", "[a-b]*", "[^a]*", "*[]]*", "\\*", "[ab", "a[-]c", "[\\]]"]:
        by_redis = {m.decode() for m in raw.sscan_iter(key, match=pattern, count=100)}
        assert {w for w in words if glob_regex(pattern)(w)} == by_redis, pattern


# --- hashes -------------------------------------------------------------------------------------


def _decoded_hash(key: str) -> Callable[[Any], dict[str, Any]]:
    def read(cache: Any) -> dict[str, Any]:
        raw = raw_of(cache).hgetall(cache.make_key(key))
        return {field.decode(): cache.client.decode(value) for field, value in raw.items()}

    return read


HASH_SCRIPT: list[Step] = [
    step("hset", "h", "name", "Ada"),
    step("hset", "h", "name", "Grace"),
    step("hset", "h", mapping={"age": 36, "langs": ["en", "fr"], "ok": True}),
    step("hset", "h", "both", 1, mapping={"both": 2, "more": 3.5}),
    _decoded_hash("h"),
    step("hset", "h"),
    step("hlen", "h"),
    step("hlen", "missing"),
    lambda cache: sorted(cache.hkeys("h")),
    step("hkeys", "missing"),
    step("hexists", "h", "name"),
    step("hexists", "h", "nope"),
    step("hexists", "missing", "name"),
    step("hdel", "h", "name"),
    step("hdel", "h", "name"),
    step("hlen", "h"),
    step("hset", "h", "v", "two", version=2),
    step("hlen", "h", version=2),
    step("hexists", "h", "v", version=2),
    step("hkeys", "h", version=2),
    step("hdel", "h", "v", version=2),
    step("sadd", "set", 1),
    step("hset", "set", "f", 1),
    step("hlen", "set"),
]


def test_hash_commands_answer_as_django_redis_does(
    reference: DjangoRedisCache, ours: RedisCache
) -> None:
    answers = run_both(reference, ours, HASH_SCRIPT)
    assert answers[4] == (
        "ok",
        {"name": "Grace", "age": 36, "langs": ["en", "fr"], "ok": True, "both": 2, "more": 3.5},
    )
    assert answers[5] == ("error", "DataError")
    assert answers[-2] == ("error", "ResponseError")
    assert set(HASH_COMMANDS) <= names_in(HASH_SCRIPT)


def test_hset_stores_none_and_reads_back_through_hget(ours: RedisCache) -> None:
    """django-redis sends None unencoded (redis-py refuses it); ours stores the value None."""
    assert ours.hset("h", "empty", None) == 1
    assert ours.hexists("h", "empty")
    assert ours.hget("h", "empty", default="absent") is None
    assert ours.hgetall("h") == {"empty": None}


def test_hash_fields_are_stored_as_before(ours: RedisCache) -> None:
    DefaultClient.hset(ours.client, "old", mapping={"a": 1, "b": [1, 2], "c": "x"})
    ours.hset("new", mapping={"a": 1, "b": [1, 2], "c": "x"})
    raw = raw_of(ours)
    assert raw.hgetall(ours.make_key("old")) == raw.hgetall(ours.make_key("new"))


# --- sorted sets --------------------------------------------------------------------------------

#: Scores are all distinct: members of equal score are ordered by their stored bytes, which differ
#: between django-redis's bare pickles and our headed, signed values.
ZSET_SCRIPT: list[Step] = [
    step("zadd", "z", {"a": 1, "b": 2, "c": 3.5}),
    step("zadd", "z", {"a": 10}, nx=True),
    step("zadd", "z", {"d": 4}, xx=True),
    step("zadd", "z", {"a": 1.5, "e": 5}, ch=True),
    step("zadd", "z", {"a": 0.5}, gt=True),
    step("zadd", "z", {"a": 0.5}, lt=True, ch=True),
    step("zadd", "z", {"b": 2.25}, incr=True),
    step("zadd", "z", {"zz": 1}, incr=True, xx=True),
    step("zcard", "z"),
    step("zcard", "missing"),
    step("zcount", "z", 1, 5),
    step("zcount", "z", "-inf", "+inf"),
    step("zcount", "z", "(4.25", 5),
    step("zincrby", "z", 2, "c"),
    step("zincrby", "z", 1, "new"),
    step("zscore", "z", "a"),
    step("zscore", "z", "nope"),
    step("zscore", "missing", "a"),
    step("zrank", "z", "a"),
    step("zrank", "z", "c"),
    step("zrank", "z", "nope"),
    step("zrank", "z", "c", withscore=True),  # Redis 7.2+; both raise the same error before
    step("zrange", "z", 0, -1),
    step("zrange", "z", 0, 1, desc=True),
    step("zrange", "z", 0, -1, withscores=True),
    step("zrange", "z", 0, -1, withscores=True, score_cast_func=int),
    step("zrange", "missing", 0, -1),
    step("zrangebyscore", "z", 1, 5),
    step("zrangebyscore", "z", "-inf", "+inf", start=1, num=2),
    step("zrangebyscore", "z", "(1", 5.5, withscores=True),
    step("zrevrange", "z", 0, -1),
    step("zrevrange", "z", 1, 2, withscores=True),
    step("zrevrangebyscore", "z", "+inf", "-inf"),
    step("zrevrangebyscore", "z", 5, 1, start=0, num=2, withscores=True),
    step("zadd", "zi", {1: 1, 2: 2, ("t", 1): 3, None: 4, 2.5: 5}),
    step("zrange", "zi", 0, -1, withscores=True),
    step("zscore", "zi", 1),
    step("zrank", "zi", ("t", 1)),
    step("zincrby", "zi", 1, 2),
    step("zrem", "zi", 1, None, "1"),
    step("zrange", "zi", 0, -1),
    step("zrem", "z", "a", "nope"),
    step("zremrangebyscore", "z", 5, 5.5),
    step("zrange", "z", 0, -1, withscores=True),
    step("zpopmax", "z"),
    step("zpopmax", "z", 2),
    step("zpopmin", "z"),
    step("zpopmin", "z", 5),
    step("zpopmax", "missing", 3),
    step("zadd", "z", {"v": 1}, version=2),
    step("zcard", "z", version=2),
    step("zrange", "z", 0, -1, version=2),
    step("zpopmin", "z", version=2),
    step("sadd", "aset", 1),
    step("zadd", "aset", {"x": 1}),
    step("zrange", "aset", 0, -1),
]


def test_sorted_set_commands_answer_as_django_redis_does(
    reference: DjangoRedisCache, ours: RedisCache
) -> None:
    answers = run_both(reference, ours, ZSET_SCRIPT)
    assert answers[6] == ("ok", 4.25)
    assert answers[24] == ("ok", [("a", 0.5), ("new", 1.0), ("b", 4.25), ("e", 5.0), ("c", 5.5)])
    assert answers[35] == ("ok", [(1, 1.0), (2, 2.0), (("t", 1), 3.0), (None, 4.0), (2.5, 5.0)])
    assert answers[-2] == ("error", "ResponseError")
    assert set(ZSET_COMMANDS) <= names_in(ZSET_SCRIPT)


def test_sorted_set_members_are_stored_as_before(ours: RedisCache) -> None:
    mapping = {"a": 1.0, 7: 2.0, ("t", 1): 3.0, None: 4.0}
    SortedSetMixin.zadd(ours.client, "old", mapping)
    ours.zadd("new", mapping)
    raw = raw_of(ours)
    old = raw.zrange(ours.make_key("old"), 0, -1, withscores=True)
    assert old == raw.zrange(ours.make_key("new"), 0, -1, withscores=True)
    assert (b"7", 2.0) in old  # an int member is its digits, as before
    assert ours.zrange("old", 0, -1) == ["a", 7, ("t", 1), None]


def test_undecodable_sorted_set_members_are_left_out(ours: RedisCache) -> None:
    ours.zadd("z", {"kept": 2})
    raw_of(ours).zadd(ours.make_key("z"), {b"\x95forged": 1})
    assert ours.zcard("z") == 2
    assert ours.zrange("z", 0, -1, withscores=True) == [("kept", 2.0)]
    assert ours.zrevrangebyscore("z", "+inf", "-inf") == ["kept"]
    assert ours.zpopmin("z") is None  # the forged member was popped, and is not a value
    assert ours.zpopmin("z") == ("kept", 2.0)


def test_concurrent_zincrby_adds_up(ours: RedisCache) -> None:
    def bump() -> None:
        for _ in range(100):
            ours.zincrby("scores", 1, "player")

    threads = [threading.Thread(target=bump) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert ours.zscore("scores", "player") == 600.0


# --- expiry and locks ---------------------------------------------------------------------------


def _ttl(key: str, millis: bool = False, version: int | None = None) -> Step:
    """The key's TTL to ~10 s (or PTTL to ~1 s): both backends run the step within milliseconds."""

    def read(cache: Any) -> int:
        full = cache.make_key(key, version=version)
        left = raw_of(cache).pttl(full) if millis else raw_of(cache).ttl(full)
        return left if left < 0 else round(left / (1000 if millis else 10))

    return read


def _lock_dance(cache: Any) -> list[Any]:
    first = cache.lock("L", timeout=5)
    second = cache.lock("L", timeout=5)
    seen = [isinstance(first, Lock), first.acquire(blocking=False), second.acquire(blocking=False)]
    seen += [first.locked(), first.owned(), second.owned(), first.name == cache.make_key("L")]
    first.release()
    seen += [first.locked(), second.acquire(blocking=False)]
    second.release()
    with cache.lock("L", version=2, timeout=5, blocking_timeout=0.5, thread_local=False) as held:
        seen += [held.owned(), raw_of(cache).exists(cache.make_key("L", version=2))]
    seen.append(raw_of(cache).exists(cache.make_key("L"), cache.make_key("L", version=2)))
    return seen


def key_script() -> list[Step]:
    """Built when the test runs: the absolute expiry times must lie in the future."""
    now = time.time()
    utc = datetime.datetime.now(datetime.timezone.utc)
    return [
        lambda cache: cache.set("k", "v", timeout=None),
        step("expire", "k", 100),
        _ttl("k"),
        step("expire", "missing", 10),
        step("pexpire", "k", 50_000),
        _ttl("k", millis=True),
        step("pexpire", "missing", 10),
        step("persist", "k"),
        step("persist", "k"),
        step("persist", "missing"),
        _ttl("k"),
        step("expire_at", "k", int(now) + 1000),
        _ttl("k"),
        step("expire_at", "k", utc + datetime.timedelta(seconds=500)),
        _ttl("k"),
        step("expire_at", "missing", int(now) + 1000),
        step("pexpire_at", "k", int(now * 1000) + 200_000),
        _ttl("k"),
        step("pexpire_at", "k", utc + datetime.timedelta(seconds=700)),
        _ttl("k"),
        step("pexpire_at", "missing", int(now * 1000) + 200_000),
        step("expire", "k", datetime.timedelta(seconds=70)),
        _ttl("k"),
        step("pexpire", "k", datetime.timedelta(seconds=80)),
        _ttl("k"),
        step("expire", "k", DEFAULT_TIMEOUT),
        _ttl("k"),
        lambda cache: cache.set("k2", 1, timeout=None, version=2),
        step("expire", "k2", 30),
        step("expire", "k2", 30, version=2),
        _ttl("k2", version=2),
        step("pexpire", "k2", 40_000, version=2),
        step("persist", "k2", version=2),
        step("expire_at", "k2", int(now) + 1000, version=2),
        step("pexpire_at", "k2", int(now * 1000) + 900_000, version=2),
        _ttl("k2", version=2),
        step("expire", "k", 0),
        lambda cache: cache.has_key("k"),
        step("expire", "k", 1.5),
        _lock_dance,
    ]


def test_key_commands_answer_as_django_redis_does(
    reference: DjangoRedisCache, ours: RedisCache
) -> None:
    script = key_script()
    answers = run_both(reference, ours, script[:-2])
    assert answers[2] == ("ok", 10)
    assert answers[-1] == ("ok", False)
    assert set(KEY_COMMANDS) - {"lock"} <= names_in(script)  # lock: in _lock_dance
    # expire(key, 1.5): django-redis sends EXPIRE 1.5, which Redis refuses; ours keeps 1.5 s.
    assert outcome(reference, script[-2]) == ("error", "ResponseError")
    ours.set("k", "v", timeout=None)
    assert outcome(ours, script[-2]) == ("ok", True)
    assert 1000 < ours.pttl("k") <= 1500
    # lock(): both answer a redis-py Lock, which behaves the same on both.
    assert run_both(reference, ours, script[-1:]) == [
        ("ok", [True, True, False, True, True, False, True, False, True, True, 1, 0])
    ]
    assert isinstance(ours.lock("L"), Lock) and isinstance(reference.lock("L"), Lock)


def test_expire_none_makes_the_key_persistent(
    reference: DjangoRedisCache, ours: RedisCache, make_cache: MakeCache
) -> None:
    ours.set("k", 1, timeout=60)
    assert ours.expire("k", None) is True
    assert ours.ttl("k") is None
    forever = make_cache(TIMEOUT=None)
    forever.set("k", 1, timeout=60)
    assert forever.expire("k", DEFAULT_TIMEOUT) is True
    assert forever.pexpire("k", DEFAULT_TIMEOUT) is False  # already persistent: PERSIST says 0
    assert forever.ttl("k") is None
    reference.set("k", 1, timeout=60)
    assert outcome(reference, step("expire", "k", None)) == ("error", "DataError")


def test_pexpire_default_timeout_is_in_seconds(
    reference: DjangoRedisCache, ours: RedisCache
) -> None:
    ours.set("k", 1, timeout=None)
    assert ours.pexpire("k", DEFAULT_TIMEOUT) is True
    assert 299_000 < ours.pttl("k") <= 300_000
    reference.set("k", 1, timeout=None)
    assert reference.pexpire("k", DEFAULT_TIMEOUT) is True
    assert raw_of(reference).pttl(reference.make_key("k")) <= 300  # django-redis: 0.3 s


def test_lock_excludes_other_threads(ours: RedisCache) -> None:
    holder = ours.lock("job", timeout=10)
    assert holder.acquire(blocking=False)
    outcomes: list[bool] = []

    def contender() -> None:
        outcomes.append(ours.lock("job", timeout=10).acquire(blocking_timeout=0.2))

    thread = threading.Thread(target=contender)
    thread.start()
    thread.join()
    holder.release()
    thread = threading.Thread(target=contender)
    thread.start()
    thread.join()
    assert outcomes == [False, True]


def test_lock_counts_as_one_critical_section_under_load(ours: RedisCache) -> None:
    inside = 0
    overlaps = 0
    counter = threading.Lock()

    def worker() -> None:
        nonlocal inside, overlaps
        for _ in range(20):
            with ours.lock("section", timeout=5, sleep=0.001, blocking_timeout=10):
                with counter:
                    inside += 1
                    overlaps += inside > 1
                time.sleep(0.001)
                with counter:
                    inside -= 1

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert overlaps == 0


# --- outages ------------------------------------------------------------------------------------

#: Each command with arguments, and what it answers when an outage is muted.
MUTED_CALLS: list[tuple[str, tuple[Any, ...], dict[str, Any], Any]] = [
    ("sadd", ("s", 1), {}, 0),
    ("scard", ("s",), {}, 0),
    ("sdiff", ("{g}a", "{g}b"), {}, set()),
    ("sdiffstore", ("{g}d", "{g}a"), {}, 0),
    ("sinter", ("{g}a", "{g}b"), {}, set()),
    ("sinterstore", ("{g}d", "{g}a"), {}, 0),
    ("sismember", ("s", 1), {}, False),
    ("smembers", ("s",), {}, set()),
    ("smove", ("{g}a", "{g}b", 1), {}, False),
    ("spop", ("s",), {}, None),
    ("spop", ("s", 2), {}, set()),
    ("srandmember", ("s",), {}, None),
    ("srandmember", ("s", 2), {}, []),
    ("srem", ("s", 1), {}, 0),
    ("sscan", ("s",), {}, set()),
    ("smismember", ("s", 1, 2), {}, [False, False]),
    ("sunion", ("{g}a", "{g}b"), {}, set()),
    ("sunionstore", ("{g}d", "{g}a"), {}, 0),
    ("hset", ("h", "f", 1), {}, 0),
    ("hdel", ("h", "f"), {}, 0),
    ("hlen", ("h",), {}, 0),
    ("hkeys", ("h",), {}, []),
    ("hexists", ("h", "f"), {}, False),
    ("zadd", ("z", {"a": 1}), {}, 0),
    ("zadd", ("z", {"a": 1}), {"incr": True}, None),
    ("zcard", ("z",), {}, 0),
    ("zcount", ("z", 0, 1), {}, 0),
    ("zincrby", ("z", 1, "a"), {}, None),
    ("zpopmax", ("z",), {}, None),
    ("zpopmax", ("z", 2), {}, []),
    ("zpopmin", ("z",), {}, None),
    ("zpopmin", ("z", 2), {}, []),
    ("zrange", ("z", 0, -1), {}, []),
    ("zrangebyscore", ("z", 0, 1), {}, []),
    ("zrank", ("z", "a"), {}, None),
    ("zrem", ("z", "a"), {}, 0),
    ("zremrangebyscore", ("z", 0, 1), {}, 0),
    ("zrevrange", ("z", 0, -1), {}, []),
    ("zrevrangebyscore", ("z", 1, 0), {}, []),
    ("zscore", ("z", "a"), {}, None),
    ("persist", ("k",), {}, False),
    ("expire", ("k", 10), {}, False),
    ("expire_at", ("k", 2_000_000_000), {}, False),
    ("pexpire", ("k", 10), {}, False),
    ("pexpire_at", ("k", 2_000_000_000_000), {}, False),
]


@pytest.mark.parametrize(("name", "args", "kwargs", "muted"), MUTED_CALLS)
def test_each_command_is_muted_and_counts_one_failure(
    down: RedisCache, name: str, args: tuple[Any, ...], kwargs: dict[str, Any], muted: Any
) -> None:
    before, errors = down.breaker.failures, down.stats.errors
    assert getattr(down, name)(*args, **kwargs) == muted
    assert down.breaker.failures == before + 1
    assert down.stats.errors == errors + 1


def test_generator_command_is_muted_and_counts_one_failure(down: RedisCache) -> None:
    before = down.breaker.failures
    assert list(down.sscan_iter("s")) == []
    assert down.breaker.failures == before + 1


def test_every_command_has_a_muted_case() -> None:
    assert len(OWN_COMMANDS) == len(set(OWN_COMMANDS)) == 42
    assert {name for name, *_ in MUTED_CALLS} | {"sscan_iter", "lock"} == set(OWN_COMMANDS)


def test_lock_on_a_dead_server_is_a_lock_whose_acquire_raises(opens_at_once: RedisCache) -> None:
    """Building a Lock sends nothing; the outage surfaces in acquire(), never a faked lock."""
    cache = opens_at_once
    lock = cache.lock("job", timeout=5)
    assert isinstance(lock, Lock)
    assert cache.breaker.failures == 0
    with pytest.raises(RedisConnectionError):
        lock.acquire(blocking=False)
    assert cache.smembers("s") == set()  # opens the breaker (threshold 1)
    assert cache.breaker.is_open
    muted = cache.lock("job", timeout=5)  # CircuitOpen, muted: still a real Lock
    assert isinstance(muted, Lock)
    assert muted.name == cache.make_key("job")
    with pytest.raises(RedisConnectionError):
        muted.acquire(blocking=False)


def test_lock_raises_circuit_open_without_ignore_exceptions(
    make_cache: MakeCache, private_redis: RedisServer
) -> None:
    cache = make_cache(
        private_redis.url,
        OPTIONS={"SOCKET_CONNECT_TIMEOUT": 0.5, "CIRCUIT_BREAKER": {"FAILURE_THRESHOLD": 1}},
    )
    private_redis.stop()
    with pytest.raises(RedisConnectionError):
        cache.expire("k", 10)
    with pytest.raises(CircuitOpen):
        cache.lock("job")


def test_outage_raises_without_ignore_exceptions(
    make_cache: MakeCache, private_redis: RedisServer
) -> None:
    cache = make_cache(private_redis.url, OPTIONS={"SOCKET_CONNECT_TIMEOUT": 0.5})
    private_redis.stop()
    with pytest.raises(RedisConnectionError):
        cache.smembers("s")
    assert cache.breaker.failures == 1


# --- defined here, not inherited ------------------------------------------------------------------


@pytest.mark.parametrize("name", OWN_COMMANDS)
def test_command_is_ours(name: str) -> None:
    assert any(name in vars(mixin) for mixin in MIXINS), name
    method = getattr(RedisCache, name)
    assert not method.__qualname__.startswith(DjangoRedisCache.__name__ + "."), method
    assert method.__module__.startswith("django_rediskit."), method.__module__


def test_no_django_redis_method_is_inherited_or_patched_in() -> None:
    """Every public method of django-redis's backend is redefined by us; none of the 42 is set
    on the class itself (nothing rewrites it at import time): they live in the mixins."""
    inherited = [
        name
        for name, attr in vars(DjangoRedisCache).items()
        if not name.startswith("_") and callable(attr) and getattr(RedisCache, name) is attr
    ]
    assert inherited == []
    assert [name for name in OWN_COMMANDS if name in vars(RedisCache)] == []
    assert all(issubclass(RedisCache, mixin) for mixin in MIXINS)


def test_concurrent_sadd_and_spop_lose_nothing(ours: RedisCache) -> None:
    """Writers and poppers on one set: every member added is popped exactly once."""
    added = [f"m{i}" for i in range(400)]
    popped: list[Any] = []
    lock = threading.Lock()

    def writer(part: list[str]) -> None:
        for member in part:
            ours.sadd("shared", member)

    def popper() -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            got = ours.spop("shared", 7)
            with lock:
                popped.extend(got)
                if len(popped) >= len(added):
                    return

    threads = [threading.Thread(target=writer, args=(added[i::4],)) for i in range(4)]
    threads += [threading.Thread(target=popper) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(popped) == sorted(added)
    assert ours.scard("shared") == 0
