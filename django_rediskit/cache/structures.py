"""Hash and list commands django-redis lacks (it has no ``hget``; lists not at all).

Values go through the cache's codec like any cache value; hash fields are plain strings, as in
django-redis 7. A mixin of ``RedisCache``, so every method is under the same failure policy.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django_rediskit.cache.base import MISSING, CacheCore, no_items, no_mapping, text
from django_rediskit.cache.policy import guarded


class HashAndListCommands(CacheCore):
    # --- hashes --------------------------------------------------------------------------------

    @guarded()
    def hget(self, key: Any, field: str, default: Any = None, version: int | None = None) -> Any:
        value = self._decoded(self._read().hget(self.make_and_validate_key(key, version), field))
        return default if value is MISSING else value

    @guarded(miss=no_mapping)
    def hgetall(self, key: Any, version: int | None = None) -> dict[str, Any]:
        raw = self._read().hgetall(self.make_and_validate_key(key, version))
        decoded = {text(field): self._decoded(value) for field, value in raw.items()}
        return {field: value for field, value in decoded.items() if value is not MISSING}

    @guarded(miss=no_items)
    def hmget(self, key: Any, fields: Iterable[str], version: int | None = None) -> list[Any]:
        raw = self._read().hmget(self.make_and_validate_key(key, version), list(fields))
        return [None if (value := self._decoded(item)) is MISSING else value for item in raw]

    @guarded()
    def hincrby(self, key: Any, field: str, amount: int = 1, version: int | None = None) -> int:
        return int(self._write().hincrby(self.make_and_validate_key(key, version), field, amount))

    # --- lists ---------------------------------------------------------------------------------

    @guarded()
    def lpush(self, key: Any, *values: Any, version: int | None = None) -> int:
        encoded = [self.client.encode(value) for value in values]
        return int(self._write().lpush(self.make_and_validate_key(key, version), *encoded))

    @guarded()
    def rpush(self, key: Any, *values: Any, version: int | None = None) -> int:
        encoded = [self.client.encode(value) for value in values]
        return int(self._write().rpush(self.make_and_validate_key(key, version), *encoded))

    @guarded(miss=no_items)
    def lrange(self, key: Any, start: int, end: int, version: int | None = None) -> list[Any]:
        raw = self._read().lrange(self.make_and_validate_key(key, version), start, end)
        return [value for value in map(self._decoded, raw) if value is not MISSING]

    @guarded(miss=False)
    def ltrim(self, key: Any, start: int, end: int, version: int | None = None) -> bool:
        return bool(self._write().ltrim(self.make_and_validate_key(key, version), start, end))

    @guarded(miss=0)
    def llen(self, key: Any, version: int | None = None) -> int:
        return int(self._read().llen(self.make_and_validate_key(key, version)))

    @guarded(miss=0)
    def lrem(self, key: Any, value: Any, count: int = 0, version: int | None = None) -> int:
        full = self.make_and_validate_key(key, version)
        return int(self._write().lrem(full, count, self.client.encode(value)))  # type: ignore[arg-type]

    @guarded()
    def lindex(self, key: Any, index: int, version: int | None = None) -> Any:
        value = self._decoded(self._read().lindex(self.make_and_validate_key(key, version), index))
        return None if value is MISSING else value

    @guarded()
    def brpop(self, key: Any, timeout: float = 0, version: int | None = None) -> Any:
        """Pop from the tail, waiting up to ``timeout`` seconds (0 waits forever); None if none."""
        popped = self._write().brpop([self.make_and_validate_key(key, version)], timeout=timeout)
        if popped is None:
            return None
        value = self._decoded(popped[1])
        return None if value is MISSING else value
