"""Tag invalidation on the session Redis: semantics, round trips, bad input, memory, TTLs."""

from __future__ import annotations

import threading
import time

import pytest
from django.core.cache import cache, caches

from django_rediskit.cache import tags as tagging
from django_rediskit.cache.codec import TagBlock, UndecodableValue
from tests.cache.tagtools import RoundTrips, round_trips  # noqa: F401


def raw_client():  # type: ignore[no-untyped-def]
    return cache._write()


def test_tagged_entry_is_a_miss_after_invalidation() -> None:
    assert cache.set("p:1", {"name": "lamp"}, 60, tags=["product:1", "category:3"])
    assert cache.set("p:2", {"name": "desk"}, 60, tags=["product:2", "category:3"])
    assert cache.get("p:1", tags=["product:1", "category:3"]) == {"name": "lamp"}
    assert cache.get("p:1") == {"name": "lamp"}  # undeclared tags are read from the header

    assert cache.invalidate_tags("product:1") == 1
    assert cache.get("p:1", "gone") == "gone"
    assert cache.get("p:1", "gone", tags=["product:1", "category:3"]) == "gone"
    assert cache.get("p:2") == {"name": "desk"}

    assert cache.invalidate_tags("category:3") == 1
    assert cache.get("p:2") is None
    assert cache.invalidate_tags("category:3") == 0  # already gone: nothing to drop


def test_declared_tags_are_a_hint_not_a_filter() -> None:
    cache.set("k", "v", 60, tags=["a", "b"])
    # Declaring only some (or other) tags still checks every tag the entry carries.
    assert cache.get("k", tags=["a"]) == "v"
    assert cache.get("k", tags=["zzz"]) == "v"
    cache.invalidate_tags("b")
    assert cache.get("k", tags=["a"]) is None


@pytest.mark.standalone_only
def test_round_trips_declared_undeclared_and_invalidate(round_trips: RoundTrips) -> None:  # noqa: F811
    cache.set("plain", "v", 60)
    cache.set("tagged", "v", 60, tags=["t1", "t2", "t3"])
    with round_trips.measure() as plain:
        assert cache.get("plain") == "v"
    with round_trips.measure() as declared:
        assert cache.get("tagged", tags=["t1", "t2", "t3"]) == "v"
    with round_trips.measure() as undeclared:
        assert cache.get("tagged") == "v"
    with round_trips.measure() as many:
        assert cache.get_many(["tagged", "plain"], tags=["t1", "t2", "t3"]) == {
            "tagged": "v",
            "plain": "v",
        }
    assert plain.count == 1
    assert declared.count == plain.count
    assert many.count == 1
    assert undeclared.count == plain.count + 1

    before = cache._write().info("commandstats").get("cmdstat_unlink", {}).get("calls", 0)
    with round_trips.measure() as invalidation:
        assert cache.invalidate_tags("t1", "t2", "t3") == 3
    after = cache._write().info("commandstats")["cmdstat_unlink"]["calls"]
    assert invalidation.count == 1
    assert after - before == 3  # one UNLINK per tag, nothing per entry


@pytest.mark.standalone_only
def test_get_or_set_hit_costs_one_round_trip(round_trips: RoundTrips) -> None:  # noqa: F811
    assert cache.get_or_set("g", lambda: 41, 60, tags=["t"]) == 41
    with round_trips.measure() as hit:
        assert cache.get_or_set("g", lambda: 0, 60, tags=["t"]) == 41
    assert hit.count == 1


