"""Keyspace commands of django-redis, mended: patterns, SCAN-based listing and deletion, TTLs.

Every listing goes through SCAN with a real COUNT over every primary of the topology (never
KEYS, which blocks a big database), and deletion UNLINKs in bounded batches, so one call never
holds Redis for long whatever the number of keys. A mixin of ``RedisCache``, under its policy;
each command has its async twin (``akeys``, ``aiter_keys``, ``adelete_pattern``, ``attl``...).
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Iterator
from typing import Any

from redis import Redis

from django_rediskit.cache.aio import aunlink_matching
from django_rediskit.cache.base import CacheCore, no_items
from django_rediskit.cache.steps import Call, Op
from django_rediskit.cache.twins import twin
from django_rediskit.connection.aio import async_topology
from django_rediskit.connection.policy import guarded
from django_rediskit.patterns import glob_escape


class KeyspaceCommands(CacheCore):
    def make_pattern(
        self, pattern: str, version: int | None = None, prefix: str | None = None
    ) -> str:
        """Full-key glob for a user pattern; prefix and version are escaped, the pattern is not."""
        pattern_key: str = self.key_func(
            pattern,
            glob_escape(self.key_prefix if prefix is None else prefix),
            glob_escape(str(self.version if version is None else version)),
        )
        return pattern_key

    @guarded(miss=0)
    def delete_pattern(
        self,
        pattern: str,
        version: int | None = None,
        prefix: str | None = None,
        client: Redis | None = None,
        itersize: int | None = None,
    ) -> int:
        """Delete matching entries with SCAN + bounded UNLINK batches; returns how many went."""
        pattern = self.make_pattern(pattern, version, prefix)
        return self._unlink_matching(pattern, itersize, client)

    def _unlink_matching(
        self, pattern: str, itersize: int | None = None, client: Redis | None = None
    ) -> int:
        count = itersize or self.options.scan_count
        if client is not None:
            scan = client.scan_iter(match=pattern, count=count)
            unlink: Any = lambda keys: client.unlink(*keys)  # noqa: E731
        else:
            scan = self.topology.scan_iter(pattern, count, write=True)
            unlink = self.topology.unlink
        deleted = 0
        batch: list[bytes] = []
        try:
            for full in scan:
                batch.append(full)
                if len(batch) >= self.options.delete_batch_size:
                    deleted += unlink(batch)
                    batch.clear()
            if batch:
                deleted += unlink(batch)
        finally:
            self.commands.flush_local()  # cheaper than naming every deleted key
        return deleted

    @guarded(miss=0)
    async def adelete_pattern(
        self,
        pattern: str,
        version: int | None = None,
        prefix: str | None = None,
        client: Any = None,
        itersize: int | None = None,
    ) -> int:
        """The async twin of :meth:`delete_pattern` (``client``: a ``redis.asyncio`` one)."""
        pattern = self.make_pattern(pattern, version, prefix)
        count = itersize or self.options.scan_count
        size = self.options.delete_batch_size
        try:
            if client is not None:

                async def unlink(keys: list[bytes]) -> int:
                    return int(await client.unlink(*keys))

                return await aunlink_matching(
                    client.scan_iter(match=pattern, count=count), unlink, size
                )
            topology = async_topology(self.topology)
            return await aunlink_matching(topology.scan_iter(pattern, count), topology.unlink, size)
        finally:
            self.commands.flush_local()

    @guarded()
    def iter_keys(
        self,
        search: str,
        itersize: int | None = None,
        client: Redis | None = None,
        version: int | None = None,
    ) -> Iterator[str]:
        """Yield the cache keys matching ``search`` (SCAN, never KEYS), without prefix/version."""
        pattern = self.make_pattern(search, version)
        count = itersize or self.options.scan_count
        scan = (
            client.scan_iter(match=pattern, count=count)
            if client is not None
            else self.topology.scan_iter(pattern, count)
        )
        for full in scan:
            yield self.client.reverse_key(full.decode() if isinstance(full, bytes) else full)

    @guarded()
    async def aiter_keys(
        self,
        search: str,
        itersize: int | None = None,
        client: Any = None,
        version: int | None = None,
    ) -> AsyncIterator[str]:
        """The async twin of :meth:`iter_keys` (``async for key in cache.aiter_keys("a*")``)."""
        pattern = self.make_pattern(search, version)
        count = itersize or self.options.scan_count
        scan = (
            client.scan_iter(match=pattern, count=count)
            if client is not None
            else async_topology(self.topology).scan_iter(pattern, count)
        )
        async for full in scan:
            yield self.client.reverse_key(full.decode() if isinstance(full, bytes) else full)

    @guarded(miss=no_items)
    def keys(
        self, search: str, version: int | None = None, client: Redis | None = None
    ) -> list[str]:
        """Every matching key, gathered with SCAN: safe on a big database, O(matches) memory."""
        return list(self.iter_keys(search, client=client, version=version))

    @guarded(miss=no_items)
    async def akeys(self, search: str, version: int | None = None, client: Any = None) -> list[str]:
        return [key async for key in self.aiter_keys(search, client=client, version=version)]

    @twin(miss=0)
    def ttl(self, key: Any, version: int | None = None, client: Any = None) -> Op[int | None]:
        """Seconds left (rounded up): None if persistent, 0 if missing. One round trip."""
        pttl = yield from self._pttl(key, version)
        return pttl if not pttl else math.ceil(pttl / 1000)

    attl = ttl.asynchronous

    @twin(miss=0)
    def pttl(self, key: Any, version: int | None = None, client: Any = None) -> Op[int | None]:
        """Milliseconds left: None if persistent, 0 if missing. One round trip."""
        return (yield from self._pttl(key, version))

    apttl = pttl.asynchronous

    def _pttl(self, key: Any, version: int | None) -> Op[int | None]:
        result = int((yield Call("pttl", (self.make_and_validate_key(key, version),))))
        if result == -1:
            return None
        return max(result, 0)
