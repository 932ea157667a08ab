"""The cache's import path for the failure policy, which lives in ``connection.policy``.

Kept because users catch ``django_rediskit.cache.policy.CircuitOpen`` (the documented name);
there is one policy, shared by every feature: see :mod:`django_rediskit.connection.policy`.
"""

from __future__ import annotations

from django_rediskit.connection.policy import (
    OUTAGE_ERRORS,
    CircuitBreaker,
    CircuitOpen,
    ThrottledLog,
    guarded,
    is_guarded,
    outage_of,
)

__all__ = [
    "OUTAGE_ERRORS",
    "CircuitBreaker",
    "CircuitOpen",
    "ThrottledLog",
    "guarded",
    "is_guarded",
    "outage_of",
]
