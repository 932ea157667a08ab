"""The async twins of the cache methods, native on ``redis.asyncio``: no thread per call.

Each twin makes the key and the timeout exactly as its sync method does and drives the *same*
command of :mod:`~django_rediskit.cache.client` (a generator of Redis steps) with
:func:`arun` on the running loop's clients (``connection/aio.py``: pools per alias and loop,
never on the backend object, which Django makes afresh for every task). The failure policy is
the same :func:`~django_rediskit.connection.policy.guarded`, counting nested calls per task.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from django.core.cache.backends.base import DEFAULT_TIMEOUT

from django_rediskit.cache import tags as tagging
from django_rediskit.cache.base import MISSING, CacheCore, no_mapping
from django_rediskit.cache.local import NOT_HELD
from django_rediskit.cache.steps import Call, Lua, Op, Pipe, Spread, Step, queue
from django_rediskit.connection.aio import AsyncTopology, async_topology
from django_rediskit.connection.policy import guarded
from django_rediskit.lua import arun_pipeline

if TYPE_CHECKING:
    from django_rediskit.cache.backend import RedisCache

T = TypeVar("T")


async def arun(op: Op[T], topology: AsyncTopology, client: Any = None) -> T:
    """Drive ``op`` on the running loop (the async twin of :func:`steps.run`)."""
    if not topology.ready:
        await topology.initialize()
    send = op.send
    try:
        step = send(None)
        while True:
            try:
                reply = await aexecute(step, topology, client)
            except Exception as exc:  # handed to the command, which decides
                step = op.throw(exc)
                continue
            step = send(reply)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


async def aexecute(step: Step, topology: AsyncTopology, client: Any = None) -> Any:
    """One step on a ``redis.asyncio`` client."""
    if isinstance(step, Call):
        target = client if client is not None else topology.client(step.write)
        return await getattr(target, step.method)(*step.args, **step.kwargs)
    if isinstance(step, Lua):
        target = client if client is not None else topology.client(step.write)
        return await step.script.acall(step.keys, step.args, target)
    if isinstance(step, Pipe):
        target = client if client is not None else topology.client(step.write)
        return await arun_pipeline(target, lambda pipe: queue(pipe, step.steps))
    if isinstance(step, Spread):
        if step.method == "mget":
            if client is None:
                return await topology.mget(step.keys, write=step.write)
            return list(await client.mget(list(step.keys)))
        if client is None:
            return await topology.unlink(step.keys)
        return await client.unlink(*step.keys)
    await asyncio.sleep(step.seconds)
    return None


def _failed_keys(arguments: dict[str, Any]) -> list[Any]:
    return list(arguments["data"])


def _computed_default(arguments: dict[str, Any]) -> Any:
    default = arguments["default"]
    return default() if callable(default) else default


class AsyncTwins(CacheCore):
    """``aget``, ``aset``... of ``RedisCache`` (the mixin is only ever part of it)."""

    def _backend(self) -> RedisCache:
        return cast("RedisCache", self)

    async def _arun(self, op: Op[T]) -> T:
        return await arun(op, async_topology(self.topology))

    @guarded()
    async def atag_versions(self, *tags: str) -> tagging.TagVersions | None:
        return await self._arun(self._backend().commands.tag_versions(tags))

    @guarded(miss=0)
    async def ainvalidate_tags(self, *tags: str) -> int:
        return await self._arun(self._backend().commands.invalidate_tags(tags))

    @guarded(miss=False)
    async def aadd(
        self,
        key: Any,
        value: Any,
        timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
        *,
        tags: Iterable[str] | None = None,
        versions: Mapping[str, bytes] | None = None,
    ) -> bool:
        cache = self._backend()
        full = cache.make_and_validate_key(key, version)
        ms = cache.timeout_ms(timeout, value)
        return await self._arun(cache.commands.add(full, value, ms, tags, versions))

    @guarded(miss=lambda arguments: arguments["default"])
    async def aget(
        self,
        key: Any,
        default: Any = None,
        version: int | None = None,
        *,
        refresh_ttl: Any = None,
        tags: Iterable[str] | None = None,
    ) -> Any:
        cache = self._backend()
        full = cache.make_and_validate_key(key, version)
        refresh = cache._refresh_ms(refresh_ttl)
        if cache.options.local_cache is not None and not tags and refresh is False:
            held = cache.commands.held(full)  # a local hit needs no I/O, so no await
            if held is not NOT_HELD:
                return default if held is MISSING else held
        op = cache.commands.get(full, tags, refresh)
        value = await self._arun(op)
        return default if value is MISSING else value

    @guarded(miss=False)
    async def aset(
        self,
        key: Any,
        value: Any,
        timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
        *,
        nx: bool = False,
        xx: bool = False,
        tags: Iterable[str] | None = None,
        versions: Mapping[str, bytes] | None = None,
    ) -> bool:
        cache = self._backend()
        full = cache.make_and_validate_key(key, version)
        ms = cache.timeout_ms(timeout, value)
        return await self._arun(cache.commands.set(full, value, ms, nx, xx, tags, versions))

    @guarded(miss=False)
    async def atouch(
        self, key: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
    ) -> bool:
        cache = self._backend()
        full = cache.make_and_validate_key(key, version)
        return await self._arun(cache.commands.touch(full, cache.timeout_ms(timeout)))

    @guarded(miss=False)
    async def adelete(self, key: Any, version: int | None = None) -> bool:
        cache = self._backend()
        return await self._arun(cache.commands.delete(cache.make_and_validate_key(key, version)))

    @guarded(miss=no_mapping)
    async def aget_many(
        self,
        keys: Iterable[Any],
        version: int | None = None,
        *,
        tags: Iterable[str] | None = None,
    ) -> dict[Any, Any]:
        cache = self._backend()
        by_full = cache._by_full_key(keys, version)
        if not by_full:
            return {}
        values = await self._arun(cache.commands.get_many(list(by_full), tags))
        return cache._found(by_full, values)

    @guarded(miss=_failed_keys)
    async def aset_many(
        self,
        data: Mapping[Any, Any],
        timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
        *,
        tags: Iterable[str] | None = None,
        versions: Mapping[str, bytes] | None = None,
    ) -> list[Any]:
        cache = self._backend()
        items = cache._items(data, timeout, version)
        await self._arun(cache.commands.set_many(items, tags, versions))
        return []

    @guarded()
    async def adelete_many(self, keys: Iterable[Any], version: int | None = None) -> None:
        cache = self._backend()
        fulls = [cache.make_and_validate_key(key, version) for key in keys]
        await self._arun(cache.commands.delete_many(fulls))

    @guarded(miss=False)
    async def ahas_key(self, key: Any, version: int | None = None) -> bool:
        cache = self._backend()
        return await self._arun(cache.commands.has_key(cache.make_and_validate_key(key, version)))

    @guarded()
    async def aincr(
        self, key: Any, delta: int = 1, version: int | None = None, ignore_key_check: bool = False
    ) -> int:
        cache = self._backend()
        full = cache.make_and_validate_key(key, version)
        cache._check_delta(delta)
        result = await self._arun(cache.commands.incr(full, delta, ignore_key_check))
        return cache._incremented(key, result)

    @guarded()
    async def adecr(
        self, key: Any, delta: int = 1, version: int | None = None, ignore_key_check: bool = False
    ) -> int:
        return await self.aincr(key, -delta, version, ignore_key_check)

    @guarded()
    async def aincr_version(self, key: Any, delta: int = 1, version: int | None = None) -> int:
        cache = self._backend()
        old, new, moved_to = cache._version_keys(key, delta, version)
        if not await self._arun(cache.commands.move(old, new)):
            raise ValueError(f"Key {key!r} not found")
        return moved_to

    @guarded()
    async def adecr_version(self, key: Any, delta: int = 1, version: int | None = None) -> int:
        return await self.aincr_version(key, -delta, version)

    @guarded(miss=_computed_default)
    async def aget_or_set(
        self,
        key: Any,
        default: Any,
        timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
        *,
        tags: Iterable[str] | None = None,
    ) -> Any:
        """Stampede-safe, as ``get_or_set``: the same protocol, awaited."""
        return await self._arun(self._backend()._stampede(key, default, timeout, version, tags))

    @guarded(miss=lambda arguments: arguments["default"]())
    async def acompute_and_store(
        self,
        key: Any,
        default: Callable[[], Any],
        timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
        tags: Iterable[str] | None = None,
    ) -> Any:
        return await self._arun(self._backend()._refresh(key, default, timeout, version, tags))

    @guarded()
    async def aclear(self) -> None:
        """As ``clear()``: SCAN + UNLINK batches, here on the loop's clients."""
        cache = self._backend()
        topology = async_topology(cache.topology)
        try:
            for pattern in cache._clear_patterns():
                scan = topology.scan_iter(pattern, cache.options.scan_count)
                await aunlink_matching(scan, topology.unlink, cache.options.delete_batch_size)
        finally:
            cache.commands.flush_local()

    async def aclose(self, **kwargs: Any) -> None:
        """Pools live per event loop for the process: nothing to close per request."""


async def aunlink_matching(
    scan: AsyncIterator[bytes], unlink: Callable[[list[bytes]], Awaitable[int]], size: int
) -> int:
    """UNLINK what ``scan`` finds in batches of ``size``; how many went."""
    deleted = 0
    batch: list[bytes] = []
    async for full in scan:
        batch.append(full)
        if len(batch) >= size:
            deleted += await unlink(batch)
            batch = []
    if batch:
        deleted += await unlink(batch)
    return deleted
