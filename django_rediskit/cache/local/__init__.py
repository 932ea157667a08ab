"""The server-invalidated local cache (``OPTIONS["LOCAL_CACHE"]``): hot values kept per
process, dropped when Redis announces a change (``CLIENT TRACKING`` in BCAST mode).

``cache.py`` holds the store and the public API, ``tracker.py`` the invalidation connections
and their thread, ``globs.py`` the ``KEYS`` matcher. See ``docs/local-cache.md``.
"""

from django_rediskit.cache.local.cache import (
    ENTRY_OVERHEAD,
    NOT_HELD,
    LocalCache,
    LocalCacheStats,
    NotHeld,
    Ticket,
)
from django_rediskit.cache.local.tracker import CLIENT_NAME

__all__ = [
    "CLIENT_NAME",
    "ENTRY_OVERHEAD",
    "NOT_HELD",
    "LocalCache",
    "LocalCacheStats",
    "NotHeld",
    "Ticket",
]
