"""django-rediskit: Redis as the one place a Django site keeps its cache, sessions and limits."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from redis import Redis

__all__ = ["__version__", "get_redis", "register", "unregister"]

#: Names imported on first use: importing the package (as Django does while loading apps) must
#: not import models or the invalidation machinery.
_LAZY = {
    "register": "django_rediskit.invalidation.registry",
    "unregister": "django_rediskit.invalidation.registry",
}


def __getattr__(name: str) -> Any:
    """``django_rediskit.register`` / ``unregister``, imported on first use (see ``_LAZY``)."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def get_redis(alias: str = "default", *, write: bool = True, key: str | None = None) -> Redis:
    """Return the redis-py client behind the ``CACHES`` alias ``alias``.

    Every feature of the kit (sessions, throttles, the inspector, queues) goes through this, so a
    site configures its Redis once, in ``CACHES``, and all features share that alias's pool. On a
    cluster it is a ``RedisCluster`` (routing by key); behind Sentinel, the current primary.
    """
    from django_rediskit import connection

    return connection.get_redis(alias, write=write, key=key)
