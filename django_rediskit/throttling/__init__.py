"""Atomic Redis rate limits: a core limiter, DRF throttle classes and a Django view decorator.

``drf`` imports Django REST framework; import it only where DRF is installed.
"""

from __future__ import annotations

from django_rediskit.throttling.limiter import Decision, RateLimiter, RateStatus
from django_rediskit.throttling.rates import Rate, parse_rate, parse_rates

__all__ = ["Decision", "Rate", "RateLimiter", "RateStatus", "parse_rate", "parse_rates"]
