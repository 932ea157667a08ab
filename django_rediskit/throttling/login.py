"""Login limits: one setting guards every ``django.contrib.auth`` login against password guessing.

``REDISKIT["LOGIN_RATES"] = {"ip": "20/min", "username": "5/min;30/h"}`` limits *failed* logins
per client address and per user name, wherever they come from: the admin's login, ``LoginView``,
DRF's ``obtain_auth_token`` and any other ``authenticate()`` call.

How it fits Django's own machinery (nothing is patched):

* :class:`LoginRateLimitBackend`, listed **first** in ``AUTHENTICATION_BACKENDS``, runs before
  any backend verifies a password. It *peeks* the limiters (one atomic Lua call each, nothing
  consumed) and, when a limit is reached, raises ``PermissionDenied``: ``authenticate()`` stops
  trying the other backends and returns None, so the password is never checked and every caller
  keeps Django's contract (a refused login looks like a failed one to code that knows nothing of
  the kit). Prepending the backend from ``AppConfig.ready()`` would work too, but would rewrite a
  setting behind the user's back (and depend on app order); an explicit line, with a system check
  that warns when it is missing or not first, is easier to audit.
* Failures are counted from Django's ``user_login_failed`` signal, so a successful login
  consumes nothing, and an attempt refused by the guard itself is not counted again.
* :class:`LoginRateLimitMiddleware` turns a refused attempt into a clear answer: a "Too many
  login attempts, try again in N s" page (or JSON for an API such as DRF's token view) with
  status 429 and ``Retry-After``. Without it the refusal still holds; the form just says the
  credentials were wrong.

Identities: the client address (``REDISKIT["THROTTLE"]["NUM_PROXIES"]`` honoured, as by every
throttle) and the user name, case-folded so ``Admin`` and ``admin`` share a budget. Both are
keyed hashes in Redis keys (``ident_digest``), and logs name the user by that digest only: people
type their password into the user name field.

Redis down: refused (fail closed, 503 + ``Retry-After``) unless ``REDISKIT["LOGIN_FAIL_OPEN"]``
is True. A login limit that disappears during an outage is a limit an attacker can switch off.

Known bound: the check and the count are two steps (the count must wait for the password check),
so attempts already past the check when the limit is reached are still verified: at most one
extra guess per connection that an attacker keeps in flight at that moment. The count itself is
atomic and never exceeds the limit.
"""

from __future__ import annotations

import contextvars
import functools
import hashlib
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import BaseBackend
from django.contrib.auth.signals import user_login_failed
from django.core.exceptions import ImproperlyConfigured, PermissionDenied
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.response import HttpResponseBase
from django.template.loader import render_to_string

from django_rediskit.conf import get_setting
from django_rediskit.throttling.limiter import Decision, RateLimiter, shared_limiter
from django_rediskit.throttling.rates import Rate, parse_rates
from django_rediskit.throttling.signals import login_rate_limited
from django_rediskit.throttling.views import client_ip

logger = logging.getLogger("django_rediskit.throttling.login")

BACKEND_PATH: Final = "django_rediskit.throttling.login.LoginRateLimitBackend"
MIDDLEWARE_PATH: Final = "django_rediskit.throttling.login.LoginRateLimitMiddleware"
TEMPLATE: Final = "django_rediskit/login_rate_limited.html"
#: LOGIN_RATES key -> throttle scope (the scopes keep the two budgets apart in Redis).
SCOPES: Final = {"ip": "login-ip", "username": "login-user"}
_REFUSAL_ATTR: Final = "_rediskit_login_refusal"
#: Set by the backend when it refuses, read by the failure receiver in the same call chain, so
#: the ``user_login_failed`` that ``authenticate()`` sends after a refusal is not counted.
_refusing: contextvars.ContextVar[bool] = contextvars.ContextVar("rediskit_login_refusing")


@dataclass(frozen=True, slots=True)
class LoginLimits:
    """The parsed ``LOGIN_RATES``: a limiter per identity kind, and the failure policy."""

    limiters: dict[str, RateLimiter]
    fail_open: bool


