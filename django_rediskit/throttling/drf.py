"""Drop-in replacements for DRF's throttles, on the atomic limiter.

Configure them as DRF's: ``DEFAULT_THROTTLE_CLASSES``, ``DEFAULT_THROTTLE_RATES``,
``throttle_scope``, ``NUM_PROXIES``. What changes: decisions are atomic (DRF's read-edit-write
of a history list admits far more than the limit under concurrency), cost one round trip, rates
accept multiples and lists (``"5/10s"``, ``"100/min;1000/day"``) and unknown units raise instead
of meaning "per minute", ``wait()`` is exact and never None while throttled, and a Redis outage
follows the throttle's failure policy instead of becoming a 500.
"""

from __future__ import annotations

import math
import time
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest
from rest_framework import status
from rest_framework.exceptions import APIException
from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle

from django_rediskit.throttling.limiter import Decision, RateLimiter, shared_limiter
from django_rediskit.throttling.rates import parse_rates
from django_rediskit.throttling.views import record_decision


class ThrottleUnavailable(APIException):  # type: ignore[misc]
    """A fail-closed throttle could not reach Redis: 503, not 429 (the client did nothing wrong).

    DRF's exception handler turns ``wait`` into a ``Retry-After`` header.
    """

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "Request limits cannot be checked right now; try again later."
    default_code = "throttle_unavailable"

    def __init__(self, wait: float) -> None:
        super().__init__()
        self.wait = max(1, math.ceil(wait))


class SimpleRateThrottle(BaseThrottle):  # type: ignore[misc]
    """DRF's ``SimpleRateThrottle`` contract: override ``get_cache_key``; set ``scope`` or ``rate``.

    Extra class attributes: ``algorithm`` (``exact`` by default), ``fail_open`` and ``alias``
    (defaults from ``REDISKIT["THROTTLE"]``). ``timer()`` returns the local time, as DRF's does,
    but decisions use the Redis server's clock (one clock for every app server) unless a subclass
    or test overrides ``timer`` (as DRF's tests do): then that clock decides.
    """

    cache_format = "throttle_%(scope)s_%(ident)s"
    scope: str | None = None
    #: None reads ``DEFAULT_THROTTLE_RATES`` when the throttle is built (DRF reads it at import).
    THROTTLE_RATES: dict[str, str | None] | None = None
    algorithm: str | None = None
    fail_open: bool | None = None
    alias: str | None = None

    def __init__(self) -> None:
        if not getattr(self, "rate", None):
            self.rate: str | None = self.get_rate()
        self.rates = parse_rates(self.rate)
        self.num_requests, self.duration = self.parse_rate(self.rate)
        self.decision: Decision | None = None
        #: DRF's attributes, read by its ``wait()`` formula when no Redis decision was made.
        self.history: list[float] = []
        self.now: float = 0.0

    def timer(self) -> float:
        """DRF's clock: ``time.time()``. Overriding it makes the limiter decide by its value."""
        return time.time()

    def decision_time(self) -> float | None:
        """The ``now`` to decide by: None (the Redis clock) unless ``timer`` was overridden."""
        timer = self.timer
        if getattr(timer, "__func__", None) is SimpleRateThrottle.timer:
            return None
        self.now = timer()
        return self.now

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        """A string naming who is limited (hashed before it reaches Redis); None: not limited."""
        raise NotImplementedError(".get_cache_key() must be overridden")

    def get_rate(self) -> str | None:
        if not getattr(self, "scope", None):
            raise ImproperlyConfigured(
                f"You must set either `.scope` or `.rate` for '{type(self).__name__}' throttle"
            )
        rates = self.THROTTLE_RATES
        if rates is None:
            rates = api_settings.DEFAULT_THROTTLE_RATES
        try:
            return rates[self.scope]  # type: ignore[index]
        except KeyError:
            raise ImproperlyConfigured(
                f"No default throttle rate set for '{self.scope}' scope"
            ) from None

    def parse_rate(self, rate: str | None) -> tuple[int | None, int | None]:
        """DRF's ``(num_requests, duration)``: of the shortest window when ``rate`` is a list."""
        if rate is None:
            return (None, None)
        first = parse_rates(rate)[0]
        return (first.limit, first.window)

    def user_or_ident(self, request: Request) -> Any:
        """The user's pk when authenticated, else the client IP (DRF's ``get_ident``)."""
        if request.user and request.user.is_authenticated:
            return request.user.pk
        return self.get_ident(request)

    def get_cost(self, request: Request, view: Any) -> int:
        """Units one request consumes: the view's ``throttle_cost`` (default 1)."""
        return int(getattr(view, "throttle_cost", 1))

    @property
    def limiter(self) -> RateLimiter:
        """Shared by every instance of the same configuration: DRF builds throttles per request."""
        return shared_limiter(self.rates, self.algorithm, self.alias, self.fail_open)

    def allow_request(self, request: Request, view: Any) -> bool:
        if self.rate is None:
            return True
        key = self.get_cache_key(request, view)
        if key is None:
            return True
        now = self.decision_time()
        scope = self.scope or type(self).__name__
        decision = self.limiter.hit(scope, key, cost=self.get_cost(request, view), now=now)
        self.decision = decision
        raw: HttpRequest = getattr(request, "_request", request)
        record_decision(raw, scope, decision)
        if decision.degraded and not decision.allowed:
            raise ThrottleUnavailable(decision.retry_after)
        return decision.allowed

    def wait(self) -> float | None:
        """Seconds until the rejected request would pass, exact, from the Redis decision.

        Without a decision (a fresh throttle, as code written for DRF inspects it) this is DRF's
        own answer from ``history``, ``duration`` and ``num_requests``: a float, or None when
        the history leaves no request available.
        """
        if self.decision is not None:
            return None if self.decision.allowed else self.decision.retry_after
        if self.num_requests is None or self.duration is None:
            return None
        remaining = self.duration - (self.now - self.history[-1]) if self.history else self.duration
        available = self.num_requests - len(self.history) + 1
        if available <= 0:
            return None
        return remaining / float(available)


class AnonRateThrottle(SimpleRateThrottle):
    """Limits unauthenticated requests by client IP (``NUM_PROXIES`` honoured, as in DRF)."""

    scope = "anon"

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        if request.user and request.user.is_authenticated:
            return None
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class UserRateThrottle(SimpleRateThrottle):
    """Limits authenticated users by id, anonymous requests by client IP."""

    scope = "user"

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        return self.cache_format % {"scope": self.scope, "ident": self.user_or_ident(request)}


class ScopedRateThrottle(SimpleRateThrottle):
    """Limits by the view's ``throttle_scope``, per user or client IP; views without one pass."""

    scope_attr = "throttle_scope"

    def __init__(self) -> None:
        # The rate depends on the view: it is set in allow_request.
        self.rate = None
        self.rates = ()
        self.num_requests = self.duration = None
        self.decision = None
        self.history = []
        self.now = 0.0

    def allow_request(self, request: Request, view: Any) -> bool:
        self.scope = getattr(view, self.scope_attr, None)
        if not self.scope:
            return True
        self.rate = self.get_rate()
        self.rates = parse_rates(self.rate)
        self.num_requests, self.duration = self.parse_rate(self.rate)
        return super().allow_request(request, view)

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        return self.cache_format % {"scope": self.scope, "ident": self.user_or_ident(request)}
