"""One :class:`LocalCache` per alias and configuration in a process.

Django builds a backend object per thread and per task; the local cache (its memory, its
tracking connections and their thread) must be shared by all of them, like the topology.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ImproperlyConfigured

from django_rediskit.cache.local.cache import LocalCache

if TYPE_CHECKING:
    from django_rediskit.connection.topology import Topology

_caches: dict[tuple[str, int, tuple[str, ...], str], LocalCache] = {}
_lock = threading.Lock()


def local_cache_for(
    scope: str, topology: Topology, prefixes: Sequence[str], arguments: dict[str, Any]
) -> LocalCache:
    """The local cache of ``scope``, started on first use (its tracker connects then)."""
    key = (scope, id(topology), tuple(prefixes), repr(sorted(arguments.items())))
    found = _caches.get(key)
    if found is not None:
        return found
    with _lock:
        found = _caches.get(key)
        if found is None:
            try:
                found = _caches[key] = LocalCache(topology, prefixes, **arguments)
            except (TypeError, ValueError) as exc:
                raise ImproperlyConfigured(f"OPTIONS['LOCAL_CACHE']: {exc}") from exc
        return found


def close_local_caches() -> None:
    """Stop every local cache of this process (tests that repoint aliases)."""
    with _lock:
        caches = list(_caches.values())
        _caches.clear()
    for cache in caches:
        cache.close()
