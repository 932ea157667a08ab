"""``django_rediskit.cache.RedisCache``: django-redis's API, Django's contract, and the mends.

The backend is the facade that owns Django's meaning (keys, versions, timeouts, return values);
the client owns connections and the codec. Hot paths talk to redis-py directly so the layering
costs nothing measurable next to a round trip.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar

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

from django_rediskit.cache import stampede
from django_rediskit.cache import tags as tagging
from django_rediskit.cache.aio import AsyncTwins
from django_rediskit.cache.base import MISSING, no_mapping
from django_rediskit.cache.client import CacheClient
from django_rediskit.cache.clients import RedisKitClient
from django_rediskit.cache.codec import UndecodableValue
from django_rediskit.cache.expiry import KeyCommands
from django_rediskit.cache.keyspace import KeyspaceCommands
from django_rediskit.cache.local import NOT_HELD, LocalCache
from django_rediskit.cache.local.registry import local_cache_for
from django_rediskit.cache.options import parsed_options
from django_rediskit.cache.sets import SetCommands
from django_rediskit.cache.sorted_sets import SortedSetCommands
from django_rediskit.cache.stats import CacheStats
from django_rediskit.cache.steps import Op, T, run
from django_rediskit.cache.structures import HashAndListCommands
from django_rediskit.conf import NAMESPACES
from django_rediskit.connection.policy import (
    CircuitBreaker,
    ThrottledLog,
    alias_policy,
    guarded,
)
from django_rediskit.connection.topology import Topology, topology_for
from django_rediskit.patterns import glob_escape

logger = logging.getLogger("django_rediskit.cache")

#: One stats object per cache scope (alias), shared by the per-thread backend instances Django
#: creates; the breaker and the outage log are the alias's (``connection.policy``).
_shared: dict[str, CacheStats] = {}
_shared_lock = threading.Lock()


def _failed_keys(arguments: dict[str, Any]) -> list[Any]:
    return list(arguments["data"])


def _computed_default(arguments: dict[str, Any]) -> Any:
    default = arguments["default"]
    return default() if callable(default) else default


class RedisCache(
    AsyncTwins,
    KeyspaceCommands,
    HashAndListCommands,
    SetCommands,
    SortedSetCommands,
    KeyCommands,
    DjangoRedisCache,  # type: ignore[misc]
):
    """The Django cache contract on Redis, plus django-redis's extras and rediskit's own."""

    #: How ``connection.uses_rediskit`` knows this class and its subclasses without importing
    #: the cache (the connection layer is below it).
    rediskit_backend: ClassVar[bool] = True

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
        self.options = parsed_options.get(options)
        #: What the failure policy (``connection.policy.guarded``) reads on every call.
        self.mute_outages = self.options.mute_outages
        self.scope = self._scope_for(server, params)
        self._topology: Topology | None = None
        self._commands: CacheClient | None = None
        self.breaker, self.stats, self.outage_log = self._shared_state(options)

    # --- construction helpers --------------------------------------------------------------------

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
    def scan_count(self) -> int:
        """COUNT of every SCAN this alias sends (``OPTIONS["SCAN_COUNT"]``)."""
        return self.options.scan_count

    @property
    def delete_batch_size(self) -> int:
        """Keys per UNLINK when deleting scanned keys (``OPTIONS["DELETE_BATCH_SIZE"]``)."""
        return self.options.delete_batch_size

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

    # --- the command layer (cache/client.py) ---------------------------------------------------

    @property
    def commands(self) -> CacheClient:
        """Every contract command as steps; the facade drives them on the topology."""
        commands = self._commands
        if commands is None:
            commands = self._commands = CacheClient(
                self.client, self.options, self.tag_key, self.stats, self.local_cache
            )
        return commands

    @property
    def local_cache(self) -> LocalCache | None:
        """The process's local cache of this alias (``OPTIONS["LOCAL_CACHE"]``), or None.

        It tracks entries of the current version and tag versions (``<prefix>:<version>:`` and
        ``<prefix>:tv:``), never throttles, sessions or locks; ``KEYS`` globs name cache keys.
        """
        arguments = self.options.local_cache
        if arguments is None:
            return None
        entries = self.make_key("", version=self.version)
        tags = self.feature_key("tags", "")
        globs = [self.make_pattern(glob) for glob in arguments["keys"]]
        return local_cache_for(
            self.scope,
            self.topology,
            [entries, tags],
            {**arguments, "keys": (*globs, glob_escape(tags) + "*")},
        )

    def _run(self, op: Op[T], client: Any = None) -> T:
        return run(op, self._topology or self.topology, client)

    def _checked(self, raws: list[Any], known: dict[str, bytes | None]) -> list[Any]:
        """Decode entries, tagged ones checked against their tags' current versions."""
        return self._run(self.commands.checked(raws, known))

    # --- tags (see cache/tags.py) ----------------------------------------------------------------

    def tag_key(self, tag: str) -> str:
        """The version key of ``tag``: ``<prefix>:tv:{<escaped tag>}``."""
        return self.feature_key("tags", "{" + tagging.key_name(tag) + "}")

    @guarded()
    def tag_versions(self, *tags: str) -> tagging.TagVersions | None:
        """Capture the current version of each tag (creating missing ones) before computing a
        value; store it with ``set(key, value, versions=captured)``. If a tag is invalidated in
        between, the stored entry is a miss for every later read. One round trip."""
        return self._run(self.commands.tag_versions(tags))

    @guarded(miss=0)
    def invalidate_tags(self, *tags: str) -> int:
        """Make every entry carrying any of ``tags`` a miss: one pipeline of UNLINKs, O(tags),
        whatever the number of entries. Returns how many version keys existed."""
        return self._run(self.commands.invalidate_tags(tags))

    # --- the Django contract: make the key and the timeout, count, delegate ----------------------

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
        ms = self.timeout_ms(timeout, value)
        return self._run(self.commands.add(full, value, ms, tags, versions), client)

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
        commands = self._commands or self.commands
        refresh = (
            False
            if refresh_ttl is None and not self.options.sliding
            else self._refresh_ms(refresh_ttl)
        )
        if self.options.local_cache is not None and not tags and refresh is False:
            held = commands.held(full)
            if held is not NOT_HELD:
                return default if held is MISSING else held
        op = commands.get(full, tags, refresh)
        value = run(op, self._topology or self.topology, client)
        return default if value is MISSING else value

    def _refresh_ms(self, refresh_ttl: Any) -> int | bool | None:
        """GETEX's new timeout for a read (``refresh_ttl`` or ``SLIDING``); False: no refresh."""
        if refresh_ttl is None and not self.options.sliding:
            return False
        return self.timeout_ms(DEFAULT_TIMEOUT if refresh_ttl is None else refresh_ttl)

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
        ms = self.timeout_ms(timeout, value)
        op = (self._commands or self.commands).set(full, value, ms, nx, xx, tags, versions)
        return run(op, self._topology or self.topology, client)  # _run, inlined: a hot path

    @guarded(miss=False)
    def touch(self, key: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> bool:
        full = self.make_and_validate_key(key, version)
        return self._run(self.commands.touch(full, self.timeout_ms(timeout)))

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
        op = (self._commands or self.commands).delete(full)
        return run(op, self._topology or self.topology, client)  # _run, inlined: a hot path

    @guarded(miss=no_mapping)
    def get_many(
        self,
        keys: Iterable[Any],
        version: int | None = None,
        client: Redis | None = None,
        tags: Iterable[str] | None = None,
    ) -> dict[Any, Any]:
        by_full = self._by_full_key(keys, version)
        if not by_full:
            return {}
        return self._found(by_full, self._run(self.commands.get_many(list(by_full), tags), client))

    def _by_full_key(self, keys: Iterable[Any], version: int | None) -> dict[str, Any]:
        return {self.make_and_validate_key(key, version): key for key in keys}

    @staticmethod
    def _found(by_full: dict[str, Any], values: list[Any]) -> dict[Any, Any]:
        """``get_many``'s answer: the caller's keys of the values found."""
        return {
            by_full[full]: value
            for full, value in zip(by_full, values, strict=True)
            if value is not MISSING
        }

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
        self._run(
            self.commands.set_many(self._items(data, timeout, version), tags, versions), client
        )
        return []

    def _items(
        self, data: Mapping[Any, Any], timeout: Any, version: int | None
    ) -> list[tuple[str, Any, int | None]]:
        """(full key, value, ms) of each pair to write; every key is checked before any I/O."""
        return [
            (self.make_and_validate_key(key, version), value, self.timeout_ms(timeout, value))
            for key, value in data.items()
        ]

    @guarded()
    def delete_many(
        self, keys: Iterable[Any], version: int | None = None, client: Redis | None = None
    ) -> None:
        fulls = [self.make_and_validate_key(key, version) for key in keys]
        self._run(self.commands.delete_many(fulls), client)

    @guarded(miss=False)
    def has_key(self, key: Any, version: int | None = None, client: Redis | None = None) -> bool:
        """Whether ``get`` would find the key: one round trip, two for a tagged entry (whose
        tags may have been invalidated while the key still exists)."""
        return self._run(self.commands.has_key(self.make_and_validate_key(key, version)), client)

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
        self._check_delta(delta)
        result = self._run(self.commands.incr(full, delta, ignore_key_check), client)
        return self._incremented(key, result)

    @staticmethod
    def _check_delta(delta: Any) -> None:
        if isinstance(delta, bool) or not isinstance(delta, int):
            raise TypeError(f"incr() delta must be an int, not {delta!r}")

    @staticmethod
    def _incremented(key: Any, result: int | bytes) -> int:
        """The new value, or Django's errors for a missing key / a value Redis cannot add to."""
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
        old, new, moved_to = self._version_keys(key, delta, version)
        if not self._run(self.commands.move(old, new)):
            raise ValueError(f"Key {key!r} not found")
        return moved_to

    def _version_keys(self, key: Any, delta: int, version: int | None) -> tuple[str, str, int]:
        """The entry's key now, its key after the version change, and the new version."""
        version = self.version if version is None else version
        old = self.make_and_validate_key(key, version)
        return old, self.make_and_validate_key(key, version + delta), version + delta

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

        Others poll briefly for the value (see :mod:`~django_rediskit.cache.stampede`). With
        ``tags``, their versions are captured before ``default()`` runs (no stale re-cache).
        """
        return self._run(self._stampede(key, default, timeout, version, tags))

    @guarded(miss=lambda arguments: arguments["default"]())
    def compute_and_store(
        self,
        key: Any,
        default: Callable[[], Any],
        timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
        tags: Iterable[str] | None = None,
    ) -> Any:
        """Compute ``default()`` now and store it, tag versions captured before it ran (what
        ``@cached``'s refresh does). Returns the value, stored or not (muted outage)."""
        return self._run(self._refresh(key, default, timeout, version, tags))

    def _stampede(
        self, key: Any, default: Any, timeout: Any, version: int | None, tags: Any
    ) -> Op[Any]:
        """The ``get_or_set`` command for these arguments (sync and async drive the same)."""
        full = self.make_and_validate_key(key, version)
        return stampede.get_or_set(
            self.commands,
            full,
            stampede.lock_key(self, full),
            default,
            lambda value: self.timeout_ms(timeout, value),
            tagging.normalize_tags(tags),
        )

    def _refresh(
        self, key: Any, default: Callable[[], Any], timeout: Any, version: int | None, tags: Any
    ) -> Op[Any]:
        """The ``compute_and_store`` command for these arguments."""
        return stampede.compute_and_store(
            self.commands,
            self.make_and_validate_key(key, version),
            default,
            lambda value: self.timeout_ms(timeout, value),
            tagging.normalize_tags(tags),
        )

    def stampede_lock(self, key: Any, version: int | None = None) -> stampede.StampedeLock:
        """The entry's stampede lock, the one ``get_or_set`` takes (try it, never wait)."""
        return stampede.StampedeLock(self, self.make_and_validate_key(key, version))

    @guarded()
    def clear(self) -> None:
        """Delete this cache's entries only (never FLUSHDB): SCAN the prefix, UNLINK in batches.

        Entries are ``<prefix>:<version>:<key>``; the version is numeric, which keeps the keys of
        other prefixes out. Throttle state and tag versions are cache data and go too (DRF's
        contract: test suites reset throttles with ``cache.clear()``); sessions and their user
        index go only with ``OPTIONS["CLEAR_SESSIONS"] = True`` (a cache flush should not log
        everyone out); queues and locks are never touched.
        """
        for pattern in self._clear_patterns():
            self._unlink_matching(pattern)

    def _clear_patterns(self) -> list[str]:
        """The globs ``clear()`` deletes: entries ``<prefix>:<version>:*``, then each namespace
        it empties (one SCAN each: a pattern of alternatives would be one SCAN, but Redis
        globs cannot say "``tv`` or ``rl``" without also matching other namespaces)."""
        return [
            self.key_func("*", glob_escape(self.key_prefix), "[0-9-]*"),
            *(
                glob_escape(self.feature_key(namespace, "")) + "*"
                for namespace in self.options.clear_namespaces
            ),
        ]

    def close(self, **kwargs: Any) -> None:
        """Pools live for the process; disconnect only with ``CLOSE_CONNECTION`` (django-redis).

        Not under the failure policy: Django calls it at the end of every request, it sends
        nothing to Redis, and an open circuit breaker must not turn that into an error.
        """
        if self.options.close_connection and self._client is not None:
            self.client.close()