def parse_login_rates(value: Any) -> dict[str, tuple[Rate, ...]]:
    """Validate ``LOGIN_RATES``: a dict of ``"ip"`` and/or ``"username"`` to rate strings."""
    if not isinstance(value, Mapping) or not value:
        raise ImproperlyConfigured(
            'REDISKIT["LOGIN_RATES"] must be None or a non-empty dict such as '
            '{"ip": "20/min", "username": "5/min;30/h"}, not ' + f"{value!r:.100}."
        )
    unknown = sorted(set(map(str, value)) - set(SCOPES))
    if unknown:
        raise ImproperlyConfigured(
            f'REDISKIT["LOGIN_RATES"] has unknown key(s) {", ".join(map(repr, unknown))}; '
            f"use {' and/or '.join(map(repr, SCOPES))}."
        )
    parsed: dict[str, tuple[Rate, ...]] = {}
    for kind, text in value.items():
        if not isinstance(text, str):
            raise ImproperlyConfigured(
                f'REDISKIT["LOGIN_RATES"][{kind!r}] must be a rate string such as "5/min".'
            )
        try:
            parsed[kind] = parse_rates(text)
        except ImproperlyConfigured as exc:
            raise ImproperlyConfigured(f'REDISKIT["LOGIN_RATES"][{kind!r}]: {exc}') from None
        if not parsed[kind]:
            raise ImproperlyConfigured(f'REDISKIT["LOGIN_RATES"][{kind!r}] holds no rate.')
    return parsed


def _fail_open() -> bool:
    value = get_setting("LOGIN_FAIL_OPEN")
    if not isinstance(value, bool):
        raise ImproperlyConfigured('REDISKIT["LOGIN_FAIL_OPEN"] must be True or False.')
    return value


@functools.cache
def login_limits() -> LoginLimits | None:
    """The configured limits, built once per process (None when ``LOGIN_RATES`` is unset).

    Read on every login attempt; forgotten when settings change (tests, ``override_settings``).
    """
    value = get_setting("LOGIN_RATES")
    if value is None:
        return None
    fail_open = _fail_open()
    limiters = {
        kind: shared_limiter(rates, None, None, fail_open)
        for kind, rates in parse_login_rates(value).items()
    }
    return LoginLimits(limiters, fail_open)


@receiver(setting_changed)
def _forget_limits(*, setting: str, **kwargs: Any) -> None:
    if setting in ("REDISKIT", "CACHES", "SECRET_KEY"):
        login_limits.cache_clear()


def _http_request(request: Any) -> HttpRequest | None:
    """The Django request behind ``request``: DRF passes its own ``Request`` wrapper, and the
    middleware only ever sees the ``HttpRequest`` it wraps."""
    inner = getattr(request, "_request", request)
    return inner if isinstance(inner, HttpRequest) else None


def _username(credentials: Mapping[str, Any]) -> str | None:
    field = get_user_model().USERNAME_FIELD
    value = credentials.get(field, credentials.get("username"))
    if value is None or value == "":
        return None
    return str(value).strip().casefold()


#: Identities longer than this are hashed first: the limiter caches identity digests, and an
#: attacker must not make it hold thousands of megabyte-long user names.
_MAX_IDENT: Final = 256


def _bounded(ident: str) -> str:
    if len(ident) <= _MAX_IDENT:
        return ident
    return "sha256:" + hashlib.sha256(ident.encode("utf-8", "surrogatepass")).hexdigest()


