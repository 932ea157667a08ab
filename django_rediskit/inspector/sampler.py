"""A bounded sample of the keyspace: namespaces, biggest keys, keys without a TTL.

The sampler SCANs up to ``limit`` keys, describes them in one pipeline per SCAN batch and keeps
only aggregates and two fixed-size heaps (top keys by memory and by length), so its memory is
O(top + namespaces) whatever the keyspace size. ``manage.py rediskit_keys sample`` and the
admin stats page run the same code; the admin passes a deadline so a request stays short.
"""

from __future__ import annotations

import heapq
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from django_rediskit.inspector.display import label as name_label
from django_rediskit.inspector.meta import KeyMeta, describe_keys
from django_rediskit.inspector.scan import Budget, scan_page

if TYPE_CHECKING:
    from redis import Redis

MAX_NAMESPACES = 200


def namespace_of(key: bytes, depth: int = 2, separator: bytes = b":") -> str:
    """The first ``depth`` parts of a key name (``rkt:tv:{x}`` -> ``rkt:tv``), as text."""
    parts = key.split(separator, depth)
    head = separator.join(parts[:depth]) if len(parts) > depth else separator.join(parts[:-1])
    return name_label(head or key)


@dataclass
class SampleReport:
    sampled: int = 0
    finished: bool = False
    memory: int = 0
    without_ttl: int = 0
    namespaces: Counter[str] = field(default_factory=Counter)
    namespace_memory: Counter[str] = field(default_factory=Counter)
    types: Counter[str] = field(default_factory=Counter)
    ttl_buckets: Counter[str] = field(default_factory=Counter)
    biggest_by_memory: list[tuple[int, bytes]] = field(default_factory=list)
    biggest_by_length: list[tuple[int, bytes]] = field(default_factory=list)
    no_ttl_examples: list[bytes] = field(default_factory=list)

    def top_namespaces(self, count: int = 20) -> list[tuple[str, int, int]]:
        return [(ns, n, self.namespace_memory[ns]) for ns, n in self.namespaces.most_common(count)]


def _ttl_bucket(ttl_ms: int | None) -> str:
    if ttl_ms is None:
        return "no TTL"
    for limit, label in ((60_000, "< 1 min"), (3_600_000, "< 1 h"), (86_400_000, "< 1 day")):
        if ttl_ms < limit:
            return label
    return ">= 1 day"


def _push(heap: list[tuple[int, bytes]], item: tuple[int, bytes], top: int) -> None:
    if len(heap) < top:
        heapq.heappush(heap, item)
    elif item > heap[0]:
        heapq.heapreplace(heap, item)


def _add(report: SampleReport, row: KeyMeta, top: int) -> None:
    if not row.exists:
        return
    report.sampled += 1
    namespace = namespace_of(row.key)
    if namespace in report.namespaces or len(report.namespaces) < MAX_NAMESPACES:
        report.namespaces[namespace] += 1
        report.namespace_memory[namespace] += row.memory or 0
    else:
        report.namespaces["(other)"] += 1
        report.namespace_memory["(other)"] += row.memory or 0
    report.types[row.type] += 1
    report.memory += row.memory or 0
    report.ttl_buckets[_ttl_bucket(row.ttl_ms)] += 1
    if row.ttl_ms is None:
        report.without_ttl += 1
        if len(report.no_ttl_examples) < top:
            report.no_ttl_examples.append(row.key)
    _push(report.biggest_by_memory, (row.memory or 0, row.key), top)
    _push(report.biggest_by_length, (row.length, row.key), top)


def sample(
    client: Redis,
    nodes: Sequence[Redis],
    *,
    limit: int = 100_000,
    match: str = "*",
    top: int = 20,
    deadline_s: float | None = None,
    progress: Callable[[int, int], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> SampleReport:
    """Sample up to ``limit`` keys (or until ``deadline_s``), calling ``progress(done, limit)``."""
    report = SampleReport()
    started = clock()
    cursor: str | None = None
    budget = Budget(page_size=1000, count=1000, max_calls=5, max_ms=1000.0)
    while report.sampled < limit:
        page = scan_page(nodes, match=match, cursor=cursor, budget=budget)
        keys = page.keys[: limit - report.sampled]
        if keys:
            rows, _ = describe_keys(client, keys)
            for row in rows:
                _add(report, row, top)
        if progress is not None:
            progress(report.sampled, limit)
        cursor = page.next_cursor
        if cursor is None:
            report.finished = True
            break
        if deadline_s is not None and clock() - started >= deadline_s:
            break
    report.biggest_by_memory.sort(reverse=True)
    report.biggest_by_length.sort(reverse=True)
    return report
