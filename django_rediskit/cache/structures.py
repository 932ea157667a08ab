"""Hash and list commands: django-redis's five hash commands with its signatures, and those it
lacks (it has no ``hget``; lists not at all), each with its async twin (``ahset``...).

Values go through the cache's codec like any cache value; hash fields are plain strings, as in
django-redis 7. A mixin of ``RedisCache``; each command is written once, as steps
(``cache/twins.py``), so the sync method and its twin share the same failure policy and code.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from django_rediskit.cache.base import MISSING, CacheCore, no_items, no_mapping, text
from django_rediskit.cache.steps import Call, Op
from django_rediskit.cache.twins import twin


class HashAndListCommands(CacheCore):
    # --- hashes --------------------------------------------------------------------------------

    @twin(miss=0)
    def hset(
        self,
        key: Any,
        field: str | None = None,
        value: Any = None,
        mapping: Mapping[str, Any] | None = None,
        version: int | None = None,
        client: Any = None,
    ) -> Op[int]:
        """Set ``field`` to ``value`` and/or every pair of ``mapping``; returns the new fields.

        A ``None`` value is stored (and read back) as None; django-redis sends it unencoded,
        which redis-py refuses.
        """
        pairs: dict[str, Any] = {} if field is None else {field: value}
        pairs.update(mapping or {})  # redis-py sends the mapping last: it wins over ``field``
        encoded = {name: self.client.encode(item) for name, item in pairs.items()}
        full = self.make_and_validate_key(key, version)
        return int((yield Call("hset", (full,), {"mapping": encoded}, write=True)))

    ahset = hset.asynchronous

    @twin(miss=0)
    def hdel(self, key: Any, field: str, version: int | None = None, client: Any = None) -> Op[int]:
        full = self.make_and_validate_key(key, version)
        return int((yield Call("hdel", (full, field), write=True)))

    ahdel = hdel.asynchronous

    @twin(miss=0)
    def hlen(self, key: Any, version: int | None = None, client: Any = None) -> Op[int]:
        return int((yield Call("hlen", (self.make_and_validate_key(key, version),))))

    ahlen = hlen.asynchronous

    @twin(miss=no_items)
    def hkeys(self, key: Any, version: int | None = None, client: Any = None) -> Op[list[str]]:
        raw = yield Call("hkeys", (self.make_and_validate_key(key, version),))
        return [text(field) for field in raw]

    ahkeys = hkeys.asynchronous

    @twin(miss=False)
    def hexists(
        self, key: Any, field: str, version: int | None = None, client: Any = None
    ) -> Op[bool]:
        full = self.make_and_validate_key(key, version)
        return bool((yield Call("hexists", (full, field))))

    ahexists = hexists.asynchronous

    @twin()
    def hget(
        self,
        key: Any,
        field: str,
        default: Any = None,
        version: int | None = None,
        client: Any = None,
    ) -> Op[Any]:
        full = self.make_and_validate_key(key, version)
        value = self._decoded((yield Call("hget", (full, field))))
        return default if value is MISSING else value

    ahget = hget.asynchronous

    @twin(miss=no_mapping)
    def hgetall(
        self, key: Any, version: int | None = None, client: Any = None
    ) -> Op[dict[str, Any]]:
        raw = yield Call("hgetall", (self.make_and_validate_key(key, version),))
        decoded = {text(field): self._decoded(value) for field, value in raw.items()}
        return {field: value for field, value in decoded.items() if value is not MISSING}

    ahgetall = hgetall.asynchronous

    @twin(miss=no_items)
    def hmget(
        self, key: Any, fields: Iterable[str], version: int | None = None, client: Any = None
    ) -> Op[list[Any]]:
        raw = yield Call("hmget", (self.make_and_validate_key(key, version), list(fields)))
        return [None if (value := self._decoded(item)) is MISSING else value for item in raw]

    ahmget = hmget.asynchronous

    @twin()
    def hincrby(
        self,
        key: Any,
        field: str,
        amount: int = 1,
        version: int | None = None,
        client: Any = None,
    ) -> Op[int]:
        full = self.make_and_validate_key(key, version)
        return int((yield Call("hincrby", (full, field, amount), write=True)))

    ahincrby = hincrby.asynchronous

    # --- lists ---------------------------------------------------------------------------------

    @twin()
    def lpush(
        self, key: Any, *values: Any, version: int | None = None, client: Any = None
    ) -> Op[int]:
        encoded = [self.client.encode(value) for value in values]
        full = self.make_and_validate_key(key, version)
        return int((yield Call("lpush", (full, *encoded), write=True)))

    alpush = lpush.asynchronous

    @twin()
    def rpush(
        self, key: Any, *values: Any, version: int | None = None, client: Any = None
    ) -> Op[int]:
        encoded = [self.client.encode(value) for value in values]
        full = self.make_and_validate_key(key, version)
        return int((yield Call("rpush", (full, *encoded), write=True)))

    arpush = rpush.asynchronous

    @twin(miss=no_items)
    def lrange(
        self, key: Any, start: int, end: int, version: int | None = None, client: Any = None
    ) -> Op[list[Any]]:
        raw = yield Call("lrange", (self.make_and_validate_key(key, version), start, end))
        return self._decoded_items(raw)

    alrange = lrange.asynchronous

    @twin(miss=False)
    def ltrim(
        self, key: Any, start: int, end: int, version: int | None = None, client: Any = None
    ) -> Op[bool]:
        full = self.make_and_validate_key(key, version)
        return bool((yield Call("ltrim", (full, start, end), write=True)))

    altrim = ltrim.asynchronous

    @twin(miss=0)
    def llen(self, key: Any, version: int | None = None, client: Any = None) -> Op[int]:
        return int((yield Call("llen", (self.make_and_validate_key(key, version),))))

    allen = llen.asynchronous

    @twin(miss=0)
    def lrem(
        self, key: Any, value: Any, count: int = 0, version: int | None = None, client: Any = None
    ) -> Op[int]:
        full = self.make_and_validate_key(key, version)
        return int((yield Call("lrem", (full, count, self.client.encode(value)), write=True)))

    alrem = lrem.asynchronous

    @twin()
    def lindex(
        self, key: Any, index: int, version: int | None = None, client: Any = None
    ) -> Op[Any]:
        full = self.make_and_validate_key(key, version)
        value = self._decoded((yield Call("lindex", (full, index))))
        return None if value is MISSING else value

    alindex = lindex.asynchronous

    @twin()
    def brpop(
        self, key: Any, timeout: float = 0, version: int | None = None, client: Any = None
    ) -> Op[Any]:
        """Pop from the tail, waiting up to ``timeout`` seconds (0 waits forever); None if none.

        ``abrpop`` waits on a pooled connection of its own (never on the shared async one,
        which it would block for every other task)."""
        full = self.make_and_validate_key(key, version)
        popped = yield Call("brpop", ([full],), {"timeout": timeout}, write=True)
        if popped is None:
            return None
        value = self._decoded(popped[1])
        return None if value is MISSING else value

    abrpop = brpop.asynchronous
