"""Budgeted key browsing: SCAN pages that stop early, resume from a cursor and never load a DB.

A page stops when it has enough rows, or after ``max_calls`` SCAN calls, or after ``max_ms``
milliseconds, whichever comes first; the caller gets the keys found so far and an opaque cursor
to continue from. That bounds both Redis work (each SCAN is O(COUNT)) and Django memory (O(page))
however many keys the database holds, which is what the KEYS / scan-to-the-end inspectors got
wrong.

Cluster-ready: a scan walks a list of nodes (one client for standalone or Sentinel, one per
primary for Cluster) and the cursor names the node and that node's own SCAN cursor, so a page
can resume mid-node or move to the next one.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from redis import Redis

#: Types SCAN's TYPE option accepts (Redis >= 6.0).
KEY_TYPES = ("string", "list", "set", "zset", "hash", "stream")


class BadCursor(ValueError):
    """A cursor that this module did not produce (tampered, or from another node layout)."""


def has_glob(pattern: str) -> bool:
    """Whether a MATCH pattern can match more than one key (unescaped ``*``, ``?`` or ``[``)."""
    escaped = False
    for char in pattern:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char in "*?[":
            return True
    return False


def glob_unescape(pattern: str) -> str:
    """The single key an escape-only pattern (``has_glob`` is False) names."""
    return re.sub(r"\\(.)", r"\1", pattern)


@dataclass(frozen=True)
class Budget:
    """How much work one page may do. Defaults are the documented bounds (K1)."""

    page_size: int = 50
    count: int = 1000
    max_calls: int = 20
    max_ms: float = 150.0


DEFAULT_BUDGET = Budget()


@dataclass(frozen=True)
class Cursor:
    """Where a scan stands: which node, that node's SCAN cursor, and keys examined so far."""

    node: int = 0
    position: int = 0
    examined: int = 0

    def encode(self) -> str:
        return f"{self.node}-{self.position}-{self.examined}"

    @classmethod
    def decode(cls, text: str | None, nodes: int) -> Cursor:
        if not text:
            return cls()
        match = re.fullmatch(r"(\d{1,4})-(\d{1,20})-(\d{1,20})", text)
        if match is None:
            raise BadCursor(f"not a scan cursor: {text[:40]!r}")
        node, position, examined = (int(part) for part in match.groups())
        if node >= nodes or position >= 2**64:
            raise BadCursor("cursor does not fit this server layout")
        return cls(node, position, examined)


@dataclass
class ScanPage:
    """One page of keys and how far the scan got."""

    keys: list[bytes]
    next_cursor: str | None
    calls: int = 0
    examined: int = 0
    elapsed_ms: float = 0.0
    #: Why the page stopped: "full", "calls", "time" or "done".
    stopped: str = "done"
    exact: bool = False
    #: For each key, the (node, SCAN cursor) of the call that returned it: a long name's link
    #: finds it again from there (``access.LongRef``) instead of carrying the name.
    origins: dict[bytes, tuple[int, int]] = field(default_factory=dict)


def scan_page(
    nodes: Sequence[Redis],
    *,
    match: str = "*",
    type_: str | None = None,
    cursor: str | None = None,
    budget: Budget = DEFAULT_BUDGET,
    clock: Callable[[], float] = time.monotonic,
) -> ScanPage:
    """Scan from ``cursor`` until the page is full or the budget is spent.

    COUNT adapts to the match ratio seen so far: the first call asks for about the rows still
    needed (so an unfiltered page is not padded with 1000 keys it must then describe), and each
    later call at most quadruples it, up to ``budget.count``, so a sparse filter still climbs
    fast. Keys of the last call are all kept, because dropping some would lose them for good
    (SCAN cannot resume mid-batch): a page may exceed ``page_size`` by at most one COUNT.
    """
    if type_ is not None and type_ not in KEY_TYPES:
        raise ValueError(f"unknown key type {type_!r}")
    if not nodes:
        raise ValueError("no Redis node to scan")
    state = Cursor.decode(cursor, len(nodes))
    started = clock()
    keys: list[bytes] = []
    origins: dict[bytes, tuple[int, int]] = {}
    calls = 0
    requested = 0
    count = 0
    node, position, examined = state.node, state.position, state.examined
    stopped = "done"
    while True:
        needed = budget.page_size - len(keys)
        ratio = max(len(keys) / requested, 1.0 / budget.count) if requested else 1.0
        wanted = math.ceil(needed / ratio)
        count = max(10, min(budget.count, wanted, count * 4 if count else wanted))
        kwargs: dict[str, Any] = {"match": match, "count": count}
        if type_ is not None:
            kwargs["_type"] = type_
        origin = (node, position)
        position, batch = cast("tuple[int, list[bytes]]", nodes[node].scan(position, **kwargs))
        calls += 1
        requested += count
        examined += count
        for key in batch:
            if key not in origins:  # SCAN may return a key twice; show it once per page
                origins[key] = origin
                keys.append(key)
        if position == 0:
            if node + 1 >= len(nodes):
                next_cursor = None
                stopped = "done"
                break
            node, position = node + 1, 0
        next_cursor = Cursor(node, position, examined).encode()
        if len(keys) >= budget.page_size:
            stopped = "full"
            break
        if calls >= budget.max_calls:
            stopped = "calls"
            break
        if (clock() - started) * 1000 >= budget.max_ms:
            stopped = "time"
            break
    return ScanPage(
        keys=keys,
        next_cursor=next_cursor,
        calls=calls,
        examined=examined,
        elapsed_ms=(clock() - started) * 1000,
        stopped=stopped,
        origins=origins,
    )


def exact_page(key: bytes) -> ScanPage:
    """A pattern without glob characters names one key: look it up, never scan for it."""
    return ScanPage(keys=[key], next_cursor=None, exact=True)
