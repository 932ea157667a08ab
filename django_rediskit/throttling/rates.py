"""The rate parser: DRF's syntax, plus multiples (``5/10s``) and lists (``100/min;1000/day``).

DRF reads only the first letter of the period, so ``100/month`` silently means 100 per minute and
``5/10s`` is an error deep inside a request. Here every unit is spelled out in a table; anything
else raises ``ImproperlyConfigured`` when the rate is parsed (and the system check parses every
configured rate at start-up), so a typo can never turn into a different limit.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from django.core.exceptions import ImproperlyConfigured

#: Seconds per unit. Only these spellings are accepted.
UNITS: dict[str, int] = {
    "s": 1,
    "sec": 1,
    "second": 1,
    "seconds": 1,
    "m": 60,
    "min": 60,
    "minute": 60,
    "minutes": 60,
    "h": 3600,
    "hour": 3600,
    "hours": 3600,
    "d": 86400,
    "day": 86400,
    "days": 86400,
}

_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*([a-z]+)\s*$", re.IGNORECASE)
_SEPARATORS = re.compile(r"[;,]")


@dataclass(frozen=True, order=True)
class Rate:
    """At most ``limit`` units of cost in any window of ``window`` seconds."""

    window: int
    limit: int

    @property
    def window_us(self) -> int:
        return self.window * 1_000_000

    @property
    def name(self) -> str:
        """A short stable label (``100-per-60s``) for policy headers and logs."""
        return f"{self.limit}-per-{self.window}s"

    def __str__(self) -> str:
        return f"{self.limit}/{self.window}s"


def parse_rate(text: str) -> Rate:
    """One ``<limit>/[<multiple>]<unit>`` rate, e.g. ``100/min``, ``5/10s``, ``10/2h``."""
    if not isinstance(text, str):
        raise ImproperlyConfigured(f"A throttle rate must be a string, not {text!r}.")
    match = _RATE.match(text)
    if match is None:
        raise ImproperlyConfigured(
            f"Invalid throttle rate {text!r}: use '<number>/<period>' such as '100/min' or '5/10s'."
        )
    limit, multiple, unit = int(match[1]), int(match[2] or 1), match[3].lower()
    if unit not in UNITS:
        raise ImproperlyConfigured(
            f"Unknown period {unit!r} in throttle rate {text!r}; use one of "
            "s/sec/second, m/min/minute, h/hour, d/day (optionally with a multiple, e.g. 15m)."
        )
    if limit < 1 or multiple < 1:
        raise ImproperlyConfigured(f"Throttle rate {text!r} must allow at least 1 per period.")
    return Rate(window=multiple * UNITS[unit], limit=limit)


def parse_rates(text: str | None) -> tuple[Rate, ...]:
    """All rates of a ``;``- or ``,``-separated list, shortest window first; None means none.

    Two rates with the same window would share a Redis key, so that is a configuration error.
    """
    if text is None:
        return ()
    if not isinstance(text, str):
        raise ImproperlyConfigured(f"A throttle rate must be a string, not {text!r}.")
    return _parse_rates(text)


@functools.lru_cache(maxsize=256)
def _parse_rates(text: str) -> tuple[Rate, ...]:
    """Cached: DRF builds its throttles anew for every request."""
    rates = sorted(parse_rate(part) for part in _SEPARATORS.split(text) if part.strip())
    if not rates:
        raise ImproperlyConfigured(f"Throttle rate {text!r} holds no rate.")
    windows = [rate.window for rate in rates]
    if len(set(windows)) != len(windows):
        raise ImproperlyConfigured(f"Throttle rate {text!r} gives two limits for one window.")
    return tuple(rates)
