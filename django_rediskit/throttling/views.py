"""Rate limits for plain Django views: the ``@ratelimit`` decorator and ``RateLimitMiddleware``.

Both answer 429 with ``Retry-After`` (an integer >= 1) when a limit is hit, and 503 with
``Retry-After`` when a fail-closed limit cannot reach Redis. With the ``HEADERS`` setting on,
every response of a limited request carries the IETF ``RateLimit-Policy`` / ``RateLimit`` fields
(draft-ietf-httpapi-ratelimit-headers-10), DRF's throttles included when the middleware is on.
"""

from __future__ import annotations

import functools
import inspect
import math
import re
from collections.abc import Callable, Collection
from typing import Any, TypeVar, cast

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse, HttpResponseBase

from django_rediskit.throttling.limiter import (
    Decision,
    RateLimiter,
    shared_limiter,
    throttle_settings,
)
from django_rediskit.throttling.rates import parse_rates

View = TypeVar("View", bound=Callable[..., HttpResponseBase])
KeyFunc = Callable[[HttpRequest], "str | None"]

_DECISIONS_ATTR = "_rediskit_throttle_decisions"
_TOKEN_UNSAFE = re.compile(r"[^A-Za-z0-9_.:\-]")


def client_ip(request: HttpRequest) -> str:
    """The client address: REMOTE_ADDR, or the entry ``NUM_PROXIES`` from the right of XFF.

    ``REDISKIT["THROTTLE"]["NUM_PROXIES"]`` defaults to 0 (trust no header): a client can write
    any X-Forwarded-For it likes, so only the entries appended by your own proxies count.
    """
    num_proxies = int(throttle_settings()["NUM_PROXIES"])
    remote = str(request.META.get("REMOTE_ADDR", ""))
    xff = request.headers.get("x-forwarded-for")
    if num_proxies <= 0 or not xff:
        return remote
    addrs = [addr.strip() for addr in xff.split(",")]
    return addrs[-min(num_proxies, len(addrs))]


def user_or_ip(request: HttpRequest) -> str:
    return _user_or_ip(request, getattr(request, "user", None))


async def auser_or_ip(request: HttpRequest) -> str:
    """:func:`user_or_ip` for async views: the user comes from ``request.auser()`` (reading the
    lazy ``request.user`` on the event loop would load it synchronously)."""
    auser = getattr(request, "auser", None)
    user = await auser() if auser is not None else getattr(request, "user", None)
    return _user_or_ip(request, user)


def _user_or_ip(request: HttpRequest, user: Any) -> str:
    if user is not None and user.is_authenticated:
        return f"user:{user.pk}"
    return f"ip:{client_ip(request)}"


def ip(request: HttpRequest) -> str:
    return f"ip:{client_ip(request)}"


KEYS: dict[str, KeyFunc] = {"ip": ip, "user_or_ip": user_or_ip}
#: The same keys for async views (a key that needs no I/O is shared).
AKEYS: dict[str, Callable[[HttpRequest], Any]] = {"ip": ip, "user_or_ip": auser_or_ip}


def record_decision(request: HttpRequest, scope: str, decision: Decision) -> None:
    """Remember a decision on the request so the response can carry its headers."""
    decisions: list[tuple[str, Decision]] = request.__dict__.setdefault(_DECISIONS_ATTR, [])
    decisions.append((scope, decision))


def rate_limit_headers(decisions: list[tuple[str, Decision]]) -> dict[str, str]:
    """``RateLimit-Policy`` and ``RateLimit`` (RFC 9651 lists of strings with parameters)."""
    policies, states = [], []
    for scope, decision in decisions:
        for status in decision.statuses:
            name = _TOKEN_UNSAFE.sub("_", f"{scope}-{status.rate.window}s")
            policies.append(f'"{name}";q={status.rate.limit};w={status.rate.window}')
            states.append(f'"{name}";r={status.remaining};t={math.ceil(status.reset)}')
    if not policies:
        return {}
    return {"RateLimit-Policy": ", ".join(policies), "RateLimit": ", ".join(states)}


def add_headers(request: HttpRequest, response: HttpResponseBase) -> None:
    if not throttle_settings()["HEADERS"]:
        return
    for name, value in rate_limit_headers(request.__dict__.get(_DECISIONS_ATTR, [])).items():
        response[name] = value


def limited_response(decision: Decision) -> HttpResponse:
    """429 when a limit rejected the request; 503 when Redis was down and the limit fails closed."""
    if decision.degraded:
        response = HttpResponse(
            "Request limits cannot be checked right now; try again later.\n",
            status=503,
            content_type="text/plain; charset=utf-8",
        )
    else:
        response = HttpResponse(
            "Too many requests.\n", status=429, content_type="text/plain; charset=utf-8"
        )
    response["Retry-After"] = str(max(1, math.ceil(decision.retry_after)))
    return response


