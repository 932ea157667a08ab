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
    # Session engine + device tracking (django_rediskit.sessions); see docs/sessions.md.
    "SESSIONS": {
        "CACHE_ALIAS": None,  # None: use REDISKIT["CACHE_ALIAS"]
        "ACTIVITY_RESOLUTION": 60,  # seconds between two activity writes of one session
        "DEVICE_LIMIT": None,  # max live sessions per user; None: unlimited
        "DEVICE_LIMIT_POLICY": "evict_oldest",  # or "deny"
        "ABSOLUTE_TIMEOUT": None,  # seconds after login when a session ends, however active
        "REVOKE_ON_PASSWORD_CHANGE": "others",  # "others", "all" or None
        "REVOKE_ON_DEACTIVATE": True,
        "IP_RESOLVER": "django_rediskit.sessions.middleware.remote_addr",
        "LEGACY_CACHE_ALIAS": None,  # alias of Django's cache engine sessions to migrate lazily
        "USER_ADMIN": True,  # add "log out everywhere" and a devices panel to the User admin
    },
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
