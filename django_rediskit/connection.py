"""Connection pools and client factories, one pool per cache alias.

django-redis keys its process-wide pools by URL only, so two aliases pointing at the same server
with different pool options silently share the first one's pool (django-redis #685). Here a pool is
keyed by the alias *and* a fingerprint of everything that shapes a connection, so each alias gets
its own pool and a changed option can never be ignored.

URLs are whatever redis-py's ``ConnectionPool.from_url`` accepts: ``redis://``, ``rediss://`` (TLS;
``ssl_*`` options in the query string or in ``CONNECTION_POOL_KWARGS``) and ``unix://``, with ACL
``user:password@`` and a database number in the path or ``?db=``.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured
from django_redis.pool import ConnectionFactory as DjangoRedisConnectionFactory

if TYPE_CHECKING:
    from redis import ConnectionPool

    from django_rediskit.cache.backend import RedisCache

BACKEND_PATH = "django_rediskit.cache.RedisCache"
SUPPORTED_SCHEMES = frozenset({"redis", "rediss", "unix"})

#: Defaults that django-redis leaves unset (so a dead server can hang a request forever).
DEFAULT_SOCKET_CONNECT_TIMEOUT = 1.0
DEFAULT_SOCKET_TIMEOUT = 5.0

_pools: dict[tuple[str, str], ConnectionPool] = {}
_pools_lock = threading.Lock()


def validate_url(url: str) -> None:
    """Reject a LOCATION whose scheme redis-py would misread, with a message that says why."""
    scheme = urlsplit(url).scheme
    if scheme not in SUPPORTED_SCHEMES:
        raise ImproperlyConfigured(
            f"Unsupported Redis URL scheme {scheme!r} in {redact_url(url)!r}; "
            f"use one of {', '.join(sorted(SUPPORTED_SCHEMES))}://."
        )


def redact_url(url: str) -> str:
    """The URL with its password replaced, for error messages and the admin."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


class ConnectionFactory(DjangoRedisConnectionFactory):  # type: ignore[misc]
    """django-redis's factory with pools scoped to one cache alias and sane socket timeouts."""

    def __init__(self, options: dict[str, Any], *, scope: str = "") -> None:
        super().__init__(options)
        self.scope = scope

    def make_connection_params(self, url: str) -> dict[str, Any]:
        validate_url(url)
        params: dict[str, Any] = super().make_connection_params(url)
        params.setdefault(
            "socket_connect_timeout",
            self.options.get("SOCKET_CONNECT_TIMEOUT", DEFAULT_SOCKET_CONNECT_TIMEOUT),
        )
        params.setdefault(
            "socket_timeout", self.options.get("SOCKET_TIMEOUT", DEFAULT_SOCKET_TIMEOUT)
        )
        return params

    def get_or_create_connection_pool(self, params: dict[str, Any]) -> ConnectionPool:
        key = (self.scope, _fingerprint(params, self.pool_cls_kwargs, self.pool_cls))
        pool = _pools.get(key)
        if pool is None:
            with _pools_lock:
                pool = _pools.get(key)
                if pool is None:
                    pool = _pools[key] = self.get_connection_pool(params)
        return pool


def _fingerprint(params: dict[str, Any], pool_kwargs: dict[str, Any], pool_cls: type) -> str:
    items = sorted({**params, **pool_kwargs}.items(), key=lambda item: item[0])
    return repr((pool_cls, items))


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
