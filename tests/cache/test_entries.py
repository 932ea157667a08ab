"""The tagged-entry rules (cache/entries.py) on their own: no Redis needed, they do no I/O."""

from __future__ import annotations

from django_rediskit.cache import entries
from django_rediskit.cache.base import MISSING
from django_rediskit.cache.clients import build_codec
from django_rediskit.cache.tags import TagVersions, new_token

VERSIONS = {"a": new_token(), "b": new_token()}
BLOCK = TagVersions(VERSIONS).block()


def test_tagged_writes_are_capped_by_the_tag_ttl_and_untagged_ones_are_not() -> None:
    rules = {"tag_ttl_ms": 1000, "jitter": 0.0, "pending": frozenset[str]()}
    assert entries.write_ms(None, BLOCK, **rules) == 1000
    assert entries.write_ms(5000, BLOCK, **rules) == 1000
    assert entries.write_ms(500, BLOCK, **rules) == 500
    assert entries.write_ms(None, None, **rules) is None
    assert entries.write_ms(5000, None, **rules) == 5000


def test_an_entry_carrying_a_tag_invalidated_at_commit_is_not_stored() -> None:
    assert entries.write_ms(5000, BLOCK, tag_ttl_ms=10_000, jitter=0.0, pending={"b"}) == 0
    assert entries.write_ms(5000, BLOCK, tag_ttl_ms=10_000, jitter=0.0, pending={"c"}) == 5000


def test_jitter_only_ever_shortens_and_stays_within_its_share() -> None:
    seen = {
        entries.write_ms(10_000, None, tag_ttl_ms=1, jitter=0.5, pending=set()) for _ in range(200)
    }
    assert all(ms is not None and 5000 <= ms <= 10_000 for ms in seen)
    assert len(seen) > 1


def test_reads_are_current_only_while_every_captured_version_is() -> None:
    codec = build_codec({"SIGN_VALUES": False, "SERIALIZER": "json"})
    raw = codec.encode({"x": 1}, BLOCK)
    decoded = [entries.decode(codec, raw), entries.decode(codec, None)]
    assert decoded[1] == (MISSING, None)
    assert entries.unknown_tags(decoded, {}) == ["a", "b"]
    assert entries.unknown_tags(decoded, {"a": VERSIONS["a"]}) == ["b"]
    assert entries.values(decoded, dict(VERSIONS)) == [{"x": 1}, MISSING]
    assert entries.values(decoded, {**VERSIONS, "b": new_token()}) == [MISSING, MISSING]
    assert entries.values(decoded, {"a": VERSIONS["a"]}) == [MISSING, MISSING]  # b evicted
    assert entries.hide_pending(decoded, {"a"}) == [(MISSING, None), (MISSING, None)]
    assert entries.hide_pending(decoded, set()) is decoded


def test_undecodable_bytes_are_a_miss_not_an_error() -> None:
    codec = build_codec({})
    assert entries.decode(codec, b"\xff\x00garbage") == (MISSING, None)
