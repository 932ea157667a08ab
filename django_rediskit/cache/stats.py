"""In-process hit / miss / error counters, one set per cache alias.

Kept in process memory (no Redis writes on the hot path); ``rediskit_info`` and the inspector read
them. Increments are plain ``+=`` under the GIL: exact for one thread, and close enough for
metrics under heavy threading.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    errors: int = 0

    @property
    def hit_ratio(self) -> float | None:
        lookups = self.hits + self.misses
        return self.hits / lookups if lookups else None

    def as_dict(self) -> dict[str, float | int | None]:
        return {
            "hits": self.hits,
            "misses": self.misses,
            "errors": self.errors,
            "hit_ratio": self.hit_ratio,
        }

    def reset(self) -> None:
        self.hits = self.misses = self.errors = 0