def test_many_add_and_get_or_set_with_tags() -> None:
    assert cache.set_many({"a": 1, "b": 2}, 60, tags="grp") == []
    assert cache.get_many(["a", "b", "c"]) == {"a": 1, "b": 2}
    assert not cache.add("a", 9, 60, tags="grp")
    cache.invalidate_tags("grp")
    assert cache.get_many(["a", "b"], tags=["grp"]) == {}
    assert cache.add("a", 9, 60, tags="grp")  # an invalidated entry does not block add()
    assert cache.get("a") == 9

    calls: list[int] = []
    assert cache.get_or_set("c", lambda: calls.append(1) or "x", 60, tags=["grp"]) == "x"
    assert cache.get_or_set("c", lambda: calls.append(1) or "y", 60, tags=["grp"]) == "x"
    cache.invalidate_tags("grp")
    assert cache.get_or_set("c", lambda: calls.append(1) or "z", 60, tags=["grp"]) == "z"
    assert calls == [1, 1]
    assert cache.get_or_set("d", "plain-default", 60, tags=["grp"]) == "plain-default"
    assert cache.get("d") == "plain-default"


def test_no_stale_recache_when_invalidated_during_compute() -> None:
    """A reader computes from old data; the invalidation lands mid-compute; it stores anyway."""
    db = {"price": 10}

    def slow_compute() -> int:
        seen = db["price"]
        time.sleep(0.15)  # the writer updates and invalidates during this sleep
        return seen

    def writer() -> None:
        time.sleep(0.05)
        db["price"] = 20
        caches["default"].invalidate_tags("product:7")

    thread = threading.Thread(target=writer)
    thread.start()
    assert cache.get_or_set("price:7", slow_compute, 60, tags=["product:7"]) == 10
    thread.join()
    assert cache.get("price:7", "miss") == "miss"
    assert cache.get("price:7", "miss", tags=["product:7"]) == "miss"
    assert cache.get_or_set("price:7", lambda: db["price"], 60, tags=["product:7"]) == 20


def test_captured_versions_make_a_late_set_a_miss() -> None:
    captured = cache.tag_versions("product:9", "list")
    assert isinstance(captured, tagging.TagVersions) and set(captured) == {"list", "product:9"}
    cache.invalidate_tags("product:9")
    assert cache.set("late", "old", 60, versions=captured)
    assert cache.get("late", "miss") == "miss"
    fresh = cache.tag_versions("product:9", "list")
    assert fresh["list"] == captured["list"] and fresh["product:9"] != captured["product:9"]
    assert cache.set("late", "new", 60, tags=["list", "product:9"], versions=fresh)
    assert cache.get("late") == "new"


EVIL_TAGS = [
    "a{b}c",
    "{x}",
    "}",
    "with space",
    "with\ttab\nnewline",
    "star*",
    "q?[ab]\\",
    "ünïcødé-标签-🚀",
    "%7B",  # what "{" escapes to: must not collide with it
    "#deadbeef",
    "x" * 10_000,
    "x" * 10_001,
]


def test_hostile_tag_names_work_and_never_collide() -> None:
    for index, tag in enumerate(EVIL_TAGS):
        assert cache.set(f"evil:{index}", index, 60, tags=[tag])
    keys = {cache.tag_key(tag) for tag in EVIL_TAGS}
    assert len(keys) == len(EVIL_TAGS)
    prefix = cache.feature_key("tags", "")
    for key in keys:
        inner = key[len(prefix) :]
        assert inner.startswith("{") and inner.endswith("}")
        body = inner[1:-1]
        assert not any(c in body for c in "{}*?[]\\ \t\n"), key
        assert len(body.encode()) <= tagging.MAX_KEY_NAME_BYTES
    for index, tag in enumerate(EVIL_TAGS):
        cache.invalidate_tags(tag)
        assert cache.get(f"evil:{index}") is None
        remaining = [cache.get(f"evil:{later}") for later in range(index + 1, len(EVIL_TAGS))]
        assert remaining == list(range(index + 1, len(EVIL_TAGS))), tag
    # The readable name stays in the header, even for the hashed 10 KB one.
    cache.set("long", 1, 60, tags=[EVIL_TAGS[-1]])
    _, block = cache.client.codec.decode_entry(raw_client().get(cache.make_key("long")))
    assert block is not None and block.names == (EVIL_TAGS[-1],)


