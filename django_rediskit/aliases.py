"""Which ``CACHES`` aliases use our backend, and the backend object of one.

Features (sessions, throttles, the inspector, messaging, metrics...) address Redis by cache
alias. They sit above the cache, so they may look its backend up; the connection layer below
must not (``connection.get_redis`` recognizes our backend from settings instead), which is why
these helpers live here rather than in ``connection/``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.core.exceptions import ImproperlyConfigured

from django_rediskit.connection import BACKEND_PATH, uses_rediskit

if TYPE_CHECKING:
    from django_rediskit.cache.backend import RedisCache

__all__ = ["BACKEND_PATH", "backend_for_alias", "rediskit_aliases", "uses_rediskit"]


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


def rediskit_aliases() -> list[str]:
    """The ``CACHES`` aliases that use our backend, in settings order."""
    from django.conf import settings

    caches: dict[str, dict[str, Any]] = getattr(settings, "CACHES", {})
    return [alias for alias, conf in caches.items() if uses_rediskit(conf)]
