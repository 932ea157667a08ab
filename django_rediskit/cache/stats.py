"""In-process hit / miss / stale / error counters, one set per cache alias, hits and misses per
operation.

Kept in process memory (no Redis writes on the hot path); ``rediskit_info``, the inspector and
the metrics exporters read them. Increments are plain ``+=`` under the GIL: exact for one
thread, and close enough for metrics under heavy threading. The cache client holds each
operation's :class:`OpStats` directly, so counting a lookup by operation costs what counting it
for the alias did (one attribute increment).
"""

from __future__ import annotations

#: The operations lookups are counted under (the ``op`` label): single-key reads, multi-key
#: reads, and the reads of ``get_or_set`` (stampede-safe: a miss there is a compute).
LOOKUP_OPS = ("get", "get_many", "get_or_set")


class OpStats:
    """Lookups of one operation."""

    __slots__ = ("hits", "misses")

    def __init__(self) -> None:
        self.hits = 0
        self.misses = 0


class CacheStats:
    """The counters of one alias in this process."""

    __slots__ = ("errors", "ops", "stale")

    def __init__(self) -> None:
        self.errors = 0
        #: Tagged entries read as misses because one of their tags was invalidated since they
        #: were written (each is a miss too).
        self.stale = 0
        self.ops: dict[str, OpStats] = {op: OpStats() for op in LOOKUP_OPS}

    @property
    def hits(self) -> int:
        return sum(op.hits for op in self.ops.values())

    @property
    def misses(self) -> int:
        return sum(op.misses for op in self.ops.values())

    @property
    def hit_ratio(self) -> float | None:
        hits, misses = self.hits, self.misses
        return hits / (hits + misses) if hits + misses else None

    def as_dict(self) -> dict[str, float | int | None]:
        return {
            "hits": self.hits,
            "misses": self.misses,
            "stale": self.stale,
            "errors": self.errors,
            "hit_ratio": self.hit_ratio,
        }

    def reset(self) -> None:
        self.errors = self.stale = 0
        for op in self.ops.values():
            op.hits = op.misses = 0