def identities(request: HttpRequest | None, credentials: Mapping[str, Any]) -> dict[str, str]:
    """``{"ip": <address>, "username": <folded name>}``, each only when it can be known."""
    found: dict[str, str] = {}
    if request is not None:
        found["ip"] = _bounded(client_ip(request))
    username = _username(credentials)
    if username is not None:
        found["username"] = _bounded(username)
    return found


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a login attempt was refused, kept on the request for the middleware."""

    #: the identity kinds ("ip", "username") whose limit was reached
    kinds: tuple[str, ...]
    #: seconds until an attempt would be looked at again
    retry_after: float
    #: True when Redis could not be asked and the fail-closed policy refused
    degraded: bool

    @property
    def retry_after_header(self) -> str:
        return str(max(1, math.ceil(self.retry_after)))


def check_attempt(request: HttpRequest | None, credentials: Mapping[str, Any]) -> Refusal | None:
    """Whether a login attempt may be verified: None, or the refusal. Consumes nothing."""
    limits = login_limits()
    if limits is None:
        return None
    refused: list[tuple[str, Decision]] = []
    for kind, ident in identities(request, credentials).items():
        limiter = limits.limiters.get(kind)
        if limiter is None:
            continue
        decision = limiter.peek(SCOPES[kind], ident)
        if not decision.allowed:
            refused.append((kind, decision))
    if not refused:
        return None
    return Refusal(
        kinds=tuple(kind for kind, _ in refused),
        retry_after=max(decision.retry_after for _, decision in refused),
        degraded=any(decision.degraded for _, decision in refused),
    )


def record_failure(request: HttpRequest | None, credentials: Mapping[str, Any]) -> None:
    """Count one failed login against each identity (atomic; never past the limit)."""
    limits = login_limits()
    if limits is None:
        return
    for kind, ident in identities(request, credentials).items():
        limiter = limits.limiters.get(kind)
        if limiter is not None:
            limiter.hit(SCOPES[kind], ident)


def _describe(request: HttpRequest | None, credentials: Mapping[str, Any]) -> str:
    from django_rediskit.throttling.limiter import ident_digest

    found = identities(request, credentials)
    parts = []
    if "ip" in found:
        parts.append(f"ip={found['ip']}")
    if "username" in found:
        parts.append(f"user#{ident_digest(found['username'])}")
    return " ".join(parts) or "no identity"


class LoginRateLimitBackend(BaseBackend):
    """An authentication backend that authenticates nobody: it refuses attempts over the limit.

    Put it first in ``AUTHENTICATION_BACKENDS``, so the check runs before any password is
    verified. ``PermissionDenied`` is Django's documented way for a backend to stop
    ``authenticate()`` at once.
    """

    def authenticate(self, request: Any, **credentials: Any) -> None:
        _refusing.set(False)
        http_request = _http_request(request)
        refusal = check_attempt(http_request, credentials)
        if refusal is None:
            return None
        _refusing.set(True)
        if http_request is not None:
            setattr(http_request, _REFUSAL_ATTR, refusal)
        username = _username(credentials)
        logger.warning(
            "Login refused (%s): %s; retry in %s s",
            "login limits unavailable, fail closed"
            if refusal.degraded
            else f"too many failures for {'+'.join(refusal.kinds)}",
            _describe(http_request, credentials),
            refusal.retry_after_header,
        )
        login_rate_limited.send(
            sender=type(self),
            request=http_request,
            username=username,
            kinds=refusal.kinds,
            retry_after=refusal.retry_after,
            degraded=refusal.degraded,
        )
        raise PermissionDenied("Too many login attempts.")

    # BaseBackend's permission methods grant nothing; it knows no user either.
    def get_user(self, user_id: Any) -> None:
        return None


def _on_login_failed(
    sender: Any, credentials: Mapping[str, Any] | None = None, request: Any = None, **kwargs: Any
) -> None:
    if _refusing.get(False):
        _refusing.set(False)  # the guard refused this attempt: no password was checked
        return
    # Other code may send the signal too, with fewer arguments: count what can be known.
    record_failure(_http_request(request), credentials or {})


def connect() -> None:
    """Count failures (called from ``AppConfig.ready`` when django.contrib.auth is installed).

    Always connected: the receiver costs nothing while ``LOGIN_RATES`` is None, and tests may
    turn the setting on later.
    """
    user_login_failed.connect(_on_login_failed, dispatch_uid="django_rediskit.login_failed")


def refusal_of(request: HttpRequest) -> Refusal | None:
    """The refusal the guard recorded on this request, if any."""
    refusal = request.__dict__.get(_REFUSAL_ATTR)
    return refusal if isinstance(refusal, Refusal) else None


def message(refusal: Refusal) -> str:
    if refusal.degraded:
        return (
            "Logins are paused: login attempts cannot be checked right now. "
            f"Try again in {refusal.retry_after_header} s."
        )
    return f"Too many login attempts, try again in {refusal.retry_after_header} s."


def refusal_response(request: HttpRequest, refusal: Refusal, *, json: bool) -> HttpResponse:
    """429 (limit reached) or 503 (fail closed), with ``Retry-After``, as HTML or JSON."""
    status = 503 if refusal.degraded else 429
    text = message(refusal)
    response: HttpResponse
    if json:
        response = JsonResponse(
            {"detail": text, "retry_after": int(refusal.retry_after_header)}, status=status
        )
    else:
        html = render_to_string(
            TEMPLATE,
            {
                "message": text,
                "retry_after": refusal.retry_after_header,
                "degraded": refusal.degraded,
            },
            request=request,
        )
        response = HttpResponse(html, status=status)
    response["Retry-After"] = refusal.retry_after_header
    return response


def _wants_json(request: HttpRequest, response: HttpResponseBase) -> bool:
    content_type = str(response.get("Content-Type", ""))
    if "json" in content_type:
        return True
    accept = request.headers.get("accept", "")
    return "json" in accept and "html" not in accept


class LoginRateLimitMiddleware:
    """Answers a login attempt that the guard refused with 429 / 503 and ``Retry-After``.

    The view has already run (it rendered "wrong credentials", or DRF's 400): that answer is
    replaced, so the visitor learns that the limit, not the password, is the reason.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        refusal = refusal_of(request)
        if refusal is None:
            return response
        return refusal_response(request, refusal, json=_wants_json(request, response))