def check(
    request: HttpRequest, limiter: RateLimiter, scope: str, ident: str, *, cost: int = 1
) -> HttpResponse | None:
    """Decide on a request; the 429/503 response to send if it is rejected, else None."""
    return _rejection(request, scope, limiter.hit(scope, ident, cost=cost))


async def acheck(
    request: HttpRequest, limiter: RateLimiter, scope: str, ident: str, *, cost: int = 1
) -> HttpResponse | None:
    """:func:`check` on the running event loop (``RateLimiter.ahit``)."""
    return _rejection(request, scope, await limiter.ahit(scope, ident, cost=cost))


def _rejection(request: HttpRequest, scope: str, decision: Decision) -> HttpResponse | None:
    record_decision(request, scope, decision)
    if decision.allowed:
        return None
    response = limited_response(decision)
    add_headers(request, response)
    return response


def ratelimit(
    rate: str,
    *,
    key: str | KeyFunc = "user_or_ip",
    scope: str | None = None,
    method: Collection[str] | None = None,
    block: bool = True,
    algorithm: str | None = None,
    fail_open: bool | None = None,
    cost: int = 1,
) -> Callable[[View], View]:
    """Limit a view: ``@ratelimit("5/min;20/hour", key="ip", method=["POST"], fail_open=False)``.

    ``key`` is ``"ip"``, ``"user_or_ip"`` or a callable of the request returning the identity
    (None: not limited). ``scope`` names the limit (default: the view's dotted path); views that
    share a scope share a budget. ``method`` limits only those HTTP methods. With ``block=False``
    the view runs anyway and sees ``request.limited``. On an ``async def`` view the decision is
    made on the event loop (``RateLimiter.ahit``); ``key`` may then be an ``async def`` too.
    """
    rates = parse_rates(rate)  # a bad rate fails at import, not at the first request
    if isinstance(key, str) and key not in KEYS:
        raise ImproperlyConfigured(f"Unknown ratelimit key {key!r}; use {', '.join(KEYS)}.")
    key_func = KEYS[key] if isinstance(key, str) else key
    methods = None if method is None else {m.upper() for m in method}

    def decorate(view: View) -> View:
        name = scope or f"{view.__module__}.{view.__qualname__}"

        def applies(request: HttpRequest) -> bool:
            request.limited = False  # type: ignore[attr-defined]
            return methods is None or request.method in methods

        def admitted(request: HttpRequest, rejection: HttpResponse | None) -> bool:
            request.limited = rejection is not None  # type: ignore[attr-defined]
            return rejection is None or not block

        if inspect.iscoroutinefunction(view):
            # Decided on the event loop (RateLimiter.ahit); a key function may be sync (it
            # then runs on the loop: it must not block) or ``async def``.
            akey = AKEYS[key] if isinstance(key, str) else key

            @functools.wraps(view)
            async def async_wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
                if applies(request):
                    ident = akey(request)
                    if inspect.isawaitable(ident):
                        ident = await ident
                    if ident is not None:
                        limiter = shared_limiter(rates, algorithm, None, fail_open)
                        rejection = await acheck(request, limiter, name, ident, cost=cost)
                        if not admitted(request, rejection):
                            return rejection
                response = await view(request, *args, **kwargs)
                add_headers(request, response)
                return response

            return cast(View, async_wrapper)

        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            if applies(request):
                ident = key_func(request)
                if ident is not None:
                    limiter = shared_limiter(rates, algorithm, None, fail_open)
                    rejection = check(request, limiter, name, ident, cost=cost)
                    if not admitted(request, rejection):
                        return cast(HttpResponse, rejection)
            response = view(request, *args, **kwargs)
            add_headers(request, response)
            return response

        return cast(View, wrapper)

    return decorate


class RateLimitMiddleware:
    """Adds the RateLimit headers of every limit checked during a request (DRF's included) and,
    with ``REDISKIT["THROTTLE"]["MIDDLEWARE_RATE"]``, applies a site-wide limit per user or IP.

    Sync and async capable: under ASGI with an async chain it decides on the event loop
    (``RateLimiter.ahit``, the user from ``request.auser()``), with no thread per request.
    """

    scope = "site"
    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self.__acall__(request)
        rate = throttle_settings()["MIDDLEWARE_RATE"]
        if rate:
            rejection = check(request, shared_limiter(rate), self.scope, user_or_ip(request))
            if rejection is not None:
                return rejection
        response = self.get_response(request)
        add_headers(request, response)
        return response

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        rate = throttle_settings()["MIDDLEWARE_RATE"]
        if rate:
            ident = await auser_or_ip(request)
            rejection = await acheck(request, shared_limiter(rate), self.scope, ident)
            if rejection is not None:
                return rejection
        response = await self.get_response(request)
        add_headers(request, response)
        return response  # type: ignore[no-any-return]
