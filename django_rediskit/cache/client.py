"""The cache client: every Django-contract command as steps, run by a sync (or async) driver.

The facade (``cache/backend.py``) owns Django's meaning: it makes the key, the timeout in ms and
the policy. This module owns what is sent and how replies are read: the value codec, tagged
entries, the tag-version round trips and the stampede loop. Each command is a generator that
*yields* the Redis steps it needs (a call, a pipeline, a script, a multi-key call that the
topology splits per node, a pause) and receives each reply, so the same code is driven by
:func:`~django_rediskit.cache.steps.run` on a redis-py client and, for the async twins, by
the ``asyncio`` driver of ``cache/aio.py`` on
``redis.asyncio`` -- the way redis-py's async classes reuse its command builders. A driver throws
a command's error back into the generator, which may handle it (WRONGTYPE in ``add``) or not.

Round trips are the cost model: each ``yield`` is one.
"""

from __future__ import annotations

import logging
import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from itertools import repeat
from typing import TYPE_CHECKING, Any

from redis.exceptions import ResponseError

from django_rediskit.cache import entries
from django_rediskit.cache import tags as tagging
from django_rediskit.cache.base import MISSING
from django_rediskit.cache.codec import EXTENSION, MARKER, TagBlock
from django_rediskit.cache.local.cache import NOT_HELD
from django_rediskit.cache.steps import Call, Lua, Op, Pause, Pipe, Spread, T
from django_rediskit.connection.policy import OUTAGE_ERRORS
from django_rediskit.lua import script
from django_rediskit.pending import pending_tags

if TYPE_CHECKING:
    from django_rediskit.cache.clients import RedisKitClient
    from django_rediskit.cache.local.cache import LocalCache, Ticket
    from django_rediskit.cache.options import CacheOptions
    from django_rediskit.cache.stats import CacheStats, OpStats

logger = logging.getLogger("django_rediskit.cache")

# --- the commands --------------------------------------------------------------------------------


