"""Glob coverage read as Redis reads MATCH, and injective escaping of names."""

from __future__ import annotations

import pytest
import redis

from django_rediskit import globs
from django_rediskit.inspector.display import escape_bytes, shorten

BROAD: list[str | bytes] = ["*", "**", "*?*", "[^]*", "?*", b"[\x00-\xff]*"]
NARROW = ["a*", "*a*", "???", "[^a]*", "x:*", ""]


@pytest.mark.parametrize("pattern", BROAD)
def test_all_wildcard_patterns_cover_the_database(pattern: str | bytes) -> None:
    assert globs.covers(pattern)
    assert globs.covers(pattern, b"app:")


@pytest.mark.parametrize("pattern", NARROW)
def test_narrow_patterns_do_not_cover_the_database(pattern: str) -> None:
    assert not globs.covers(pattern)


@pytest.mark.parametrize("pattern", ["app:*", "app:**", "app:?*", "app:[^]*", "a*", "ap?:*"])
def test_patterns_covering_the_alias(pattern: str) -> None:
    assert globs.covers(pattern, b"app:")
    assert not globs.covers(pattern)


@pytest.mark.parametrize("pattern", ["app:x*", "app:", "app:?", "b*", "a?p:[^x]*"])
def test_patterns_not_covering_the_alias(pattern: str) -> None:
    assert not globs.covers(pattern, b"app:")


KEYS = [b"app:1", b"app:x", b"a", b"", b"app:\x00", b"[x]", b"a-b", b"\\", b"ab*c"]
PATTERNS = ["a*", "[^]*", "?*", "[a-]*", "[b-a]*", "\\[*", "[\\]]*", "*\\*c", "[^a]", "[", "a\\"]


def test_matches_agrees_with_redis(private_redis) -> None:  # type: ignore[no-untyped-def]
    client: redis.Redis = private_redis.client()
    try:
        for key in KEYS:
            client.set(key, b"v")
        _, present = client.scan(0, match="*", count=1000)
        for pattern in PATTERNS:
            _, found = client.scan(0, match=pattern, count=1000)
            expected = {key for key in present if globs.matches(pattern, key)}
            assert set(found) == expected, pattern
    finally:
        client.delete(*KEYS)
        client.close()


def test_control_bytes_are_escaped_and_distinct() -> None:
    assert escape_bytes(b"a\x00b\r\n\x1b") == "a\\x00b\\r\\n\\x1b"
    assert escape_bytes(b"\\x00") == "\\\\x00" != escape_bytes(b"\x00")
    assert escape_bytes("\u0085".encode()) == "\\u0085" != escape_bytes(b"\x85") == "\\x85"
    assert escape_bytes("\u202e".encode()) == "\\u202e"
    assert escape_bytes(b"line\nnext", keep_newlines=True) == "line\nnext"


def test_long_names_are_cut_with_their_length() -> None:
    assert shorten("x" * 300, 300) == "x" * 200 + "… (300 bytes)"
    assert shorten("short", 5) == "short"
