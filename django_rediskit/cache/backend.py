"""``django_rediskit.cache.RedisCache``: django-redis's API, Django's contract, and the mends.

The backend is the facade that owns Django's meaning (keys, versions, timeouts, return values);
the client owns connections and the codec. Hot paths talk to redis-py directly so the layering
costs nothing measurable next to a round trip.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import random
import threading
import time
import uuid
import warnings
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Final

from asgiref.sync import sync_to_async
from django.core.cache.backends.base import (
    DEFAULT_TIMEOUT,
    CacheKeyWarning,
    default_key_func,
    memcache_key_warnings,
)
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string
from django_redis.cache import RedisCache as DjangoRedisCache
from redis import Redis
from redis.client import Pipeline
from redis.exceptions import ResponseError
from redis.lock import Lock

from django_rediskit.cache import tags as tagging
from django_rediskit.cache.base import MISSING, no_items, no_mapping
from django_rediskit.cache.clients import RedisKitClient
from django_rediskit.cache.codec import EXTENSION, MARKER, TagBlock, UndecodableValue
from django_rediskit.cache.stats import CacheStats
from django_rediskit.cache.structures import HashAndListCommands
from django_rediskit.conf import NAMESPACES
from django_rediskit.connection.policy import (
    OUTAGE_ERRORS,
    CircuitBreaker,
    ThrottledLog,
    alias_policy,
    guarded,
    is_guarded,
)
from django_rediskit.connection.topology import Topology, topology_for
from django_rediskit.lua import run_pipeline, script
from django_rediskit.patterns import glob_escape
from django_rediskit.pending import pending_tags

logger = logging.getLogger("django_rediskit.cache")

DEFAULT_SCAN_COUNT = 1000
DEFAULT_DELETE_BATCH = 500
DEFAULT_STAMPEDE_LOCK_TIMEOUT = 10.0

#: One stats object per cache scope (alias), shared by the per-thread backend instances Django
#: creates; the breaker and the outage log are the alias's (``connection.policy``).
_shared: dict[str, CacheStats] = {}
_shared_lock = threading.Lock()

KNOWN_OPTIONS: Final = frozenset(
    {
        # django-redis's options, honoured with the same meaning
        "CLIENT_CLASS",
        "SERIALIZER",
        "COMPRESSOR",
        "PICKLE_VERSION",
        "IGNORE_EXCEPTIONS",
        "REPLICA_READ_ONLY",
        "CLOSE_CONNECTION",
        "CONNECTION_POOL_CLASS",
        "CONNECTION_POOL_KWARGS",
        "REDIS_CLIENT_CLASS",
        "REDIS_CLIENT_KWARGS",
        "PARSER_CLASS",
        "PASSWORD",
        "USERNAME",
        "SOCKET_TIMEOUT",
        "SOCKET_CONNECT_TIMEOUT",
        # ours
        "COMPRESS_MIN_LENGTH",
        "COMPRESS_LEVEL",
        "SIGN_VALUES",
        "SIGNING_SALT",
        "MAX_VALUE_SIZE",
        "SLIDING",
        "CIRCUIT_BREAKER",
        "LOG_INTERVAL",
        "SCAN_COUNT",
        "DELETE_BATCH_SIZE",
        "STAMPEDE_LOCK_TIMEOUT",
        "TAG_TTL",
        "JITTER",
        "CLEAR_SESSIONS",
        # topologies (connection/topology.py)
        "READ_FROM_REPLICAS",
        "RETRY",
        "SENTINEL_KWARGS",
    }
)


def _failed_keys(arguments: dict[str, Any]) -> list[Any]:
    return list(arguments["data"])


def _computed_default(arguments: dict[str, Any]) -> Any:
    default = arguments["default"]
    return default() if callable(default) else default


class RedisCache(HashAndListCommands, DjangoRedisCache):  # type: ignore[misc]
    """The Django cache contract on Redis, plus django-redis's extras and rediskit's own."""

    def __init__(self, server: str, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        options: dict[str, Any] = params.get("OPTIONS", {})
        client_path = options.get("CLIENT_CLASS")
        client_cls = import_string(client_path) if client_path else RedisKitClient
        if not (isinstance(client_cls, type) and issubclass(client_cls, RedisKitClient)):
            raise ImproperlyConfigured(
                f"CLIENT_CLASS {client_path!r} must subclass django_rediskit RedisKitClient."
            )
        self._client_cls = client_cls
        # django-redis's own muting would swallow errors before our guard sees them.
        self._ignore_exceptions = False
        self._mute_outages: bool = bool(options.get("IGNORE_EXCEPTIONS", False))
        self._close_connection: bool = bool(options.get("CLOSE_CONNECTION", False))
        self._sliding: bool = bool(options.get("SLIDING", False))
        self._scan_count = int(options.get("SCAN_COUNT", DEFAULT_SCAN_COUNT))
        self._delete_batch = int(options.get("DELETE_BATCH_SIZE", DEFAULT_DELETE_BATCH))
        self._stampede_lock_timeout = float(
            options.get("STAMPEDE_LOCK_TIMEOUT", DEFAULT_STAMPEDE_LOCK_TIMEOUT)
        )
        clear_sessions = options.get("CLEAR_SESSIONS", False)
        if not isinstance(clear_sessions, bool):
            raise ImproperlyConfigured(
                f"CLEAR_SESSIONS must be True or False, not {clear_sessions!r}."
            )
        #: Kit namespaces that clear() empties besides the entries (see clear()).
        self._clear_namespaces: tuple[str, ...] = ("throttle", "tags") + (
            ("sessions", "users") if clear_sessions else ()
        )
        self._tag_ttl_ms = self._tag_ttl_option(options.get("TAG_TTL", tagging.DEFAULT_TAG_TTL))
        self._jitter = float(options.get("JITTER", 0.0))
        if not 0.0 <= self._jitter < 1.0:
            raise ImproperlyConfigured(f"JITTER must be >= 0 and < 1, not {self._jitter!r}.")
        self.scope = self._scope_for(server, params)
        self._topology: Topology | None = None
        self._breaker, self._stats, self._log_ignored = self._shared_state(options)

    # --- construction helpers --------------------------------------------------------------------

    @staticmethod
    def _tag_ttl_option(seconds: Any) -> int:
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds <= 0:
            raise ImproperlyConfigured(f"TAG_TTL must be a positive number, not {seconds!r}.")
        return math.ceil(seconds * 1000)

    @staticmethod
    def _scope_for(server: str, params: dict[str, Any]) -> str:
        """The CACHES alias this backend was built from (Django does not pass it in)."""
        from django.conf import settings

        for alias, conf in getattr(settings, "CACHES", {}).items():
            if (
                conf.get("LOCATION") == server
                and conf.get("OPTIONS", {}) == params.get("OPTIONS", {})
                and conf.get("KEY_PREFIX", "") == params.get("KEY_PREFIX", "")
            ):
                return str(alias)
        digest = hashlib.blake2b(repr((server, sorted(map(str, params.items())))).encode())
        return "unaliased:" + digest.hexdigest()[:16]

    def _shared_state(
        self, options: dict[str, Any]
    ) -> tuple[CircuitBreaker, CacheStats, ThrottledLog]:
        policy = alias_policy(self.scope, options)
        stats = _shared.get(self.scope)
        if stats is None:
            with _shared_lock:
                stats = _shared.setdefault(self.scope, CacheStats())
        return policy.breaker, stats, policy.log

    @property
    def topology(self) -> Topology:
        """Standalone, Sentinel or Cluster, from LOCATION: where every command goes."""
        topology = self._topology
        if topology is None:
            topology = self._topology = topology_for(
                self._server, self._params.get("OPTIONS", {}), self.scope
            )
        return topology

    @property
    def stats(self) -> CacheStats:
        """Hit / miss / error counters of this alias in this process."""
        return self._stats

    @property
    def breaker(self) -> CircuitBreaker:
        return self._breaker

    @property
    def scan_count(self) -> int:
        """COUNT of every SCAN this alias sends (``OPTIONS["SCAN_COUNT"]``)."""
        return self._scan_count

    @property
    def delete_batch_size(self) -> int:
        """Keys per UNLINK when deleting scanned keys (``OPTIONS["DELETE_BATCH_SIZE"]``)."""
        return self._delete_batch

    @property
    def outage_log(self) -> ThrottledLog:
        """The alias's rate-limited outage log, shared by every feature on this alias."""
        return self._log_ignored

    @property
    def client(self) -> RedisKitClient:
        if self._client is None:
            self._client: RedisKitClient | None = self._client_cls(self._server, self._params, self)
        return self._client

    def reverse_key(self, key: str) -> str:
        """Inverse of the default KEY_FUNCTION, correct even when KEY_PREFIX contains ':'."""
        rest: str = key[len(self.key_prefix) + 1 :] if self.key_prefix else key[1:]
        return rest.split(":", 1)[1]

    def _write(self) -> Redis:
        client: Redis = self.client.get_client(write=True)
        return client

    def _read(self) -> Redis:
        client: Redis = self.client.get_client(write=False)
        return client

    def make_and_validate_key(self, key: Any, version: int | None = None) -> str:
        # The common KEY_FUNCTION is inlined (a hot path); the identity check per call honours a
        # key_func replaced on a live backend (Django's tests and run-time key wrappers do it).
        if self.key_func is default_key_func:
            full = f"{self.key_prefix}:{self.version if version is None else version}:{key}"
        else:
            full = self.make_key(key, version=version)
        # Fast path: the common printable-ASCII key needs none of memcached's checks.
        if len(full) > 250 or not (full.isascii() and full.isprintable()) or " " in full:
            for warning in memcache_key_warnings(full):
                warnings.warn(warning, CacheKeyWarning, stacklevel=3)
        return full

    def feature_key(self, namespace: str, *parts: str) -> str:
        """A key for a kit feature (tags, sessions, throttles...): ``<prefix>:<ns>:<parts>``."""
        return ":".join((self.key_prefix, NAMESPACES[namespace], *parts))

    def timeout_ms(self, timeout: Any = DEFAULT_TIMEOUT, value: Any = None) -> int | None:
        """Milliseconds to keep a value: None keeps it forever, <= 0 means delete.

        ``timeout`` may be a callable of the value (dynamic TTL). Sub-second timeouts are kept
        (Django's own backend truncates 0.5 s to 0, which deletes the key).
        """
        if timeout is DEFAULT_TIMEOUT:
            timeout = self.default_timeout
        if callable(timeout):
            timeout = timeout(value)
        if timeout is None:
            return None
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
            raise TypeError(f"Cache timeout must be a number, None or a callable, not {timeout!r}")
        if timeout > 0:
            return max(1, math.ceil(timeout * 1000))
        return 0

    def _decoded(self, raw: Any) -> Any:
        if raw is None:
            return MISSING
        try:
            return self.client.decode(raw)
        except UndecodableValue:
            return MISSING

    # --- tags (see cache/tags.py) ----------------------------------------------------------------

    def tag_key(self, tag: str) -> str:
        """The version key of ``tag``: ``<prefix>:tv:{<escaped tag>}``."""
        return self.feature_key("tags", "{" + tagging.key_name(tag) + "}")

    def _tag_keys(self, names: Iterable[str]) -> dict[str, str]:
        return {name: self.tag_key(name) for name in names}

    def _tag_block(self, tags: Any, versions: Mapping[str, bytes] | None) -> TagBlock | None:
        """The header block for a tagged write; ensures versions (one round trip) if none given."""
        if tags is None and versions is None:
            return None  # an untagged write, the hot path
        names = tagging.normalize_tags(tags)
        if versions is None:
            if not names:
                return None
            return tagging.ensure(self._write(), self._tag_keys(names), self._tag_ttl_ms).block()
        if tags is not None and set(names) != set(versions):
            raise ValueError(
                f"tags {sorted(names)} and the captured versions {sorted(versions)} differ."
            )
        tagging.normalize_tags(list(versions))
        if any(not isinstance(v, bytes) or not v for v in versions.values()):
            raise TypeError("versions must map tag names to tokens from tag_versions().")
        captured = tagging.TagVersions(versions)
        return captured.block() if captured else None

    def _entry(self, value: Any, timeout: Any, block: TagBlock | None) -> tuple[Any, int | None]:
        """Encoded bytes and PX for one write: tagged entries never outlive ``TAG_TTL``, and
        ``JITTER`` shortens finite timeouts by a random share so keys written together do not
        all expire together."""
        ms = self.timeout_ms(timeout, value)
        if block is not None:
            data: Any = self.client.codec.encode(value, block)
            if ms is None or ms > self._tag_ttl_ms:
                ms = self._tag_ttl_ms
            if pending_tags().intersection(block.names):
                # This transaction invalidates these tags at COMMIT: storing the value would
                # leak uncommitted rows to other readers. A zero timeout deletes instead.
                ms = 0
        else:
            data = self.client.encode(value)
        if self._jitter and ms is not None and ms > 1:
            ms -= random.randint(0, int(ms * self._jitter))  # noqa: S311 (spread, not secrecy)
        return data, ms

    def _entry_of(self, raw: Any) -> tuple[Any, TagBlock | None]:
        """The value stored in ``raw`` (MISSING if absent or untrustworthy) and its tag block."""
        if raw is None:
            return MISSING, None
        if isinstance(raw, (int, str)):  # RESP3 ints, decode_responses clients
            raw = str(raw).encode()
        try:
            return self.client.codec.decode_entry(raw)
        except UndecodableValue:
            return MISSING, None

    def _checked(self, raws: list[Any], known: dict[str, bytes | None]) -> list[Any]:
        """Decode entries; a tagged one is MISSING unless its captured versions are current.

        ``known`` holds versions read in the same round trip as the entries (declared tags);
        tags an entry names beyond those are fetched in one more round trip for all entries.
        """
        entries = [self._entry_of(raw) for raw in raws]
        if not any(block for _value, block in entries):
            return [value for value, _block in entries]  # untagged: nothing more to check
        pending = pending_tags()
        if pending:
            # Inside a transaction that will invalidate these tags at COMMIT: the writer must
            # see its own writes, so entries carrying them are misses until then.
            entries = [
                (MISSING, None)
                if block is not None and pending.intersection(block.names)
                else (value, block)
                for value, block in entries
            ]
        wanted = {
            name
            for value, block in entries
            if block is not None and value is not MISSING
            for name in block.names
            if name not in known
        }
        if wanted:
            keys = self._tag_keys(sorted(wanted))
            known.update(zip(keys, tagging.mget(self._read(), list(keys.values())), strict=True))
        return [
            value if block is None or tagging.is_current(block, known) else MISSING
            for value, block in entries
        ]

    def _replace_stale(self, client: Redis, full: str, raw: Any, data: Any, ms: int | None) -> bool:
        """After a failed NX write: the key may hold an entry that reads as a miss (invalidated
        tags, undecodable); add() must then succeed, as it would had the entry been deleted."""
        if self._checked([raw], {})[0] is not MISSING:
            return False
        replace = script("tags_replace_stale")
        return bool(replace(keys=[full], args=[raw, data, ms or 0], client=client))

    @guarded()
    def tag_versions(self, *tags: str) -> tagging.TagVersions | None:
        """Capture the current version of each tag (creating missing ones) before computing a
        value; store it with ``set(key, value, versions=captured)``. If a tag is invalidated in
        between, the stored entry is a miss for every later read. One round trip."""
        names = tagging.normalize_tags(tags)
        return tagging.ensure(self._write(), self._tag_keys(names), self._tag_ttl_ms)

    @guarded(miss=0)
    def invalidate_tags(self, *tags: str) -> int:
        """Make every entry carrying any of ``tags`` a miss: one pipeline of UNLINKs, O(tags),
        whatever the number of entries. Returns how many version keys existed.

        Outages are retried briefly (3 tries within ~100 ms); a final failure is logged with
        the tags, because a lost invalidation is stale data until the entries' TTL.
        """
        keys = list(self._tag_keys(tagging.normalize_tags(tags)).values())
        for attempt in range(3):
            try:
                return tagging.invalidate(self._write(), keys)
            except OUTAGE_ERRORS:
                if attempt == 2:
                    logger.error("Tag invalidation failed; stale until TTL: %s", sorted(tags))
                    raise
                time.sleep(0.02 * (attempt + 1))
        raise AssertionError("unreachable")  # pragma: no cover

    async def atag_versions(self, *tags: str) -> tagging.TagVersions | None:
        return await sync_to_async(self.tag_versions, thread_sensitive=False)(*tags)

    async def ainvalidate_tags(self, *tags: str) -> int:
        return await sync_to_async(self.invalidate_tags, thread_sensitive=False)(*tags)

    # --- the Django contract ---------------------------------------------------------------------

    @guarded(miss=False)
    def add(
        self,
        key: Any,
        value: Any,
        timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
        client: Redis | None = None,
        tags: Iterable[str] | None = None,
        versions: Mapping[str, bytes] | None = None,
    ) -> bool:
        full = self.make_and_validate_key(key, version)
        data, ms = self._entry(value, timeout, self._tag_block(tags, versions))
        client = client or self._write()
        if ms is not None and ms <= 0:
            return not client.exists(full)
        try:
            # NX GET (Redis 7) answers "was there a value, and which" in the same round trip.
            previous = client.set(full, data, nx=True, get=True, px=ms)
        except ResponseError as exc:
            if "WRONGTYPE" in str(exc):  # a hash or list lives there: it exists
                return False
            raise
        return previous is None or self._replace_stale(client, full, previous, data, ms)

    @guarded(miss=lambda arguments: arguments["default"])
    def get(
        self,
        key: Any,
        default: Any = None,
        version: int | None = None,
        client: Redis | None = None,
        *,
        refresh_ttl: Any = None,
        tags: Iterable[str] | None = None,
    ) -> Any:
        """The value, or ``default``; ``refresh_ttl`` (or ``SLIDING``) extends it (GETEX).

        ``tags`` declares the tags the entry is expected to carry, so their versions are read
        in the same round trip; without it a tagged entry costs one more round trip.
        """
        full = self.make_and_validate_key(key, version)
        if not tags and refresh_ttl is None and not self._sliding:
            # The common case: one GET, and tag checks only if the entry turns out tagged.
            raw = (client or self._read()).get(full)
            value, block = self._entry_of(raw)
            if block is not None:
                value = self._checked([raw], {})[0]
            if value is MISSING:
                self._stats.misses += 1
                return default
            self._stats.hits += 1
            return value
        declared = self._tag_keys(tagging.normalize_tags(tags)) if tags else {}
        current: list[Any] = []
        if refresh_ttl is None and not self._sliding:
            reader = client or self._read()
            if declared:
                raw, *current = tagging.mget(reader, [full, *declared.values()])
            else:
                raw = reader.get(full)
        else:
            ms = self.timeout_ms(refresh_ttl if refresh_ttl is not None else DEFAULT_TIMEOUT)
            pipe = (client or self._write()).pipeline(transaction=False)
            if ms is None:
                pipe.getex(full, persist=True)
            else:
                pipe.getex(full, px=ms)
            for tag_key in declared.values():
                pipe.get(tag_key)
            raw, *current = pipe.execute()
        value = self._checked([raw], dict(zip(declared, current, strict=True)))[0]
        if value is MISSING:
            self._stats.misses += 1
            return default
        self._stats.hits += 1
        return value

    @guarded(miss=False)
    def set(
        self,
        key: Any,
        value: Any,
        timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
        client: Redis | None = None,
        nx: bool = False,
        xx: bool = False,
        tags: Iterable[str] | None = None,
        versions: Mapping[str, bytes] | None = None,
    ) -> bool:
        """Store ``value``; returns whether it was written (``nx``/``xx`` as in django-redis).

        ``tags`` makes the entry a miss once any of them is invalidated. Pass ``versions``
        captured with :meth:`tag_versions` *before* computing the value, so an invalidation
        during the computation is not lost (a blind tagged set reads versions now).
        """
        full = self.make_and_validate_key(key, version)
        data, ms = self._entry(value, timeout, self._tag_block(tags, versions))
        target = client if client is not None else self._write()
        if ms is not None and ms <= 0:
            if nx:
                return not target.exists(full)
            return bool(target.unlink(full))
        return bool(target.set(full, data, px=ms, nx=nx, xx=xx))

    @guarded(miss=False)
    def touch(self, key: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> bool:
        full = self.make_and_validate_key(key, version)
        ms = self.timeout_ms(timeout)
        client = self._write()
        if ms is None:
            # PERSIST answers 0 for a key that exists without a TTL: ask EXISTS in the same trip.
            pipe = client.pipeline(transaction=False)
            pipe.persist(full)
            pipe.exists(full)
            return bool(pipe.execute()[1])
        return bool(client.pexpire(full, max(ms, 0)))

    @guarded(miss=False)
    def delete(
        self,
        key: Any,
        version: int | None = None,
        prefix: str | None = None,
        client: Redis | None = None,
    ) -> bool:
        if prefix is not None:
            full = self.client.make_key(key, version=version, prefix=prefix)
        else:
            full = self.make_and_validate_key(key, version)
        return bool((client or self._write()).unlink(full))

    @guarded(miss=no_mapping)
    def get_many(
        self,
        keys: Iterable[Any],
        version: int | None = None,
        client: Redis | None = None,
        tags: Iterable[str] | None = None,
    ) -> dict[Any, Any]:
        by_full = {self.make_and_validate_key(key, version): key for key in keys}
        if not by_full:
            return {}
        found: dict[Any, Any] = {}
        declared = self._tag_keys(tagging.normalize_tags(tags)) if tags else {}
        wanted = [*by_full, *declared.values()]
        raws = tagging.mget(client, wanted) if client else self.topology.mget(wanted)
        known = dict(zip(declared, raws[len(by_full) :], strict=True))
        for full, value in zip(by_full, self._checked(raws[: len(by_full)], known), strict=True):
            if value is not MISSING:
                found[by_full[full]] = value
        self._stats.hits += len(found)
        self._stats.misses += len(by_full) - len(found)
        return found

    @guarded(miss=_failed_keys)
    def set_many(
        self,
        data: Mapping[Any, Any],
        timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
        client: Redis | None = None,
        tags: Iterable[str] | None = None,
        versions: Mapping[str, bytes] | None = None,
    ) -> list[Any]:
        """Store every pair in one pipeline; returns the keys that failed (always [] or raises).

        ``tags``/``versions`` apply to every entry, as in :meth:`set`.
        """
        block = self._tag_block(tags, versions) if data else None
        # Encode everything first: a value that cannot be serialized writes nothing at all.
        items = [
            (self.make_and_validate_key(key, version), *self._entry(value, timeout, block))
            for key, value in data.items()
        ]
        if not items:
            return []
        pipe = (client or self._write()).pipeline(transaction=False)
        for full, encoded, ms in items:
            if ms is not None and ms <= 0:
                pipe.unlink(full)
            else:
                pipe.set(full, encoded, px=ms)
        pipe.execute()
        return []

    @guarded()
    def delete_many(
        self, keys: Iterable[Any], version: int | None = None, client: Redis | None = None
    ) -> None:
        fulls = [self.make_and_validate_key(key, version) for key in keys]
        if fulls:
            if client is not None:
                client.unlink(*fulls)
            else:
                self.topology.unlink(fulls)

    @guarded(miss=False)
    def has_key(self, key: Any, version: int | None = None, client: Redis | None = None) -> bool:
        """Whether ``get`` would find the key: one round trip, two for a tagged entry (whose
        tags may have been invalidated while the key still exists)."""
        full = self.make_and_validate_key(key, version)
        client = client or self._read()
        try:
            head = client.getrange(full, 0, 0)
        except ResponseError as exc:
            if "WRONGTYPE" in str(exc):  # a hash or list: it exists
                return True
            raise
        if isinstance(head, str):  # decode_responses clients
            head = head.encode()
        if not head or not head[0] & MARKER or not head[0] & EXTENSION:
            return bool(head)
        return self._checked([client.get(full)], {})[0] is not MISSING

    @guarded()
    def incr(
        self,
        key: Any,
        delta: int = 1,
        version: int | None = None,
        client: Redis | None = None,
        ignore_key_check: bool = False,
    ) -> int:
        """Atomically add ``delta`` (one Lua call); the key keeps its TTL.

        Raises ValueError for a missing key (Django's contract) unless ``ignore_key_check``, and
        TypeError for a value Redis cannot increment (not an integer, or past 64 bits).
        """
        full = self.make_and_validate_key(key, version)
        if isinstance(delta, bool) or not isinstance(delta, int):
            raise TypeError(f"incr() delta must be an int, not {delta!r}")
        target = client if client is not None else self._write()
        result = script("incr")(keys=[full], args=[delta, int(ignore_key_check)], client=target)
        if result == b"missing":
            raise ValueError(f"Key {key!r} not found")
        if result == b"notint":
            raise TypeError(
                f"Cache value at {key!r} is not an integer Redis can increment"
                " (tagged entries never are)."
            )
        return int(result)

    @guarded()
    def decr(
        self,
        key: Any,
        delta: int = 1,
        version: int | None = None,
        client: Redis | None = None,
        ignore_key_check: bool = False,
    ) -> int:
        return self.incr(key, -delta, version, client, ignore_key_check)

    @guarded()
    def incr_version(self, key: Any, delta: int = 1, version: int | None = None) -> int:
        """Move the value to version+delta, keeping its remaining TTL.

        Two round trips (read value and PTTL, then write and unlink), never a cross-slot script,
        so it works unchanged on Redis Cluster. The stored bytes are copied, not re-encoded.
        """
        if version is None:
            version = self.version
        old = self.make_and_validate_key(key, version)
        new = self.make_and_validate_key(key, version + delta)
        client = self._write()
        pipe = client.pipeline(transaction=False)
        pipe.get(old)
        pipe.pttl(old)
        raw, pttl = pipe.execute()
        if raw is None:
            raise ValueError(f"Key {key!r} not found")
        pipe = client.pipeline(transaction=False)
        pipe.set(new, raw, px=pttl if pttl > 0 else None)
        pipe.unlink(old)
        pipe.execute()
        return version + delta

    @guarded()
    def decr_version(self, key: Any, delta: int = 1, version: int | None = None) -> int:
        return self.incr_version(key, -delta, version)

    @guarded(miss=_computed_default)
    def get_or_set(
        self,
        key: Any,
        default: Any,
        timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
        tags: Iterable[str] | None = None,
    ) -> Any:
        """Stampede-safe: for a callable ``default`` only one caller per key computes it.

        Others poll briefly for the value; if the computer dies, the lock's TTL
        (``STAMPEDE_LOCK_TIMEOUT``) frees the key and a waiter takes over. A waiter that has
        waited a whole lock timeout computes the value itself rather than fail. With ``tags``,
        their versions are captured before ``default()`` runs (no stale re-cache).
        """
        tags = tagging.normalize_tags(tags)
        value = self.get(key, MISSING, version, tags=tags)
        if value is not MISSING:
            return value
        if not callable(default):
            self.add(key, default, timeout, version, tags=tags)
            return self.get(key, default, version, tags=tags)
        full = self.make_and_validate_key(key, version)
        lock_key = self.feature_key("lock", full)
        token = uuid.uuid4().hex.encode()
        deadline = time.monotonic() + self._stampede_lock_timeout
        pause = 0.002
        while True:
            acquired, value = self._lock_or_read(full, lock_key, token, tags)
            if value is not MISSING:
                if acquired:  # someone stored it between our miss and now
                    script("lock_release")(keys=[lock_key], args=[token], client=self._write())
                return value
            if acquired:
                try:
                    return self._compute_and_store(
                        key, default, timeout, version, tags, release=(lock_key, token)
                    )
                except BaseException:
                    # The producer's error is what the caller must see; if Redis is gone too,
                    # the lock simply expires after STAMPEDE_LOCK_TIMEOUT.
                    with contextlib.suppress(*OUTAGE_ERRORS):
                        script("lock_release")(keys=[lock_key], args=[token], client=self._write())
                    raise
            time.sleep(pause)
            pause = min(pause * 2, 0.05)
            value = self.get(key, MISSING, version, tags=tags)
            if value is not MISSING:
                return value
            if time.monotonic() > deadline:
                return self._compute_and_store(key, default, timeout, version, tags, nx=True)

    def _lock_or_read(
        self, full: str, lock_key: str, token: bytes, tags: tuple[str, ...]
    ) -> tuple[bool, Any]:
        """One round trip: try to take the stampede lock and read the entry again, so a value
        stored since our miss is found without a second trip."""
        declared = self._tag_keys(tags) if tags else {}
        pipe = self._write().pipeline(transaction=False)
        pipe.set(lock_key, token, nx=True, px=max(1, int(self._stampede_lock_timeout * 1000)))
        pipe.get(full)
        for tag_key in declared.values():
            pipe.get(tag_key)
        acquired, raw, *current = pipe.execute()
        return bool(acquired), self._checked([raw], dict(zip(declared, current, strict=True)))[0]

    def _compute_and_store(
        self,
        key: Any,
        default: Any,
        timeout: Any,
        version: int | None,
        tags: tuple[str, ...],
        nx: bool = False,
        release: tuple[str, bytes] | None = None,
    ) -> Any:
        """Run ``default()`` and store its result with tag versions captured *before* it ran;
        if they cannot be captured (Redis down, muted) the result is returned but not stored.

        ``release`` (lock key, token): the stampede lock is released in the same round trip as
        the write.
        """
        captured = self.tag_versions(*tags) if tags else None
        value = default()
        if tags and captured is None:
            return value
        if release is not None:
            self._store_and_release(key, value, timeout, version, tags, captured, release)
            return value
        store = self.add if nx else self.set
        store(key, value, timeout, version, tags=tags or None, versions=captured)
        return value

    @guarded()
    def _store_and_release(
        self,
        key: Any,
        value: Any,
        timeout: Any,
        version: int | None,
        tags: tuple[str, ...],
        captured: tagging.TagVersions | None,
        release: tuple[str, bytes],
    ) -> None:
        lock_key, token = release

        def build(pipe: Pipeline) -> None:
            self.set(
                key, value, timeout, version, client=pipe, tags=tags or None, versions=captured
            )
            script("lock_release").queue(pipe, [lock_key], [token])

        run_pipeline(self._write(), build)

    def stampede_lock(self, key: Any, version: int | None = None) -> Lock:
        full = self.make_and_validate_key(key, version)
        lock: Lock = self._write().lock(
            self.feature_key("lock", full),
            timeout=self._stampede_lock_timeout,
            thread_local=False,
        )
        return lock

    @guarded()
    def clear(self) -> None:
        """Delete this cache's entries only (never FLUSHDB): SCAN the prefix, UNLINK in batches.

        Entries are ``<prefix>:<version>:<key>``; the version is numeric, which keeps the keys of
        other prefixes out. Throttle state and tag versions are cache data and go too (DRF's
        contract: test suites reset throttles with ``cache.clear()``); sessions and their user
        index go only with ``OPTIONS["CLEAR_SESSIONS"] = True`` (a cache flush should not log
        everyone out); queues and locks are never touched.
        """
        self._unlink_matching(self.key_func("*", glob_escape(self.key_prefix), "[0-9-]*"))
        for namespace in self._clear_namespaces:
            self._unlink_matching(glob_escape(self.feature_key(namespace, "")) + "*")

    def close(self, **kwargs: Any) -> None:
        """Pools live for the process; disconnect only with ``CLOSE_CONNECTION`` (django-redis).

        Not under the failure policy: Django calls it at the end of every request, it sends
        nothing to Redis, and an open circuit breaker must not turn that into an error.
        """
        if self._close_connection and self._client is not None:
            self.client.close()

    # --- django-redis extras, mended -------------------------------------------------------------

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
        count = itersize or self._scan_count
        if client is not None:
            scan = client.scan_iter(match=pattern, count=count)
            unlink: Any = lambda keys: client.unlink(*keys)  # noqa: E731
        else:
            scan = self.topology.scan_iter(pattern, count, write=True)
            unlink = self.topology.unlink
        deleted = 0
        batch: list[bytes] = []
        for full in scan:
            batch.append(full)
            if len(batch) >= self._delete_batch:
                deleted += unlink(batch)
                batch.clear()
        if batch:
            deleted += unlink(batch)
        return deleted

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
        count = itersize or self._scan_count
        scan = (
            client.scan_iter(match=pattern, count=count)
            if client is not None
            else self.topology.scan_iter(pattern, count)
        )
        for full in scan:
            yield self.client.reverse_key(full.decode() if isinstance(full, bytes) else full)

    @guarded(miss=no_items)
    def keys(
        self, search: str, version: int | None = None, client: Redis | None = None
    ) -> list[str]:
        """Every matching key, gathered with SCAN: safe on a big database, O(matches) memory."""
        return list(self.iter_keys(search, client=client, version=version))

    @guarded(miss=0)
    def ttl(self, key: Any, version: int | None = None, client: Redis | None = None) -> int | None:
        """Seconds left (rounded up): None if persistent, 0 if missing. One round trip."""
        pttl = self.pttl(key, version, client)
        return pttl if not pttl else math.ceil(pttl / 1000)

    @guarded(miss=0)
    def pttl(self, key: Any, version: int | None = None, client: Redis | None = None) -> int | None:
        """Milliseconds left: None if persistent, 0 if missing. One round trip."""
        result = int((client or self._read()).pttl(self.make_and_validate_key(key, version)))
        if result == -1:
            return None
        return max(result, 0)

    # --- async twins (Django 5.2's defaults loop per key; these reuse the bulk commands) ---------

    async def aadd(
        self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
    ) -> bool:
        return await sync_to_async(self.add, thread_sensitive=False)(key, value, timeout, version)

    async def aget(
        self,
        key: Any,
        default: Any = None,
        version: int | None = None,
        *,
        tags: Iterable[str] | None = None,
    ) -> Any:
        return await sync_to_async(self.get, thread_sensitive=False)(
            key, default, version, tags=tags
        )

    async def aset(
        self,
        key: Any,
        value: Any,
        timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
        *,
        tags: Iterable[str] | None = None,
        versions: Mapping[str, bytes] | None = None,
    ) -> bool:
        return await sync_to_async(self.set, thread_sensitive=False)(
            key, value, timeout, version, tags=tags, versions=versions
        )

    async def atouch(
        self, key: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
    ) -> bool:
        return await sync_to_async(self.touch, thread_sensitive=False)(key, timeout, version)

    async def adelete(self, key: Any, version: int | None = None) -> bool:
        return await sync_to_async(self.delete, thread_sensitive=False)(key, version)

    async def aget_many(self, keys: Iterable[Any], version: int | None = None) -> dict[Any, Any]:
        return await sync_to_async(self.get_many, thread_sensitive=False)(keys, version)

    async def aset_many(
        self, data: Mapping[Any, Any], timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
    ) -> list[Any]:
        return await sync_to_async(self.set_many, thread_sensitive=False)(data, timeout, version)

    async def adelete_many(self, keys: Iterable[Any], version: int | None = None) -> None:
        await sync_to_async(self.delete_many, thread_sensitive=False)(keys, version)

    async def ahas_key(self, key: Any, version: int | None = None) -> bool:
        return await sync_to_async(self.has_key, thread_sensitive=False)(key, version)

    async def aincr(self, key: Any, delta: int = 1, version: int | None = None) -> int:
        return await sync_to_async(self.incr, thread_sensitive=False)(key, delta, version)

    async def adecr(self, key: Any, delta: int = 1, version: int | None = None) -> int:
        return await sync_to_async(self.decr, thread_sensitive=False)(key, delta, version)

    async def aincr_version(self, key: Any, delta: int = 1, version: int | None = None) -> int:
        return await sync_to_async(self.incr_version, thread_sensitive=False)(key, delta, version)

    async def adecr_version(self, key: Any, delta: int = 1, version: int | None = None) -> int:
        return await sync_to_async(self.decr_version, thread_sensitive=False)(key, delta, version)

    async def aget_or_set(
        self,
        key: Any,
        default: Any,
        timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
        *,
        tags: Iterable[str] | None = None,
    ) -> Any:
        return await sync_to_async(self.get_or_set, thread_sensitive=False)(
            key, default, timeout, version, tags=tags
        )

    async def aclear(self) -> None:
        await sync_to_async(self.clear, thread_sensitive=False)()

    async def aclose(self, **kwargs: Any) -> None:
        await sync_to_async(self.close, thread_sensitive=False)()


def _guard_inherited() -> None:
    """Put every django-redis method we do not redefine (sets, sorted sets, hset, lock,
    expire...) under the same exception policy, so no public method escapes it."""
    for name, attr in vars(DjangoRedisCache).items():
        if name.startswith("_") or name in RedisCache.__dict__:
            continue
        if callable(attr) and not is_guarded(attr) and not isinstance(attr, type):
            setattr(RedisCache, name, guarded()(attr))


_guard_inherited()