class CacheClient:
    """Every Django-contract command of one backend, on full keys and timeouts in ms.

    ``ms`` follows the facade's ``timeout_ms``: None keeps a value forever, 0 or less deletes.
    Values read back that cannot be trusted (bad signature, undecodable) are MISSING.
    """

    __slots__ = ("_get", "_io", "_local", "_many", "_options", "_stats", "_tag_key")

    def __init__(
        self,
        io: RedisKitClient,
        options: CacheOptions,
        tag_key: Callable[[str], str],
        stats: CacheStats,
        local: LocalCache | None = None,
    ) -> None:
        self._io = io  # the codec (CLIENT_CLASS may override encode/decode)
        self._options = options
        self._tag_key = tag_key
        self._stats = stats  # hits and misses are counted where entries are read
        self._get = stats.ops["get"]  # held directly: counting by operation costs nothing more
        self._many = stats.ops["get_many"]
        #: ``OPTIONS["LOCAL_CACHE"]``: raw bytes of hot keys (entries and tag versions) kept in
        #: process, invalidated by Redis; reads go through :meth:`read`/:meth:`read_many`,
        #: every write drops its keys locally once Redis has answered (read-your-writes).
        self._local = local

    @property
    def options(self) -> CacheOptions:
        return self._options

    def pause(self, seconds: float) -> Op[None]:
        yield Pause(seconds)

    # --- reads through the local cache, and what writes drop from it --------------------------

    def read(self, full: str) -> Op[Any]:
        """GET ``full``: from the local cache when it holds the key, else from Redis (and kept
        locally when the key is wanted there, with its remaining TTL, read on the primary)."""
        local = self._local
        if local is None or not local.wants(full):
            return (yield Call("get", (full,)))
        raw = local.get(full)
        if raw is not NOT_HELD:
            return raw
        return (yield from self.fill(full))

    def held(self, full: str) -> Any:
        """The value of ``full`` if the local cache holds it untagged (decoded, a fresh object;
        MISSING for a remembered miss), else NOT_HELD: the no-I/O fast path of ``get``."""
        local = self._local
        if local is None or not local.wants(full):
            return NOT_HELD
        raw = local.get(full)
        if raw is NOT_HELD:
            return NOT_HELD
        value, block = entries.decode(self._io.codec, raw, verified=True)
        if block is not None:
            return NOT_HELD  # tagged: its tags are checked by the get command
        return self._counted(value, self._get)

    def fill(self, full: str) -> Op[Any]:
        """Read ``full`` (and its TTL) from the primary and keep it locally if it can be
        trusted: only values that pass the codec's checks are kept, so a local hit need not
        verify its signature again."""
        local = self._local
        assert local is not None
        ticket = local.begin(full)
        raw, pttl = yield Pipe((Call("get", (full,)), Call("pttl", (full,))))
        self._keep(full, raw, ticket, pttl)
        return raw

    def _keep(self, full: str, raw: Any, ticket: Ticket | None, pttl: int) -> None:
        local = self._local
        if local is None or ticket is None:
            return
        if raw is not None and entries.decode(self._io.codec, raw)[0] is MISSING:
            return  # forged or undecodable: never held, so never trusted unchecked
        local.put(full, raw, ticket, ttl=pttl / 1000 if pttl > 0 else None)

    def read_many(self, keys: Sequence[str]) -> Op[list[Any]]:
        """MGET through the local cache: held keys answer locally, the rest in one step."""
        local = self._local
        if local is None:
            return list((yield Spread("mget", tuple(keys))))
        found: list[Any] = [None] * len(keys)
        wanted: list[tuple[int, Ticket | None]] = []
        plain: list[int] = []
        for index, key in enumerate(keys):
            if local.wants(key):
                raw = local.get(key)
                if raw is not NOT_HELD:
                    found[index] = raw
                    continue
                wanted.append((index, local.begin(key)))
            else:
                plain.append(index)
        if plain:
            values = yield Spread("mget", tuple(keys[i] for i in plain))
            for index, value in zip(plain, values, strict=True):
                found[index] = value
        if wanted:
            steps: list[Call | Lua] = []
            for index, _ticket in wanted:
                steps += (Call("get", (keys[index],)), Call("pttl", (keys[index],)))
            replies = yield Pipe(tuple(steps))
            for n, (index, ticket) in enumerate(wanted):
                raw = found[index] = replies[2 * n]
                self._keep(keys[index], raw, ticket, replies[2 * n + 1])
        return found

    def writing(self, keys: Iterable[str], op: Op[T]) -> Op[T]:
        """``op``, then its keys dropped locally (whether it succeeded or not)."""
        try:
            return (yield from op)
        finally:
            self.wrote(keys)

    def wrote(self, keys: Iterable[str]) -> None:
        """Drop ``keys`` from the local cache after a write to them returned or failed."""
        if self._local is not None:
            self._local.invalidate(keys)

    def flush_local(self) -> None:
        """After a bulk delete (``clear``, ``delete_pattern``): nothing local is known good."""
        if self._local is not None:
            self._local.flush()

    # --- entries and tags ------------------------------------------------------------------------

    def tag_keys(self, names: Iterable[str]) -> dict[str, str]:
        return {name: self._tag_key(name) for name in names}

    def entry(self, value: Any, ms: int | None, block: TagBlock | None) -> tuple[Any, int | None]:
        """Encoded bytes and PX for one write (the rules are in :func:`entries.write_ms`)."""
        if block is None:
            data: Any = self._io.encode(value)
            if not self._options.jitter:
                return data, ms  # the hot path: nothing to adjust
        else:
            data = self._io.codec.encode(value, block)
        options = self._options
        ms = entries.write_ms(
            ms, block, tag_ttl_ms=options.tag_ttl_ms, jitter=options.jitter, pending=pending_tags()
        )
        return data, ms

    def ensure_tags(self, names: Sequence[str]) -> Op[tagging.TagVersions]:
        """The current version of each tag, creating missing ones: one round trip.

        ``SET key token NX GET PX ttl`` creates the key or returns the existing token atomically
        (concurrent creators all adopt the one that won); ``PEXPIRE key ttl GT`` lazily extends an
        existing key so it outlives the entries written now. Nothing is created without a TTL.
        """
        if not names:
            return tagging.TagVersions({})
        ttl = self._options.tag_ttl_ms
        tokens = {name: tagging.new_token() for name in names}
        keys = self.tag_keys(names)
        steps: list[Call | Lua] = []
        for name, key in keys.items():
            steps.append(Call("set", (key, tokens[name]), {"nx": True, "get": True, "px": ttl}))
            steps.append(Call("pexpire", (key, ttl), {"gt": True}))
        try:
            replies = yield Pipe(tuple(steps))
        finally:
            self.wrote(keys.values())
        return tagging.TagVersions(
            {
                name: replies[2 * index] if replies[2 * index] is not None else tokens[name]
                for index, name in enumerate(names)
            }
        )

    def tag_block(self, tags: Any, versions: Mapping[str, bytes] | None) -> Op[TagBlock | None]:
        """The header block for a tagged write; reads versions (one round trip) if none given."""
        if tags is None and versions is None:
            return None  # an untagged write, the hot path
        names = tagging.normalize_tags(tags)
        if versions is None:
            if not names:
                return None
            return (yield from self.ensure_tags(names)).block()
        if tags is not None and set(names) != set(versions):
            raise ValueError(
                f"tags {sorted(names)} and the captured versions {sorted(versions)} differ."
            )
        tagging.normalize_tags(list(versions))
        if any(not isinstance(v, bytes) or not v for v in versions.values()):
            raise TypeError("versions must map tag names to tokens from tag_versions().")
        captured = tagging.TagVersions(versions)
        return captured.block() if captured else None

    def checked(self, raws: Sequence[Any], known: dict[str, bytes | None]) -> Op[list[Any]]:
        """Decode entries; a tagged one is MISSING unless its captured versions are current.

        ``known`` holds versions read in the same round trip as the entries (declared tags);
        tags an entry names beyond those cost one more round trip for all entries together.
        """
        codec = self._io.codec
        decoded = [entries.decode(codec, raw) for raw in raws]
        if entries.untagged(decoded):
            return [value for value, _block in decoded]
        decoded = entries.hide_pending(decoded, pending_tags())
        wanted = entries.unknown_tags(decoded, known)
        if wanted:
            keys = self.tag_keys(wanted)
            versions = yield from self.read_many(tuple(keys.values()))
            known.update(zip(keys, versions, strict=True))
        values = entries.values(decoded, known)
        stale = entries.stale_count(decoded, values)
        if stale:
            self._stats.stale += stale
        return values

    def tag_versions(self, tags: Iterable[str]) -> Op[tagging.TagVersions]:
        return (yield from self.ensure_tags(tagging.normalize_tags(tags)))

    def invalidate_tags(self, tags: Iterable[str]) -> Op[int]:
        """One pipeline of single-key UNLINKs (Cluster-safe), O(tags). Outages are retried
        briefly (3 tries within ~100 ms); a final failure is logged with the tags, because a
        lost invalidation is stale data until the entries' TTL."""
        names = tagging.normalize_tags(tags)
        keys = list(self.tag_keys(names).values())
        if not keys:
            return 0
        for attempt in range(3):
            try:
                try:
                    replies = yield Pipe(tuple(Call("unlink", (key,)) for key in keys))
                finally:
                    self.wrote(keys)
                return sum(int(reply) for reply in replies)
            except OUTAGE_ERRORS:
                if attempt == 2:
                    logger.error("Tag invalidation failed; stale until TTL: %s", list(names))
                    raise
                yield Pause(0.02 * (attempt + 1))
        raise AssertionError("unreachable")  # pragma: no cover

    # --- the Django contract ---------------------------------------------------------------------

    def get(
        self,
        full: str,
        tags: Iterable[str] | None = None,
        refresh_ms: int | bool | None = False,
        counted: OpStats | None = None,
    ) -> Op[Any]:
        """The value or MISSING. ``tags``: declared, read in the same round trip; ``refresh_ms``
        (False: no refresh) restarts the timeout with GETEX; ``counted``: the operation the
        lookup is counted under (``get`` by default)."""
        counter = counted or self._get
        if not tags and refresh_ms is False:
            # The common case: one GET, and tag checks only if the entry turns out tagged.
            local = self._local
            if local is None or not local.wants(full):  # no extra generator on this path
                raw = yield Call("get", (full,))
                value, block = entries.decode(self._io.codec, raw)
            else:
                raw = local.get(full)
                if raw is NOT_HELD:
                    raw = yield from self.fill(full)
                    value, block = entries.decode(self._io.codec, raw)
                else:  # held: authenticated when it was kept
                    value, block = entries.decode(self._io.codec, raw, verified=True)
            if block is not None:
                value = (yield from self.checked([raw], {}))[0]
            if value is MISSING:  # _counted, inlined on the hot path
                counter.misses += 1
            else:
                counter.hits += 1
            return value
        declared = self.tag_keys(tagging.normalize_tags(tags)) if tags else {}
        current: list[Any] = []
        if refresh_ms is False:
            if declared:
                raw, *current = yield from self.read_many((full, *declared.values()))
            else:
                raw = yield from self.read(full)
        else:
            getex = (
                Call("getex", (full,), {"persist": True})
                if refresh_ms is None
                else Call("getex", (full,), {"px": refresh_ms})
            )
            try:
                raw, *current = yield Pipe(
                    (getex, *(Call("get", (key,)) for key in declared.values()))
                )
            finally:
                self.wrote((full,))  # GETEX changed its TTL
        value = (yield from self.checked([raw], dict(zip(declared, current, strict=True))))[0]
        return self._counted(value, counter)

    def counter(self, op: str) -> OpStats:
        """The lookup counters of ``op`` (one of ``stats.LOOKUP_OPS``)."""
        return self._stats.ops[op]

    def _counted(self, value: Any, counter: OpStats) -> Any:
        if value is MISSING:
            counter.misses += 1
        else:
            counter.hits += 1
        return value

    def set(
        self,
        full: str,
        value: Any,
        ms: int | None,
        nx: bool = False,
        xx: bool = False,
        tags: Iterable[str] | None = None,
        versions: Mapping[str, bytes] | None = None,
    ) -> Op[bool]:
        op = self._set(full, value, ms, nx, xx, tags, versions)
        return op if self._local is None else self.writing((full,), op)

    def _set(
        self,
        full: str,
        value: Any,
        ms: int | None,
        nx: bool = False,
        xx: bool = False,
        tags: Iterable[str] | None = None,
        versions: Mapping[str, bytes] | None = None,
    ) -> Op[bool]:
        # an untagged write, the hot path, skips the tag block's generator
        block = (
            None
            if tags is None and versions is None
            else (yield from self.tag_block(tags, versions))
        )
        data, ms = self.entry(value, ms, block)
        if ms is not None and ms <= 0:
            if nx:
                return not (yield Call("exists", (full,), write=True))
            return bool((yield Call("unlink", (full,), write=True)))
        reply = yield Call("set", (full, data), {"px": ms, "nx": nx, "xx": xx}, write=True)
        return bool(reply)

    def add(
        self,
        full: str,
        value: Any,
        ms: int | None,
        tags: Iterable[str] | None = None,
        versions: Mapping[str, bytes] | None = None,
    ) -> Op[bool]:
        op = self._add(full, value, ms, tags, versions)
        return op if self._local is None else self.writing((full,), op)

    def _add(
        self,
        full: str,
        value: Any,
        ms: int | None,
        tags: Iterable[str] | None = None,
        versions: Mapping[str, bytes] | None = None,
    ) -> Op[bool]:
        block = yield from self.tag_block(tags, versions)
        data, ms = self.entry(value, ms, block)
        if ms is not None and ms <= 0:
            return not (yield Call("exists", (full,), write=True))
        try:
            # NX GET (Redis 7) answers "was there a value, and which" in the same round trip.
            previous = yield Call(
                "set", (full, data), {"nx": True, "get": True, "px": ms}, write=True
            )
        except ResponseError as exc:
            if "WRONGTYPE" in str(exc):  # a hash or list lives there: it exists
                return False
            raise
        if previous is None:
            return True
        # The key holds an entry that may read as a miss (invalidated tags, undecodable);
        # add() must then succeed, as it would had the entry been deleted.
        if (yield from self.checked([previous], {}))[0] is not MISSING:
            return False
        replaced = yield Lua(script("tags_replace_stale"), (full,), (previous, data, ms or 0))
        return bool(replaced)

    def touch(self, full: str, ms: int | None) -> Op[bool]:
        op = self._touch(full, ms)
        return op if self._local is None else self.writing((full,), op)

    def _touch(self, full: str, ms: int | None) -> Op[bool]:
        if ms is None:
            # PERSIST answers 0 for a key that exists without a TTL: ask EXISTS in the same trip.
            replies = yield Pipe((Call("persist", (full,)), Call("exists", (full,))))
            return bool(replies[1])
        return bool((yield Call("pexpire", (full, max(ms, 0)), write=True)))

    def delete(self, full: str) -> Op[bool]:
        op = self._delete(full)
        return op if self._local is None else self.writing((full,), op)

    def _delete(self, full: str) -> Op[bool]:
        return bool((yield Call("unlink", (full,), write=True)))

    def get_many(self, fulls: Sequence[str], tags: Iterable[str] | None = None) -> Op[list[Any]]:
        """Values in the order of ``fulls`` (MISSING for misses): one round trip per node."""
        declared = self.tag_keys(tagging.normalize_tags(tags)) if tags else {}
        raws = yield from self.read_many((*fulls, *declared.values()))
        known = dict(zip(declared, raws[len(fulls) :], strict=True))
        values = yield from self.checked(raws[: len(fulls)], known)
        misses = sum(map(operator.is_, values, repeat(MISSING)))  # no per-value frame
        self._many.misses += misses
        self._many.hits += len(values) - misses
        return values

    def set_many(
        self,
        items: Sequence[tuple[str, Any, int | None]],
        tags: Iterable[str] | None = None,
        versions: Mapping[str, bytes] | None = None,
    ) -> Op[None]:
        op = self._set_many(items, tags, versions)
        return op if self._local is None else self.writing([item[0] for item in items], op)

    def _set_many(
        self,
        items: Sequence[tuple[str, Any, int | None]],
        tags: Iterable[str] | None = None,
        versions: Mapping[str, bytes] | None = None,
    ) -> Op[None]:
        """Write (full key, value, ms) triples in one pipeline. Everything is encoded first: a
        value that cannot be serialized writes nothing at all."""
        if not items:
            return
        block = yield from self.tag_block(tags, versions)
        steps: list[Call | Lua] = []
        for full, value, ms in items:
            data, px = self.entry(value, ms, block)
            if px is not None and px <= 0:
                steps.append(Call("unlink", (full,)))
            else:
                steps.append(Call("set", (full, data), {"px": px}))
        yield Pipe(tuple(steps))

    def delete_many(self, fulls: Sequence[str]) -> Op[int]:
        op = self._delete_many(fulls)
        return op if self._local is None else self.writing(fulls, op)

    def _delete_many(self, fulls: Sequence[str]) -> Op[int]:
        if not fulls:
            return 0
        return int((yield Spread("unlink", tuple(fulls), write=True)))

    def has_key(self, full: str) -> Op[bool]:
        """Whether ``get`` would find the key: one round trip, two for a tagged entry (whose
        tags may have been invalidated while the key still exists)."""
        try:
            head = yield Call("getrange", (full, 0, 0))
        except ResponseError as exc:
            if "WRONGTYPE" in str(exc):  # a hash or list: it exists
                return True
            raise
        if isinstance(head, str):  # decode_responses clients
            head = head.encode()
        if not head or not head[0] & MARKER or not head[0] & EXTENSION:
            return bool(head)
        raw = yield Call("get", (full,))
        return (yield from self.checked([raw], {}))[0] is not MISSING

    def incr(self, full: str, delta: int, ignore_key_check: bool = False) -> Op[int | bytes]:
        op = self._incr(full, delta, ignore_key_check)
        return op if self._local is None else self.writing((full,), op)

    def _incr(self, full: str, delta: int, ignore_key_check: bool = False) -> Op[int | bytes]:
        """INCRBY keeping the TTL, in one script; ``b"missing"`` / ``b"notint"`` on refusal."""
        result = yield Lua(script("incr"), (full,), (delta, int(ignore_key_check)))
        return result if result in (b"missing", b"notint") else int(result)

    # --- the stampede lock (policy in cache/stampede.py) ---------------------------------------

    def try_lock(self, lock_key: str, token: bytes) -> Op[bool]:
        px = self._options.stampede_lock_ms
        return bool((yield Call("set", (lock_key, token), {"nx": True, "px": px}, write=True)))

    def release_lock(self, lock_key: str, token: bytes) -> Op[bool]:
        """Release only while the lock still holds our token (it may have expired and been
        taken by another computer meanwhile)."""
        return bool((yield Lua(script("lock_release"), (lock_key,), (token,))))

    def lock_or_read(
        self, full: str, lock_key: str, token: bytes, tags: Sequence[str]
    ) -> Op[tuple[bool, Any]]:
        """One round trip: try to take the lock and read the entry again, so a value stored
        since our miss is found without a second trip."""
        declared = self.tag_keys(tags)
        px = self._options.stampede_lock_ms
        acquired, raw, *current = yield Pipe(
            (
                Call("set", (lock_key, token), {"nx": True, "px": px}),
                Call("get", (full,)),
                *(Call("get", (key,)) for key in declared.values()),
            )
        )
        value = (yield from self.checked([raw], dict(zip(declared, current, strict=True))))[0]
        return bool(acquired), value

    def store_and_release(
        self,
        full: str,
        value: Any,
        ms: int | None,
        captured: tagging.TagVersions | None,
        lock_key: str,
        token: bytes,
    ) -> Op[None]:
        op = self._store_and_release(full, value, ms, captured, lock_key, token)
        return op if self._local is None else self.writing((full,), op)

    def _store_and_release(
        self,
        full: str,
        value: Any,
        ms: int | None,
        captured: tagging.TagVersions | None,
        lock_key: str,
        token: bytes,
    ) -> Op[None]:
        """Write the entry and release its lock in the same round trip."""
        block = captured.block() if captured else None
        data, px = self.entry(value, ms, block)
        write: Call = (
            Call("unlink", (full,))
            if px is not None and px <= 0
            else Call("set", (full, data), {"px": px})
        )
        yield Pipe((write, Lua(script("lock_release"), (lock_key,), (token,))))

    def move(self, old: str, new: str) -> Op[bool]:
        op = self._move(old, new)
        return op if self._local is None else self.writing((old, new), op)

    def _move(self, old: str, new: str) -> Op[bool]:
        """Copy an entry to another key with its remaining TTL and drop the old one (the
        version change of ``incr_version``): two round trips, never a cross-slot script."""
        raw, pttl = yield Pipe((Call("get", (old,)), Call("pttl", (old,))))
        if raw is None:
            return False
        set_new = Call("set", (new, raw), {"px": pttl if pttl > 0 else None})
        yield Pipe((set_new, Call("unlink", (old,))))
        return True
