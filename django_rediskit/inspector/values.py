"""Typed, paged reads of one key's value: each page is one command bounded by the page size.

Strings are read in GETRANGE chunks, hashes and sets with HSCAN / SSCAN, sorted sets and lists in
ZRANGE / LRANGE rank windows and streams with XRANGE ... COUNT, so a 1,000,000-member key costs
the same per page as a 10-member one. HGETALL, SMEMBERS and ``0 -1`` ranges are never sent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from django_rediskit.inspector.display import escape_bytes

if TYPE_CHECKING:
    from redis import Redis

MAX_PAGE_SIZE = 500
STRING_CHUNK = 64 * 1024

_STREAM_ID = re.compile(r"\(?\d{1,20}-\d{1,20}")


class BadPosition(ValueError):
    """A value-page position that does not fit the key's type."""


@dataclass(frozen=True)
class Item:
    """One element of a value page: its label (field, index, stream id), bytes, and zset score."""

    label: str | None
    value: bytes
    score: float | None = None


@dataclass(frozen=True)
class ValuePage:
    kind: str
    items: list[Item]
    #: The position of this page and of the next one (None at the end), as URL-safe text.
    position: str
    next_position: str | None
    #: For strings: the chunk's bytes (``items`` is empty) and where it starts.
    chunk: bytes = b""
    offset: int = 0


def _bytes(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    return str(value).encode()


def _int_position(position: str | None) -> int:
    if not position:
        return 0
    if not position.isdigit() or len(position) > 20:
        raise BadPosition(f"not a position: {position[:30]!r}")
    return int(position)


def read_page(
    client: Redis, key: bytes, kind: str, position: str | None = None, page_size: int = 100
) -> ValuePage:
    """One page of ``key``'s value, read with the one bounded command that suits ``kind``."""
    size = max(1, min(page_size, MAX_PAGE_SIZE))
    if kind == "string":
        offset = _int_position(position)
        chunk = _bytes(client.getrange(key, offset, offset + STRING_CHUNK - 1))
        more = len(chunk) == STRING_CHUNK
        return ValuePage(
            kind, [], str(offset), str(offset + STRING_CHUNK) if more else None, chunk, offset
        )
    if kind in ("hash", "set"):
        return _scan_page(client, key, kind, position, size)
    if kind in ("zset", "list"):
        start = _int_position(position)
        stop = start + size - 1
        if kind == "zset":
            pairs: Any = client.zrange(key, start, stop, withscores=True)
            items = [
                Item(str(start + index), _bytes(member), float(score))
                for index, (member, score) in enumerate(pairs)
            ]
        else:
            values = client.lrange(key, start, stop)
            items = [Item(str(start + index), _bytes(value)) for index, value in enumerate(values)]
        more = len(items) == size
        return ValuePage(kind, items, str(start), str(start + size) if more else None)
    if kind == "stream":
        start_id = position or "-"
        if start_id != "-" and not _STREAM_ID.fullmatch(start_id):
            raise BadPosition(f"not a stream id: {start_id[:30]!r}")
        entries: Any = client.xrange(key, min=start_id, count=size)
        items = [
            Item(
                _bytes(entry_id).decode(),
                b"\n".join(_bytes(name) + b"=" + _bytes(value) for name, value in fields.items()),
            )
            for entry_id, fields in entries
        ]
        more = len(items) == size
        next_id = "(" + items[-1].label if more and items[-1].label else None
        return ValuePage(kind, items, start_id, next_id)
    raise BadPosition(f"cannot page a value of type {kind!r}")


def _scan_page(client: Redis, key: bytes, kind: str, position: str | None, size: int) -> ValuePage:
    """HSCAN / SSCAN one page. A compactly encoded key (listpack, intset) answers a scan with all
    its elements at once, which the encoding limits keep small; such a reply is windowed here,
    and the position ``s<offset>`` says how far into it the next page starts.
    """
    skip = 0
    if position and position.startswith("s"):
        skip, cursor = _int_position(position[1:]), 0
    else:
        cursor = _int_position(position)
    if kind == "hash":
        cursor_out, pairs = cast(
            "tuple[int, dict[bytes, bytes]]", client.hscan(key, cursor, count=size)
        )
        items = [Item(escape_bytes(_bytes(field)), _bytes(value)) for field, value in pairs.items()]
    else:
        cursor_out, members = cast("tuple[int, list[bytes]]", client.sscan(key, cursor, count=size))
        items = [Item(None, _bytes(member)) for member in members]
    if cursor == 0 and cursor_out == 0 and (skip or len(items) > size):
        window = items[skip : skip + size]
        more = skip + size < len(items)
        return ValuePage(kind, window, position or "0", f"s{skip + size}" if more else None)
    return ValuePage(kind, items, str(cursor), str(cursor_out) if cursor_out else None)


def read_whole_string(client: Redis, key: bytes, limit: int) -> bytes | None:
    """The whole string if it is at most ``limit`` bytes (for decoders that need all of it)."""
    data = _bytes(client.getrange(key, 0, limit))
    return data if len(data) <= limit else None
