"""The ``REDISKIT`` settings dict: defaults, validation and typed access.

Backend options live in ``CACHES[alias]["OPTIONS"]`` (so a cache is configured in one place, as
with django-redis). ``REDISKIT`` holds what is not about one cache: which alias each feature uses.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

#: Short namespace tokens that features put right after a cache's KEY_PREFIX. They are never
#: numeric, so they can never collide with cache entries, whose second part is the version
#: number; that is what lets ``clear()`` match ``<prefix>:[0-9]*:*`` and spare them.
NAMESPACES: dict[str, str] = {
    "tags": "tv",
    "sessions": "s",
    "users": "u",
    "throttle": "rl",
    "queue": "q",
    "lock": "lk",
}

DEFAULTS: dict[str, Any] = {
    # Alias of the CACHES entry whose Redis each feature uses.
    "CACHE_ALIAS": "default",
    # The admin key inspector; see django_rediskit.inspector.config.DEFAULTS for the keys.
    "INSPECTOR": {},
}


def get_setting(name: str) -> Any:
    """Read one ``REDISKIT`` setting, falling back to its documented default."""
    user: dict[str, Any] = getattr(settings, "REDISKIT", {}) or {}
    if not isinstance(user, dict):
        raise ImproperlyConfigured("settings.REDISKIT must be a dict.")
    if name in user:
        return user[name]
    try:
        return DEFAULTS[name]
    except KeyError:
        raise ImproperlyConfigured(f"Unknown REDISKIT setting {name!r}.") from None


def unknown_settings() -> list[str]:
    """Names in ``settings.REDISKIT`` that nothing reads: almost always typos."""
    user = getattr(settings, "REDISKIT", {}) or {}
    if not isinstance(user, dict):
        return []
    return sorted(set(user) - set(DEFAULTS))
