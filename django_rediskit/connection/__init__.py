"""The one way to Redis, for every feature: ``get_redis(alias)`` and the alias's topology.

Layers point one way: features -> cache facade -> cache client -> connection. This package
imports nothing of the cache at module level (the backend is looked up lazily, by alias), so
there is no import cycle.

- ``urls.py``      LOCATION parsing (redis, rediss, unix, redis+sentinel, redis+cluster, TLS)
- ``topology.py``  Standalone / Sentinel / Cluster: ``client()``, ``primaries()``, slot grouping
- ``pools.py``     standalone pools per alias and configuration
- ``policy.py``    the one failure policy: outage classification, breaker, rate-limited log
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.core.exceptions import ImproperlyConfigured

from django_rediskit.connection.pools import ConnectionFactory
from django_rediskit.connection.topology import Topology, topology_for
from django_rediskit.connection.urls import (
    SUPPORTED_SCHEMES,
    Location,
    parse_location,
    redact_url,
)

if TYPE_CHECKING:
    from redis import Redis

    from django_rediskit.cache.backend import RedisCache

BACKEND_PATH = "django_rediskit.cache.RedisCache"

__all__ = [
    "BACKEND_PATH",
    "SUPPORTED_SCHEMES",
    "ConnectionFactory",
    "Location",
    "Topology",
    "backend_for_alias",
    "get_redis",
    "parse_location",
    "redact_url",
    "rediskit_aliases",
    "topology_for",
    "uses_rediskit",
    "validate_url",
]


def validate_url(location: str | list[str]) -> None:
    """Raise ImproperlyConfigured for a LOCATION no topology understands (system checks)."""
    parse_location(location)


def get_redis(alias: str = "default", *, write: bool = True, key: str | None = None) -> Redis:
    """The redis-py client behind the ``CACHES`` alias ``alias``.

    A ``redis.Redis`` on a standalone server or behind Sentinel (the current primary), a
    ``redis.cluster.RedisCluster`` on a cluster (it routes by key itself). ``key`` names the key
    the caller is about to use, for topologies that route by key.
    """
    topology = backend_for_alias(alias).topology
    return topology.client_for(key, write) if key is not None else topology.client(write)


def backend_for_alias(alias: str) -> RedisCache:
    """The rediskit backend configured as ``CACHES[alias]``, or a clear configuration error."""
    from django.core.cache import caches
    from django.core.cache.backends.base import InvalidCacheBackendError

    from django_rediskit.cache.backend import RedisCache

    try:
        backend = caches[alias]
    except InvalidCacheBackendError:
        raise ImproperlyConfigured(
            f"CACHES has no alias {alias!r}; django-rediskit needs one that uses "
            "django_rediskit.cache.RedisCache."
        ) from None
    if not isinstance(backend, RedisCache):
        raise ImproperlyConfigured(
            f"CACHES[{alias!r}] uses {type(backend).__module__}.{type(backend).__name__}; "
            "django-rediskit features need django_rediskit.cache.RedisCache."
        )
    return backend


def uses_rediskit(cache_conf: dict[str, Any]) -> bool:
    """Whether a ``CACHES`` entry uses our backend (or a subclass of it)."""
    from django.utils.module_loading import import_string

    backend = cache_conf.get("BACKEND", "")
    if backend in (BACKEND_PATH, "django_rediskit.cache.backend.RedisCache"):
        return True
    try:
        from django_rediskit.cache.backend import RedisCache

        cls = import_string(backend)
    except ImportError:
        return False
    return isinstance(cls, type) and issubclass(cls, RedisCache)


def rediskit_aliases() -> list[str]:
    """The ``CACHES`` aliases that use our backend, in settings order."""
    from django.conf import settings

    return [alias for alias, conf in settings.CACHES.items() if uses_rediskit(conf)]
