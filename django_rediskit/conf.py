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
    "metrics": "mx",
    "channel": "ch",
    "worker": "wk",
}

DEFAULTS: dict[str, Any] = {
    # Alias of the CACHES entry whose Redis each feature uses.
    "CACHE_ALIAS": "default",
    # Model-signal invalidation: above this many matched rows, QuerySet.update() bumps the
    # model's object generation (og:) instead of one o: tag per row.
    "INVALIDATION": {"UPDATE_PK_CAP": 1000},
    # Environment prefix that cache.keys.KeyBuilder puts before every key it builds.
    "KEY_ENV": "",
    # Throttles (django_rediskit.throttling); a partial dict is merged over these.
    "THROTTLE": {
        "CACHE_ALIAS": None,  # None: the CACHE_ALIAS above
        "ALGORITHM": "exact",  # exact | approx | gcra | fixed
        "FAIL_OPEN": True,  # Redis down: admit (True) or answer 503 + Retry-After (False)
        "SOCKET_TIMEOUT": 0.2,  # seconds; a throttle must never hold a request for long
        "SOCKET_CONNECT_TIMEOUT": 0.2,
        # The circuit breaker and the outage log are the alias's, shared with the cache:
        # CACHES[alias]["OPTIONS"]["CIRCUIT_BREAKER"] / ["LOG_INTERVAL"].
        "FAILURE_RETRY_AFTER": 5,  # Retry-After (s) of a fail-closed 503
        "HEADERS": False,  # IETF RateLimit / RateLimit-Policy headers (draft -10)
        "NUM_PROXIES": 0,  # proxies in front of Django (X-Forwarded-For) for @ratelimit
        "EXACT_MAX_LIMIT": 10_000,  # system check: larger exact logs should use gcra/approx
        "MIDDLEWARE_RATE": None,  # e.g. "300/min": RateLimitMiddleware's site-wide limit
    },
    # Messaging (django_rediskit.messaging): queues, pub/sub, write-behind; see docs/messaging.md.
    "MESSAGING": {
        "CACHE_ALIAS": None,  # None: use REDISKIT["CACHE_ALIAS"]
        # Queues rediskit_worker runs: {"name": "dotted.handler"} or {"name": {"HANDLER": ...,
        # "VISIBILITY_TIMEOUT": ..., "MAX_DELIVERIES": ...}}; the write-behind queue is added.
        "QUEUES": {},
        "GROUP": "workers",  # consumer group of every queue
        "VISIBILITY_TIMEOUT": 60.0,  # s a delivery may stay unacknowledged before reclaim
        "HANDLER_DEADLINE": 30.0,  # s a handler promises to finish in (or call extend())
        "MAX_DELIVERIES": 5,  # deliveries before a message goes to the dead-letter stream
        "RETRY_BACKOFF": 1.0,  # s before the 2nd delivery of a failed message; doubles each time
        "BATCH": 10,  # messages per XREADGROUP
        "BLOCK_MS": 2000,  # how long one XREADGROUP waits for new messages
        "RECONNECT_BACKOFF": 0.1,  # s after the first failed reconnect; doubles, jittered
        "RECONNECT_BACKOFF_CAP": 5.0,
        "TRIM_INTERVAL": 10.0,  # s between two XTRIM MINID of a queue by one consumer
        "HEARTBEAT_INTERVAL": 5.0,  # s between two heartbeats of a worker
        "PUBSUB_HEALTH_CHECK_INTERVAL": 1.0,  # s between two PINGs of an idle subscriber
        "SHARDED_PUBSUB": None,  # None: SPUBLISH/SSUBSCRIBE on a cluster, classic elsewhere
        "WRITE_BEHIND_QUEUE": "write-behind",
    },
    # Login limits (django_rediskit.throttling.login): failed logins per "ip" and/or
    # "username", e.g. {"ip": "20/min", "username": "5/min;30/h"}; None: off.
    "LOGIN_RATES": None,
    "LOGIN_FAIL_OPEN": False,  # Redis down: refuse logins (False, 503) or let them through
    # Metrics exporters (django_rediskit.metrics); PUBLISH: seconds between two publications
    # of this process's totals to Redis for `rediskit_info --watch` (None: not published).
    "METRICS": {"PROMETHEUS": False, "OPENTELEMETRY": False, "PUBLISH": None},
    # The admin key inspector; see django_rediskit.inspector.config.DEFAULTS for the keys.
    "INSPECTOR": {},
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


def get_section(name: str) -> dict[str, Any]:
    """A dict-valued setting with its defaults filled in, so users override single keys."""
    value = get_setting(name)
    if not isinstance(value, dict):
        raise ImproperlyConfigured(f"REDISKIT[{name!r}] must be a dict.")
    return {**DEFAULTS[name], **value}


def unknown_settings() -> list[str]:
    """Names in ``settings.REDISKIT`` that nothing reads: almost always typos."""
    user = getattr(settings, "REDISKIT", {}) or {}
    if not isinstance(user, dict):
        return []
    return sorted(set(user) - set(DEFAULTS))