@pytest.mark.parametrize(
    ("tags", "error"),
    [([""], ValueError), ([3], TypeError), ([b"bytes"], TypeError), ([None], TypeError)],
)
def test_bad_tag_names_raise_and_write_nothing(tags: list[object], error: type) -> None:
    with pytest.raises(error):
        cache.set("bad", "v", 60, tags=tags)  # type: ignore[arg-type]
    with pytest.raises(error):
        cache.invalidate_tags(*tags)  # type: ignore[arg-type]
    assert cache.get("bad", "absent") == "absent"


def test_bad_versions_raise() -> None:
    captured = cache.tag_versions("a")
    with pytest.raises(ValueError, match="differ"):
        cache.set("k", 1, 60, tags=["b"], versions=captured)
    with pytest.raises(TypeError, match="tag_versions"):
        cache.set("k", 1, 60, versions={"a": "not-bytes"})  # type: ignore[dict-item]
    assert cache.get("k", "absent") == "absent"
    with pytest.raises(ValueError, match="at most"):
        cache.set("k", 1, 60, tags=[f"t{i}" for i in range(300)])


def test_incr_on_a_tagged_key_is_a_clear_error() -> None:
    cache.set("counter", 5, 60, tags=["t"])
    with pytest.raises(TypeError, match="tagged"):
        cache.incr("counter")
    assert cache.get("counter") == 5


def test_header_overhead_within_budget() -> None:
    """≤ 12 B + Σ(len(tag) + 1) per entry: exactly in stored bytes, and in MEMORY USAGE a tagged
    entry never costs more than an untagged one that is ``budget`` bytes longer.

    Like is compared with like: the same key name (Valkey 8.1 counts the key's place in its hash
    table), and the tagged entry as rewritten under existing tags, a lone SET. The write that
    first creates or extends the tags' version keys sends its SET in one batch with theirs, and
    Valkey 8.1 may then keep the value in a larger allocation than a lone SET of the same bytes
    would (seen: 256 B against 240 B for 167 stored bytes) — the server's buffers, not the format.
    """
    client = raw_client()
    tags = ["product:1", "category:33", "m:shop.product"]
    budget = 12 + sum(len(tag) + 1 for tag in tags)
    probe = cache.make_key("probe")
    for size in range(0, 150, 3):
        value = "x" * (20 + size)
        cache.set("probe", value, 60)
        plain = client.strlen(probe)
        cache.set("probe", value + "y" * budget, 60)
        assert client.strlen(probe) - plain == budget
        padded = client.memory_usage(probe)
        cache.set("probe", value, 60, tags=tags)  # creates or extends the tags when needed
        cache.set("probe", value, 60, tags=tags)
        assert client.strlen(probe) - plain <= budget
        assert client.memory_usage(probe) <= padded, size


def test_nothing_without_a_ttl() -> None:
    cache.set("forever", "v", None, tags=["t1"])
    cache.set_many({"m1": 1, "m2": 2}, None, tags=["t2"])
    cache.get_or_set("g", lambda: 1, None, tags=["t3"])
    client = raw_client()
    ours = list(client.scan_iter(match=f"{cache.key_prefix}:*", count=1000))
    assert len(ours) >= 7
    assert all(client.pttl(key) > 0 for key in ours)


def test_tag_ttl_covers_items_and_is_extended_lazily() -> None:
    client = raw_client()
    cache.set("k", "v", 30, tags=["t"])
    version_key = cache.tag_key("t")
    client.pexpire(version_key, 1000)  # pretend it is about to expire
    cache.set("k2", "v", 30, tags=["t"])  # the next write extends it (PEXPIRE GT)
    assert client.pttl(version_key) > 30_000
    assert cache.get("k") == "v"  # same token, so the first entry is still valid


def test_evicted_version_key_is_an_invalidation() -> None:
    cache.set("k", "v", 60, tags=["t"])
    raw_client().unlink(cache.tag_key("t"))  # what eviction or expiry does
    assert cache.get("k") is None
    cache.set("k", "v2", 60, tags=["t"])  # a new random token: the new entry is valid
    assert cache.get("k") == "v2"


