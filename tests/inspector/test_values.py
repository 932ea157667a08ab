"""Big keys: the first page of a 1,000,000-member collection costs <= 3 bounded commands."""

from __future__ import annotations

import base64

import pytest
import redis
from django.test import Client

from django_rediskit.inspector import values
from tests.inspector.conftest import ALIAS, BASE, Recorder

MILLION = 1_000_000

# Server-side fill in chunks: one EVAL per 50,000 members instead of a million client round
# trips, and no single script long enough to outlast a client timeout on a loaded machine (a
# retried EVAL then meets BUSY).
CHUNK = 50_000
LOOP = "for i=tonumber(ARGV[1]),tonumber(ARGV[2])"
FILL = {
    "hash": LOOP + " do redis.call('HSET', KEYS[1], 'f'..i, i) end",
    "set": LOOP + " do redis.call('SADD', KEYS[1], 'm'..i) end",
    "zset": LOOP + " do redis.call('ZADD', KEYS[1], i, 'm'..i) end",
    "list": LOOP + ",1000 do local t={} "
    "for j=i,i+999 do t[#t+1]=j end redis.call('RPUSH', KEYS[1], unpack(t)) end",
}


def _fill(raw: redis.Redis, kind: str, key: bytes) -> None:
    for first in range(1, MILLION + 1, CHUNK):
        raw.eval(FILL[kind], 1, key, first, first + CHUNK - 1)


def _ref(key: bytes) -> str:
    return base64.urlsafe_b64encode(key).rstrip(b"=").decode()


def _bounded(command: tuple[bytes, ...], page: int) -> bool:
    name = command[0].upper()
    if name in (b"HSCAN", b"SSCAN"):
        return int(command[command.index(b"COUNT") + 1]) <= page
    if name in (b"ZRANGE", b"LRANGE"):
        return int(command[3]) - int(command[2]) + 1 <= page
    return name == b"EVALSHA"  # the O(1) metadata script


@pytest.mark.django_db
@pytest.mark.parametrize("kind", ["hash", "set", "zset", "list"])
def test_million_member_first_page(
    kind: str, admin_client: Client, raw: redis.Redis, recorder: Recorder
) -> None:
    key = f"big:{kind}".encode()
    _fill(raw, kind, key)
    assert admin_client.get(BASE + "key/", {"alias": ALIAS, "k": _ref(b"warm")}).status_code == 404
    recorder.reset()
    response = admin_client.get(BASE + "key/", {"alias": ALIAS, "k": _ref(key)})
    assert response.status_code == 200
    assert response.context["meta"].length == MILLION
    assert len(recorder.commands) <= 3, recorder.commands
    assert all(_bounded(command, 100) for command in recorder.commands), recorder.commands
    # HSCAN / SSCAN COUNT is a hint: a reply may run a few over when a bucket chain ends late.
    assert 1 <= len(response.context["items"]) <= 150
    next_url = response.context["next_value_url"]
    assert next_url
    recorder.reset()
    assert admin_client.get(next_url).status_code == 200
    assert all(_bounded(command, 100) for command in recorder.commands)
    raw.unlink(key)


def test_stream_and_string_pages(raw: redis.Redis) -> None:
    for i in range(250):
        raw.xadd("st", {"n": str(i)})
    first = values.read_page(raw, b"st", "stream", None, 100)
    second = values.read_page(raw, b"st", "stream", first.next_position, 100)
    assert len(first.items) == len(second.items) == 100
    assert first.items[-1].label != second.items[0].label
    raw.set("s", b"x" * (values.STRING_CHUNK + 10))
    chunk = values.read_page(raw, b"s", "string", None)
    assert len(chunk.chunk) == values.STRING_CHUNK and chunk.next_position
    rest = values.read_page(raw, b"s", "string", chunk.next_position)
    assert len(rest.chunk) == 10 and rest.next_position is None


def test_bad_positions_are_refused(raw: redis.Redis) -> None:
    raw.xadd("st", {"a": "1"})
    for kind, position in (("list", "-1"), ("hash", "abc"), ("stream", "1-1; DEL x")):
        with pytest.raises(values.BadPosition):
            values.read_page(raw, b"st", kind, position)


def test_compact_hash_reply_is_windowed(raw: redis.Redis) -> None:
    # One HSET of 300 fields: Redis 7.0 keeps it listpack-encoded, and HSCAN returns it whole.
    raw.hset("small", mapping={f"f{i}": i for i in range(300)})
    seen: list[str | None] = []
    position = None
    while True:
        page = values.read_page(raw, b"small", "hash", position, 100)
        assert len(page.items) <= 100
        seen.extend(item.label for item in page.items)
        position = page.next_position
        if position is None:
            break
    assert sorted(seen, key=str) == sorted((f"f{i}" for i in range(300)), key=str)
