"""Set commands with django-redis's signatures, on our client layer and under our failure policy.

Members go through the cache's codec like any cache value (the bytes django-redis's client wrote
through ``RedisKitClient``, so existing sets read back unchanged). A member that no longer decodes
(signed with a retired ``SECRET_KEY``, foreign bytes) is left out, as ``hgetall`` and ``lrange``
do, rather than failing the whole read.

Each command has its async twin (``asadd``...), written once with it (``cache/twins.py``).

Multi-key commands (``sdiff``, ``sinterstore``, ``smove``...) are one Redis command: on a cluster
their keys must share a hash tag, e.g. ``cache.sunion("{team}:a", "{team}:b")``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING, Any

from django_rediskit.cache.base import MISSING, CacheCore
from django_rediskit.cache.policy import guarded
from django_rediskit.cache.steps import Call, Op
from django_rediskit.cache.twins import twin
from django_rediskit.connection.aio import async_topology
from django_rediskit.globs import compile_globs

if TYPE_CHECKING:
    from redis import Redis


def _no_set(arguments: dict[str, Any]) -> set[Any]:
    return set()


def _no_pop(arguments: dict[str, Any]) -> set[Any] | None:
    """What ``spop`` answers for an empty set: None for one member, an empty set for a count."""
    return None if arguments["count"] is None else set()


def _no_sample(arguments: dict[str, Any]) -> list[Any] | None:
    return None if arguments["count"] is None else []


def _no_members(arguments: dict[str, Any]) -> list[bool]:
    """One False per member asked about, so callers that zip members with answers still can."""
    return [False] * len(arguments["members"])


def glob_regex(pattern: str) -> Callable[[str], object]:
    """Whether a decoded string member matches Redis glob ``pattern`` (its UTF-8 bytes, as
    Redis's ``stringmatchlen`` reads them: :mod:`django_rediskit.globs`).

    ``sscan(match=...)`` filters decoded members with it: the stored bytes carry a header and a
    signature, so a MATCH sent to Redis could never match them (django-redis sends a pickled
    pattern, which matches only members whose pickles happen to share its framing).
    """
    fullmatch = compile_globs([pattern]).fullmatch
    return lambda member: fullmatch(member.encode("utf-8", "surrogateescape"))


class SetCommands(CacheCore):
    def _members(self, raw: Any) -> set[Any]:
        return {value for value in map(self._decoded, raw) if value is not MISSING}

    def _full_keys(self, keys: tuple[Any, ...], version: int | None) -> list[str]:
        return [self.make_and_validate_key(key, version) for key in keys]

    def _member_or_members(self, raw: Any) -> Any:
        """SPOP / SRANDMEMBER's answer: a list with a count, one member (or None) without."""
        if isinstance(raw, list):
            return raw
        value = self._decoded(raw)
        return None if value is MISSING else value

    @twin(miss=0)
    def sadd(
        self, key: Any, *values: Any, version: int | None = None, client: Any = None
    ) -> Op[int]:
        encoded = [self.client.encode(value) for value in values]
        full = self.make_and_validate_key(key, version)
        return int((yield Call("sadd", (full, *encoded), write=True)))

    asadd = sadd.asynchronous

    @twin(miss=0)
    def scard(self, key: Any, version: int | None = None, client: Any = None) -> Op[int]:
        return int((yield Call("scard", (self.make_and_validate_key(key, version),))))

    ascard = scard.asynchronous

    @twin(miss=_no_set)
    def sdiff(self, *keys: Any, version: int | None = None, client: Any = None) -> Op[set[Any]]:
        return self._members((yield Call("sdiff", (self._full_keys(keys, version),))))

    asdiff = sdiff.asynchronous

    @twin(miss=0)
    def sdiffstore(
        self,
        dest: Any,
        *keys: Any,
        version_dest: int | None = None,
        version_keys: int | None = None,
        client: Any = None,
    ) -> Op[int]:
        full_dest = self.make_and_validate_key(dest, version_dest)
        sources = self._full_keys(keys, version_keys)
        return int((yield Call("sdiffstore", (full_dest, sources), write=True)))

    asdiffstore = sdiffstore.asynchronous

    @twin(miss=_no_set)
    def sinter(self, *keys: Any, version: int | None = None, client: Any = None) -> Op[set[Any]]:
        return self._members((yield Call("sinter", (self._full_keys(keys, version),))))

    asinter = sinter.asynchronous

    @twin(miss=0)
    def sinterstore(
        self, dest: Any, *keys: Any, version: int | None = None, client: Any = None
    ) -> Op[int]:
        full_dest = self.make_and_validate_key(dest, version)
        sources = self._full_keys(keys, version)
        return int((yield Call("sinterstore", (full_dest, sources), write=True)))

    asinterstore = sinterstore.asynchronous

    @twin(miss=_no_members)
    def smismember(
        self, key: Any, *members: Any, version: int | None = None, client: Any = None
    ) -> Op[list[bool]]:
        encoded = [self.client.encode(member) for member in members]
        full = self.make_and_validate_key(key, version)
        answers = yield Call("smismember", (full, encoded))
        return [bool(answer) for answer in answers]

    asmismember = smismember.asynchronous

    @twin(miss=False)
    def sismember(
        self, key: Any, member: Any, version: int | None = None, client: Any = None
    ) -> Op[bool]:
        full = self.make_and_validate_key(key, version)
        return bool((yield Call("sismember", (full, self.client.encode(member)))))

    asismember = sismember.asynchronous

    @twin(miss=_no_set)
    def smembers(self, key: Any, version: int | None = None, client: Any = None) -> Op[set[Any]]:
        return self._members((yield Call("smembers", (self.make_and_validate_key(key, version),))))

    asmembers = smembers.asynchronous

    @twin(miss=False)
    def smove(
        self,
        source: Any,
        destination: Any,
        member: Any,
        version: int | None = None,
        client: Any = None,
    ) -> Op[bool]:
        """``version`` applies to both keys (django-redis gives the destination the default
        version, so a versioned move lands in another version's set)."""
        full_source = self.make_and_validate_key(source, version)
        full_destination = self.make_and_validate_key(destination, version)
        encoded = self.client.encode(member)
        return bool((yield Call("smove", (full_source, full_destination, encoded), write=True)))

    asmove = smove.asynchronous

    @twin(miss=_no_pop)
    def spop(
        self,
        key: Any,
        count: int | None = None,
        version: int | None = None,
        client: Any = None,
    ) -> Op[set[Any] | Any]:
        full = self.make_and_validate_key(key, version)
        popped = self._member_or_members((yield Call("spop", (full, count), write=True)))
        return self._members(popped) if isinstance(popped, list) else popped

    aspop = spop.asynchronous

    @twin(miss=_no_sample)
    def srandmember(
        self,
        key: Any,
        count: int | None = None,
        version: int | None = None,
        client: Any = None,
    ) -> Op[list[Any] | Any]:
        full = self.make_and_validate_key(key, version)
        sample = self._member_or_members((yield Call("srandmember", (full, count))))
        if isinstance(sample, list):
            return self._decoded_items(sample)
        return sample

    asrandmember = srandmember.asynchronous

    @twin(miss=0)
    def srem(
        self, key: Any, *members: Any, version: int | None = None, client: Any = None
    ) -> Op[int]:
        encoded = [self.client.encode(member) for member in members]
        full = self.make_and_validate_key(key, version)
        return int((yield Call("srem", (full, *encoded), write=True)))

    asrem = srem.asynchronous

    @twin(miss=_no_set)
    def sscan(
        self,
        key: Any,
        match: str | None = None,
        count: int | None = 10,
        version: int | None = None,
        client: Any = None,
    ) -> Op[set[Any]]:
        """One SSCAN page from cursor 0 (django-redis's meaning); ``match`` is a Redis glob over
        the decoded string members (see :func:`glob_regex`), so it works with any codec."""
        wanted = glob_regex(match) if match else None
        full = self.make_and_validate_key(key, version)
        _cursor, raw = yield Call("sscan", (full,), {"count": count})
        return {value for value in self._members(raw) if _matches(wanted, value)}

    asscan = sscan.asynchronous

    @guarded()
    def sscan_iter(
        self,
        key: Any,
        match: str | None = None,
        count: int | None = 10,
        version: int | None = None,
        client: Redis | None = None,
    ) -> Iterator[Any]:
        """Every member, SSCAN page by page; ``match`` as in :meth:`sscan`."""
        wanted = glob_regex(match) if match else None
        full = self.make_and_validate_key(key, version)
        for raw in (client or self._read()).sscan_iter(full, count=count):
            value = self._decoded(raw)
            if value is not MISSING and _matches(wanted, value):
                yield value

    @guarded()
    async def asscan_iter(
        self,
        key: Any,
        match: str | None = None,
        count: int | None = 10,
        version: int | None = None,
        client: Any = None,
    ) -> AsyncIterator[Any]:
        """The async twin of :meth:`sscan_iter` (``async for member in cache.asscan_iter(k)``)."""
        wanted = glob_regex(match) if match else None
        full = self.make_and_validate_key(key, version)
        target = client if client is not None else async_topology(self.topology).client(False)
        async for raw in target.sscan_iter(full, count=count):
            value = self._decoded(raw)
            if value is not MISSING and _matches(wanted, value):
                yield value

    @twin(miss=_no_set)
    def sunion(self, *keys: Any, version: int | None = None, client: Any = None) -> Op[set[Any]]:
        return self._members((yield Call("sunion", (self._full_keys(keys, version),))))

    asunion = sunion.asynchronous

    @twin(miss=0)
    def sunionstore(
        self,
        destination: Any,
        *keys: Any,
        version: int | None = None,
        client: Any = None,
    ) -> Op[int]:
        full_destination = self.make_and_validate_key(destination, version)
        sources = self._full_keys(keys, version)
        return int((yield Call("sunionstore", (full_destination, sources), write=True)))

    asunionstore = sunionstore.asynchronous


def _matches(wanted: Callable[[str], object] | None, value: Any) -> bool:
    if wanted is None:
        return True
    return isinstance(value, str) and wanted(value) is not None