@pytest.mark.standalone_only
def test_sliding_get_with_declared_tags_refreshes_in_one_trip(round_trips: RoundTrips) -> None:  # noqa: F811
    cache.set("s", "v", 5, tags=["t"])
    with round_trips.measure() as trips:
        assert cache.get("s", refresh_ttl=100, tags=["t"]) == "v"
    assert trips.count == 1
    assert raw_client().pttl(cache.make_key("s")) > 50_000
    cache.invalidate_tags("t")
    assert cache.get("s", refresh_ttl=100, tags=["t"]) is None


def test_tampered_tag_block_is_a_miss() -> None:
    cache.set("k", "v", 60, tags=["t"])
    client = raw_client()
    full = cache.make_key("k")
    raw = bytearray(client.get(full))
    raw[-8] ^= 0xFF  # flip payload bits under the signature
    client.set(full, bytes(raw), px=60_000)
    assert cache.get("k", "miss") == "miss"
    assert cache.get_many(["k"]) == {}


def test_tag_block_parser_rejects_truncated_input() -> None:
    packed = TagBlock(("alpha", "beta"), b"12345678").pack()
    block, end = TagBlock.unpack(packed, 0)
    assert block.names == ("alpha", "beta") and end == len(packed)
    for cut in range(len(packed)):
        with pytest.raises(UndecodableValue):
            TagBlock.unpack(packed[:cut], 0)
    with pytest.raises(UndecodableValue):
        TagBlock.unpack(b"12345678\x01\xff\xff\xff\xff\xff\xff", 0)


def test_async_twins_take_tags() -> None:
    import asyncio

    async def scenario() -> list[object]:
        backend = caches["default"]
        await backend.aset("ak", "v", 60, tags=["at"])
        got = [await backend.aget("ak", tags=["at"])]
        captured = await backend.atag_versions("at")
        got.append(await backend.ainvalidate_tags("at"))
        got.append(await backend.aget("ak", "miss", tags=["at"]))
        got.append(await backend.aget_or_set("ak", lambda: "new", 60, tags=["at"]))
        got.append(await backend.aset("late", 1, 60, versions=captured))
        got.append(await backend.aget("late", "miss"))
        return got

    assert asyncio.run(scenario()) == ["v", 1, "miss", "new", True, "miss"]


def test_add_over_an_invalidated_entry_has_exactly_one_winner() -> None:
    cache.set("slot", "old", 60, tags=["t"])
    cache.invalidate_tags("t")
    winners: list[str] = []
    barrier = threading.Barrier(8)

    def adder(name: str) -> None:
        backend = caches["default"]
        barrier.wait()
        if backend.add("slot", name, 60, tags=["t"]):
            winners.append(name)

    threads = [threading.Thread(target=adder, args=(f"w{i}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(winners) == 1
    assert cache.get("slot") == winners[0]
    assert not cache.add("slot", "late", 60)  # a valid entry blocks add, tagged or not


def test_add_onto_a_non_string_key_is_false_not_an_error() -> None:
    raw_client().hset(cache.make_key("hashed"), "f", "v")
    assert cache.add("hashed", 1, 60) is False
    assert cache.add("hashed", 1, 60, tags=["t"]) is False


def test_has_key_agrees_with_get_for_invalidated_entries(round_trips: RoundTrips) -> None:  # noqa: F811
    cache.set("plain", "v", 60)
    cache.set("tagged", "v", 60, tags=["t"])
    cache.set("number", 5, 60)
    raw_client().rpush(cache.make_key("listed"), "x")
    with round_trips.measure() as plain:
        assert cache.has_key("plain")
    assert plain.count == 1
    assert cache.has_key("tagged") and cache.has_key("number") and cache.has_key("listed")
    assert not cache.has_key("absent")
    cache.invalidate_tags("t")
    assert not cache.has_key("tagged")
    assert cache.get("tagged") is None
