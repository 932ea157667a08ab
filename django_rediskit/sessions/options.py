"""The ``REDISKIT["SESSIONS"]`` section: ``conf.get_section`` (defaults merged with the site's
values), then validated here, unknown keys included.

Read on every use (a dict merge, nanoseconds) rather than cached, so ``override_settings`` in
tests and settings reloads take effect without a restart hook.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest
from django.utils.module_loading import import_string

from django_rediskit import conf

ENGINE = "django_rediskit.sessions.backend"
POLICIES = ("evict_oldest", "deny")
PASSWORD_MODES = ("others", "all", None)


@dataclass(frozen=True)
class SessionOptions:
    cache_alias: str
    activity_resolution: float
    device_limit: int | None
    device_limit_policy: str
    absolute_timeout: float | None
    revoke_on_password_change: str | None
    revoke_on_deactivate: bool
    ip_resolver: str
    legacy_cache_alias: str | None
    user_admin: bool

    def resolve_ip(self, request: HttpRequest) -> str:
        resolver: Callable[[HttpRequest], str] = import_string(self.ip_resolver)
        return str(resolver(request) or "")[:64]


def engine_in_use() -> bool:
    """Whether this engine is the SESSION_ENGINE (receivers and admin hooks do nothing else)."""
    return str(getattr(settings, "SESSION_ENGINE", "")) == ENGINE


def _number(section: dict[str, Any], name: str, *, allow_none: bool) -> Any:
    value = section[name]
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ImproperlyConfigured(
            f"REDISKIT['SESSIONS'][{name!r}] must be a non-negative number"
            + (" or None" if allow_none else "")
            + f", not {value!r}."
        )
    return value


def get_options() -> SessionOptions:
    """The merged, validated section; raises ImproperlyConfigured naming the bad key."""
    section = conf.get_section("SESSIONS")  # defaults filled in; raises unless a dict
    unknown = sorted(set(section) - set(conf.DEFAULTS["SESSIONS"]))
    if unknown:
        raise ImproperlyConfigured(f"REDISKIT['SESSIONS'] has unknown keys: {', '.join(unknown)}.")
    limit = _number(section, "DEVICE_LIMIT", allow_none=True)
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise ImproperlyConfigured("REDISKIT['SESSIONS']['DEVICE_LIMIT'] must be >= 1 or None.")
    if section["DEVICE_LIMIT_POLICY"] not in POLICIES:
        raise ImproperlyConfigured(
            f"REDISKIT['SESSIONS']['DEVICE_LIMIT_POLICY'] must be one of {POLICIES}."
        )
    if section["REVOKE_ON_PASSWORD_CHANGE"] not in PASSWORD_MODES:
        raise ImproperlyConfigured(
            "REDISKIT['SESSIONS']['REVOKE_ON_PASSWORD_CHANGE'] must be 'others', 'all' or None."
        )
    alias = section["CACHE_ALIAS"] or conf.get_setting("CACHE_ALIAS")
    return SessionOptions(
        cache_alias=str(alias),
        activity_resolution=float(_number(section, "ACTIVITY_RESOLUTION", allow_none=False)),
        device_limit=limit,
        device_limit_policy=str(section["DEVICE_LIMIT_POLICY"]),
        absolute_timeout=_number(section, "ABSOLUTE_TIMEOUT", allow_none=True),
        revoke_on_password_change=section["REVOKE_ON_PASSWORD_CHANGE"],
        revoke_on_deactivate=bool(section["REVOKE_ON_DEACTIVATE"]),
        ip_resolver=str(section["IP_RESOLVER"]),
        legacy_cache_alias=section["LEGACY_CACHE_ALIAS"],
        user_admin=bool(section["USER_ADMIN"]),
    )


class _Probe:
    """Any class instance: pickle serializes it, a JSON serializer refuses it."""


@functools.cache
def check_serializer(serializer: type) -> None:
    """Refuse a serializer that can carry code (pickle): it would make Redis write access
    equivalent to code execution in Django. Decided once per class, by behaviour and by name."""
    name = f"{serializer.__module__}.{serializer.__qualname__}".lower()
    try:
        serializer().dumps({"probe": _Probe()})
    except Exception:  # refusing arbitrary objects is the safe outcome
        accepts_objects = False
    else:
        accepts_objects = True
    if accepts_objects or "pickle" in name:
        raise ImproperlyConfigured(
            f"SESSION_SERIALIZER {name!r} can serialize arbitrary objects (pickle-like); the "
            "django_rediskit session engine only accepts data-only serializers such as "
            "django.core.signing.JSONSerializer."
        )
