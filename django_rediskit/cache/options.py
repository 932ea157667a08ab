"""A cache alias's ``OPTIONS``, validated once into a typed, frozen object.

The backend reads these on every call, so they are parsed when the backend is built (Django
builds one per thread and per task) rather than looked up in a dict each time; the system checks
reuse the same parser, so a bad option is reported by ``manage.py check`` with the very message
the backend would raise.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, Final, Generic, TypeVar

from django.core.exceptions import ImproperlyConfigured

from django_rediskit.cache import tags as tagging

T = TypeVar("T")

DEFAULT_SCAN_COUNT = 1000
DEFAULT_DELETE_BATCH = 500
DEFAULT_STAMPEDE_LOCK_TIMEOUT = 10.0

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
        "LOCAL_CACHE",
        # topologies (connection/topology.py)
        "READ_FROM_REPLICAS",
        "ASYNC_MAX_CONNECTIONS",
        "ASYNC_MULTIPLEX",
        "RETRY",
        "SENTINEL_KWARGS",
    }
)


def _flag(options: dict[str, Any], name: str, default: bool = False) -> bool:
    value = options.get(name, default)
    if not isinstance(value, bool):
        raise ImproperlyConfigured(f"{name} must be True or False, not {value!r}.")
    return value


def _positive_int(options: dict[str, Any], name: str, default: int) -> int:
    value = options.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ImproperlyConfigured(f"{name} must be a positive integer, not {value!r}.")
    return value


def _positive_seconds(options: dict[str, Any], name: str, default: float) -> float:
    value = options.get(name, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ImproperlyConfigured(f"{name} must be a positive number, not {value!r}.")
    return float(value)


@dataclass(frozen=True, slots=True)
class CacheOptions:
    """What the backend itself acts on; the codec's and the topology's options are parsed by
    :func:`~django_rediskit.cache.clients.build_codec` and :mod:`django_rediskit.connection`."""

    #: Fail open: outages answer the method's miss value (django-redis's IGNORE_EXCEPTIONS).
    mute_outages: bool
    #: Disconnect in ``close()`` (django-redis's CLOSE_CONNECTION); pools live otherwise.
    close_connection: bool
    #: Every read restarts the entry's timeout.
    sliding: bool
    scan_count: int
    delete_batch_size: int
    stampede_lock_ms: int
    #: Tagged entries never outlive this (their version keys live this long).
    tag_ttl_ms: int
    #: Share of a finite timeout that is randomly cut off, so keys written together spread out.
    jitter: float
    #: Kit namespaces that ``clear()`` empties besides the entries (see ``RedisCache.clear``).
    clear_namespaces: tuple[str, ...]
    #: ``LOCAL_CACHE``: keyword arguments of :class:`~django_rediskit.cache.local.LocalCache`
    #: (``max_entries``, ``max_bytes``, ``ttl``, ``keys``: cache-key globs), or None when off.
    local_cache: dict[str, Any] | None = None

    @classmethod
    def parse(cls, options: dict[str, Any]) -> CacheOptions:
        """Validate ``OPTIONS``; raises ImproperlyConfigured naming the option at fault."""
        jitter = options.get("JITTER", 0.0)
        if (
            isinstance(jitter, bool)
            or not isinstance(jitter, (int, float))
            or not (0.0 <= jitter < 1.0)
        ):
            raise ImproperlyConfigured(f"JITTER must be >= 0 and < 1, not {jitter!r}.")
        tag_ttl = _positive_seconds(options, "TAG_TTL", tagging.DEFAULT_TAG_TTL)
        lock_seconds = _positive_seconds(
            options, "STAMPEDE_LOCK_TIMEOUT", DEFAULT_STAMPEDE_LOCK_TIMEOUT
        )
        return cls(
            # django-redis accepts any truthy value for its two flags; so do we.
            mute_outages=bool(options.get("IGNORE_EXCEPTIONS", False)),
            close_connection=bool(options.get("CLOSE_CONNECTION", False)),
            sliding=bool(options.get("SLIDING", False)),
            scan_count=_positive_int(options, "SCAN_COUNT", DEFAULT_SCAN_COUNT),
            delete_batch_size=_positive_int(options, "DELETE_BATCH_SIZE", DEFAULT_DELETE_BATCH),
            stampede_lock_ms=max(1, math.ceil(lock_seconds * 1000)),
            tag_ttl_ms=math.ceil(tag_ttl * 1000),
            jitter=float(jitter),
            clear_namespaces=("throttle", "tags")
            + (("sessions", "users") if _flag(options, "CLEAR_SESSIONS") else ()),
            local_cache=_local_cache(options.get("LOCAL_CACHE")),
        )


#: ``OPTIONS["LOCAL_CACHE"]`` keys and the LocalCache arguments they set.
LOCAL_CACHE_KEYS: Final = {
    "MAX_ENTRIES": "max_entries",
    "MAX_BYTES": "max_bytes",
    "TTL": "ttl",
    "KEYS": "keys",
}


def _local_cache(conf: Any) -> dict[str, Any] | None:
    """``None``/``False``: off; ``True`` or a dict of LOCAL_CACHE_KEYS: on."""
    if conf is None or conf is False:
        return None
    if conf is True:
        conf = {}
    if not isinstance(conf, dict):
        raise ImproperlyConfigured(f"LOCAL_CACHE must be a dict, True or None, not {conf!r}.")
    unknown = sorted(set(conf) - set(LOCAL_CACHE_KEYS))
    if unknown:
        raise ImproperlyConfigured(
            f"LOCAL_CACHE has unknown keys {unknown}; known: {sorted(LOCAL_CACHE_KEYS)}."
        )
    arguments = {LOCAL_CACHE_KEYS[name]: value for name, value in conf.items()}
    keys = arguments.get("keys", ("*",))
    if isinstance(keys, str) or not all(isinstance(glob, str) for glob in keys):
        raise ImproperlyConfigured(f"LOCAL_CACHE['KEYS'] must be a list of globs, not {keys!r}.")
    arguments["keys"] = tuple(keys)
    return arguments


class OptionsMemo(Generic[T]):
    """What ``build`` made of an ``OPTIONS`` dict, reused for any equal dict that comes later.

    Django builds a cache backend object per thread, and under ASGI per request (each task has
    its own context), from a copy of the alias's settings: parsing OPTIONS and keying the signer
    again each time was a third of the cost of a request's few async cache calls. Entries are
    compared by value and type (a copy of the nested dicts and lists is kept, so a dict edited in
    place later is not mistaken for the one that was built) together with ``extra`` (e.g. the
    secrets a codec is keyed with). An error is raised each time, never kept. The most recent
    ``limit`` entries are kept, newest first: a site has a few aliases, tests build many
    short-lived caches.
    """

    def __init__(self, build: Callable[[dict[str, Any]], T], limit: int = 16) -> None:
        self._build = build
        self._limit = limit
        self._items: list[tuple[tuple[Hashable, ...], dict[str, Any], T]] = []
        self._lock = threading.Lock()

    def get(self, options: dict[str, Any], *extra: Hashable) -> T:
        for kept_extra, kept, value in self._items:  # a snapshot: replaced, never mutated
            if kept_extra == extra and _same(kept, options):
                return value
        built = self._build(options)
        with self._lock:
            self._items = [(extra, _snapshot(options), built), *self._items[: self._limit - 1]]
        return built


def _same(kept: Any, given: Any) -> bool:
    """Equal and of the same types all the way down: ``1 == True`` and ``1 == 1.0`` in Python,
    but ``CLEAR_SESSIONS=1`` must be refused where ``True`` was accepted."""
    if type(kept) is not type(given):
        return False
    if isinstance(kept, dict):
        return kept.keys() == given.keys() and all(_same(kept[k], given[k]) for k in kept)
    if isinstance(kept, (list, tuple)):
        return len(kept) == len(given) and all(map(_same, kept, given))
    return bool(kept == given)


def _snapshot(value: Any) -> Any:
    """A copy of the dicts and lists in ``value`` (what OPTIONS nest), so later edits made in
    place to the caller's objects show up as differences."""
    if isinstance(value, dict):
        return {key: _snapshot(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_snapshot(item) for item in value]
    return value


#: ``CacheOptions.parse`` once per OPTIONS dict (see :class:`OptionsMemo`).
parsed_options: OptionsMemo[CacheOptions] = OptionsMemo(CacheOptions.parse)
