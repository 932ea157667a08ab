"""System checks for throttles: bad rates and settings at start-up, not at the first request."""

from __future__ import annotations

import difflib
from typing import Any, Final

from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured

from django_rediskit.conf import DEFAULTS
from django_rediskit.throttling.limiter import ALGORITHMS, throttle_settings
from django_rediskit.throttling.rates import Rate, parse_rates


def _rates(label: str, text: Any, errors: list[checks.CheckMessage]) -> tuple[Rate, ...]:
    try:
        return parse_rates(text)
    except ImproperlyConfigured as exc:
        errors.append(checks.Error(f"{label}: {exc}", id="django_rediskit.E601"))
        return ()


#: Keys of REDISKIT["THROTTLE"] that the one failure policy moved to the cache alias's OPTIONS.
MOVED_TO_CACHE_OPTIONS: Final = frozenset({"CIRCUIT_BREAKER", "LOG_INTERVAL"})


@checks.register()
def check_throttle_settings(**kwargs: Any) -> list[checks.CheckMessage]:
    """REDISKIT["THROTTLE"] keys, algorithm and rate; DRF's rates; blindly trusted proxies."""
    messages: list[checks.CheckMessage] = []
    try:
        conf = throttle_settings()
    except ImproperlyConfigured as exc:
        return [checks.Error(str(exc), id="django_rediskit.E602")]
    known = DEFAULTS["THROTTLE"]
    for name in sorted(set(conf) & MOVED_TO_CACHE_OPTIONS):
        messages.append(
            checks.Warning(
                f'settings.REDISKIT["THROTTLE"][{name!r}] is ignored: the circuit breaker and '
                "the outage log are the cache alias's, shared by every feature.",
                hint=f'Set CACHES[<alias>]["OPTIONS"][{name!r}] instead.',
                id="django_rediskit.W604",
            )
        )
    for name in sorted(set(conf) - set(known) - MOVED_TO_CACHE_OPTIONS):
        close = difflib.get_close_matches(name, known, n=1)
        messages.append(
            checks.Warning(
                f'settings.REDISKIT["THROTTLE"] has unknown key {name!r}; it is ignored.',
                hint=f"Did you mean {close[0]!r}?" if close else None,
                id="django_rediskit.W601",
            )
        )
    if conf["ALGORITHM"] not in ALGORITHMS:
        messages.append(
            checks.Error(
                f'REDISKIT["THROTTLE"]["ALGORITHM"] is {conf["ALGORITHM"]!r}; use one of '
                f"{', '.join(ALGORITHMS)}.",
                id="django_rediskit.E603",
            )
        )
    label = 'REDISKIT["THROTTLE"]["MIDDLEWARE_RATE"]'
    rates = list(_rates(label, conf["MIDDLEWARE_RATE"], messages))
    drf: dict[str, Any] = getattr(settings, "REST_FRAMEWORK", {}) or {}
    for scope, text in (drf.get("DEFAULT_THROTTLE_RATES") or {}).items():
        rates += _rates(f"REST_FRAMEWORK['DEFAULT_THROTTLE_RATES'][{scope!r}]", text, messages)
    if drf.get("DEFAULT_THROTTLE_CLASSES") and drf.get("NUM_PROXIES") is None:
        messages.append(
            checks.Warning(
                "REST_FRAMEWORK['NUM_PROXIES'] is not set, so DRF throttles key anonymous "
                "clients by the whole X-Forwarded-For header, which any client can change at "
                "will to escape its limit.",
                hint="Set NUM_PROXIES to the number of proxies in front of Django (0 if none).",
                id="django_rediskit.W602",
            )
        )
    biggest = max((rate.limit for rate in rates), default=0)
    if conf["ALGORITHM"] == "exact" and biggest > int(conf["EXACT_MAX_LIMIT"]):
        messages.append(
            checks.Warning(
                f"A throttle rate allows {biggest} requests per window; the exact sliding log "
                f"keeps one entry (~11 bytes) per request per identity.",
                hint="Use ALGORITHM 'gcra' or 'approx' for large limits (constant memory).",
                id="django_rediskit.W603",
            )
        )
    return messages
