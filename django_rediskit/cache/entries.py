"""Tagged-entry logic, with no I/O: what to write for a value, and whether a read entry counts.

An entry is a value encoded by the codec; a tagged one carries, in its header, the names of its
tags and a checksum of their versions captured before the value was computed (see
``cache/tags.py`` and DESIGN.md §4). The facade reads raw bytes and tag versions from Redis and
hands them here; keeping the decisions free of I/O lets the sync and async paths share them.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from typing import Any

from django_rediskit.cache import tags as tagging
from django_rediskit.cache.base import MISSING
from django_rediskit.cache.codec import Codec, TagBlock, UndecodableValue

#: One read entry: its value (MISSING when absent or untrustworthy) and its tag block, if any.
Entry = tuple[Any, TagBlock | None]


def write_ms(
    ms: int | None,
    block: TagBlock | None,
    *,
    tag_ttl_ms: int,
    jitter: float,
    pending: frozenset[str] | set[str],
) -> int | None:
    """The PX of one write, ``ms`` being the caller's timeout (None: forever, <= 0: delete).

    Tagged entries never outlive ``tag_ttl_ms`` (their version keys live that long, and a
    missing version reads as invalidated). An entry carrying a tag that the current transaction
    invalidates at COMMIT is not stored (0 deletes it): it would leak uncommitted rows to other
    readers. ``jitter`` shortens finite timeouts by a random share so keys written together do
    not all expire together.
    """
    if block is not None:
        if ms is None or ms > tag_ttl_ms:
            ms = tag_ttl_ms
        if pending and pending.intersection(block.names):
            ms = 0
    if jitter and ms is not None and ms > 1:
        ms -= random.randint(0, int(ms * jitter))  # noqa: S311 (spread, not secrecy)
    return ms


def decode(codec: Codec, raw: Any, *, verified: bool = False) -> Entry:
    """The value stored in ``raw`` and its tag block; MISSING for absent or undecodable.
    ``verified``: bytes authenticated earlier and held in process memory since."""
    if raw is None:
        return MISSING, None
    if isinstance(raw, (int, str)):  # RESP3 ints, decode_responses clients
        raw = str(raw).encode()
    try:
        return codec.decode_entry(raw, verified=verified)
    except UndecodableValue:
        return MISSING, None


def hide_pending(entries: list[Entry], pending: frozenset[str] | set[str]) -> list[Entry]:
    """Inside a transaction that will invalidate some tags at COMMIT, the writer must see its own
    writes: entries carrying those tags are misses until then."""
    if not pending:
        return entries
    return [
        (MISSING, None) if entry[1] is not None and pending.intersection(entry[1].names) else entry
        for entry in entries
    ]


def unknown_tags(entries: Iterable[Entry], known: dict[str, bytes | None]) -> list[str]:
    """Tag names the live entries carry whose versions were not read with them (sorted, so
    the extra read is deterministic)."""
    return sorted(
        {
            name
            for value, block in entries
            if block is not None and value is not MISSING
            for name in block.names
            if name not in known
        }
    )


def values(entries: Sequence[Entry], known: dict[str, bytes | None]) -> list[Any]:
    """Each entry's value, or MISSING where a tag version no longer matches the one captured."""
    return [
        value if block is None or tagging.is_current(block, known) else MISSING
        for value, block in entries
    ]


def stale_count(entries: Sequence[Entry], values: Sequence[Any]) -> int:
    """How many live entries :func:`values` turned into misses: their tags moved on."""
    return sum(
        1
        for (value, _block), result in zip(entries, values, strict=True)
        if result is MISSING and value is not MISSING
    )


def untagged(entries: Iterable[Entry]) -> bool:
    return not any(block for _value, block in entries)
