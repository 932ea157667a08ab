"""The one way to Redis, for every feature: ``get_redis(alias)`` and the alias's topology.

Layers point one way: features -> cache facade -> cache client -> connection. This package
imports nothing of the cache, not even lazily: ``get_redis(alias)`` builds the alias's topology
from its settings, and the features' look-up of a backend object is ``django_rediskit.aliases``.

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

BACKEND_PATH = "django_rediskit.cache.RedisCache"

__all__ = [
    "BACKEND_PATH",
    "SUPPORTED_SCHEMES",
    "ConnectionFactory",
    "Location",
    "Topology",
    "alias_topology",
    "get_redis",
    "parse_location",
    "redact_url",
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
    topology = alias_topology(alias)
    return topology.client_for(key, write) if key is not None else topology.client(write)


def alias_topology(alias: str) -> Topology:
    """The topology of ``CACHES[alias]``: the very object its backend sends through.

    Built from the alias's settings, not from the backend (this layer is below the cache):
    ``topology_for`` keys topologies by alias and configuration, as the backend does.
    """
    from django.conf import settings

    conf: dict[str, Any] | None = getattr(settings, "CACHES", {}).get(alias)
    if conf is None:
        raise ImproperlyConfigured(
            f"CACHES has no alias {alias!r}; django-rediskit needs one that uses "
            "django_rediskit.cache.RedisCache."
        )
    if not uses_rediskit(conf):
        raise ImproperlyConfigured(
            f"CACHES[{alias!r}] uses {conf.get('BACKEND')!r}; django-rediskit features need "
            "django_rediskit.cache.RedisCache."
        )
    return topology_for(conf.get("LOCATION", ""), conf.get("OPTIONS", {}), alias)


def uses_rediskit(cache_conf: dict[str, Any]) -> bool:
    """Whether a ``CACHES`` entry uses our backend (or a subclass of it).

    A subclass is recognized by the class attribute ``rediskit_backend`` that ours sets, so
    this layer never imports the cache.
    """
    from django.utils.module_loading import import_string

    backend = cache_conf.get("BACKEND", "")
    if backend in (BACKEND_PATH, "django_rediskit.cache.backend.RedisCache"):
        return True
    try:
        cls = import_string(backend)
    except ImportError:
        return False
    return isinstance(cls, type) and getattr(cls, "rediskit_backend", False) is True
