"""``REDISKIT["MESSAGING"]`` merged over its defaults, and the backoff every loop here shares."""

from __future__ import annotations

import random
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from django_rediskit.conf import get_section, get_setting


def messaging_settings() -> dict[str, Any]:
    """The messaging section with its defaults filled in (read when a queue is built, so
    ``override_settings`` in tests applies to the next queue)."""
    return get_section("MESSAGING")


def messaging_alias(alias: str | None = None) -> str:
    """The CACHES alias messaging uses: the argument, the section's CACHE_ALIAS, or the kit's."""
    chosen = alias or messaging_settings()["CACHE_ALIAS"] or get_setting("CACHE_ALIAS")
    if not isinstance(chosen, str) or not chosen:
        raise ImproperlyConfigured("REDISKIT['MESSAGING']['CACHE_ALIAS'] must name a CACHES alias.")
    return chosen


class Backoff:
    """Exponential backoff with full jitter: many workers reconnecting after one outage spread
    their attempts instead of hammering the server in step."""

    def __init__(self, base: float, cap: float) -> None:
        if base <= 0 or cap < base:
            raise ImproperlyConfigured("Backoff needs 0 < base <= cap.")
        self.base, self.cap = base, cap
        self.failures = 0

    def next(self) -> float:
        """Seconds to wait before the next attempt (grows with each consecutive failure)."""
        ceiling = min(self.cap, self.base * (2 ** min(self.failures, 30)))
        self.failures += 1
        return random.uniform(ceiling / 2, ceiling)  # noqa: S311 (not for security)

    def reset(self) -> None:
        self.failures = 0
