"""System checks: configuration mistakes reported by ``manage.py check``, not at first request."""

from __future__ import annotations

import difflib
from typing import Any

from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured

from django_rediskit import conf
from django_rediskit.connection import BACKEND_PATH, uses_rediskit


@checks.register(checks.Tags.caches)
def check_cache_options(**kwargs: Any) -> list[checks.CheckMessage]:
    """Unknown options (typos), unusable serializers/compressors, signing without a secret."""
    from django_rediskit.cache.clients import build_codec
    from django_rediskit.cache.options import KNOWN_OPTIONS, CacheOptions
    from django_rediskit.connection import validate_url

    messages: list[checks.CheckMessage] = []
    for alias, cache_conf in getattr(settings, "CACHES", {}).items():
        if not uses_rediskit(cache_conf):
            continue
        options = cache_conf.get("OPTIONS", {})
        for name in sorted(set(options) - KNOWN_OPTIONS):
            close = difflib.get_close_matches(name, KNOWN_OPTIONS, n=1)
            messages.append(
                checks.Warning(
                    f"CACHES[{alias!r}]['OPTIONS'] has unknown option {name!r}; it is ignored.",
                    hint=f"Did you mean {close[0]!r}?"
                    if close
                    else "See the configuration reference.",
                    id="django_rediskit.W001",
                )
            )
        try:
            build_codec(options)
            CacheOptions.parse(options)
            validate_url(cache_conf.get("LOCATION", ""))
        except ImproperlyConfigured as exc:
            messages.append(checks.Error(f"CACHES[{alias!r}]: {exc}", id="django_rediskit.E001"))
        breaker = options.get("CIRCUIT_BREAKER", {})
        if breaker is not False and not (
            isinstance(breaker, dict) and set(breaker) <= {"FAILURE_THRESHOLD", "RECOVERY_TIME"}
        ):
            messages.append(
                checks.Error(
                    f"CACHES[{alias!r}]['OPTIONS']['CIRCUIT_BREAKER'] must be False or a dict "
                    "with FAILURE_THRESHOLD and/or RECOVERY_TIME.",
                    id="django_rediskit.E002",
                )
            )
    return messages


@checks.register(checks.Tags.caches)
def check_feature_alias(**kwargs: Any) -> list[checks.CheckMessage]:
    """The alias that the kit's features use must exist and use our backend."""
    messages: list[checks.CheckMessage] = []
    try:
        alias = conf.get_setting("CACHE_ALIAS")
    except ImproperlyConfigured as exc:
        return [checks.Error(str(exc), id="django_rediskit.E003")]
    for name in conf.unknown_settings():
        close = difflib.get_close_matches(name, conf.DEFAULTS, n=1)
        messages.append(
            checks.Warning(
                f"settings.REDISKIT has unknown key {name!r}; it is ignored.",
                hint=f"Did you mean {close[0]!r}?" if close else None,
                id="django_rediskit.W002",
            )
        )
    cache_conf = getattr(settings, "CACHES", {}).get(alias)
    if cache_conf is None:
        messages.append(
            checks.Error(
                f"REDISKIT['CACHE_ALIAS'] is {alias!r}, which CACHES does not define.",
                id="django_rediskit.E004",
            )
        )
    elif not uses_rediskit(cache_conf):
        messages.append(
            checks.Error(
                f"CACHES[{alias!r}] uses {cache_conf.get('BACKEND')!r}; the features of "
                f"django-rediskit need {BACKEND_PATH!r}.",
                id="django_rediskit.E005",
            )
        )
    return messages


@checks.register(checks.Tags.models)
def check_invalidation_managers(
    app_configs: Any = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """Registered models whose bulk writes would skip invalidation (E201 / E202)."""
    from django_rediskit.invalidation.checks import check_registered_models

    return check_registered_models(app_configs)


@checks.register()
def check_login_limits(**kwargs: Any) -> list[checks.CheckMessage]:
    """LOGIN_RATES must parse, and its guard must be installed where it can act."""
    from django_rediskit.throttling import login

    try:
        value = conf.get_setting("LOGIN_RATES")
        fail_open = conf.get_setting("LOGIN_FAIL_OPEN")
        if value is None:
            return []
        login.parse_login_rates(value)
    except ImproperlyConfigured as exc:
        return [checks.Error(str(exc), id="django_rediskit.E620")]
    messages: list[checks.CheckMessage] = []
    if not isinstance(fail_open, bool):
        messages.append(
            checks.Error(
                'REDISKIT["LOGIN_FAIL_OPEN"] must be True or False.', id="django_rediskit.E621"
            )
        )
    backends = list(getattr(settings, "AUTHENTICATION_BACKENDS", []))
    if not backends or backends[0] != login.BACKEND_PATH:
        messages.append(
            checks.Warning(
                'REDISKIT["LOGIN_RATES"] is set but login attempts are not checked: the guard '
                "must be the first authentication backend, so it runs before any password is "
                "verified.",
                hint=f"AUTHENTICATION_BACKENDS = [{login.BACKEND_PATH!r}, *the others].",
                id="django_rediskit.W620",
            )
        )
    if login.MIDDLEWARE_PATH not in getattr(settings, "MIDDLEWARE", []):
        messages.append(
            checks.Warning(
                'REDISKIT["LOGIN_RATES"] is set but LoginRateLimitMiddleware is not in '
                "MIDDLEWARE: refused logins will look like wrong passwords instead of a 429 "
                '"too many attempts" answer.',
                hint=f"Add {login.MIDDLEWARE_PATH!r} to MIDDLEWARE.",
                id="django_rediskit.W621",
            )
        )
    return messages


@checks.register(checks.Tags.caches)
def check_messaging(**kwargs: Any) -> list[checks.CheckMessage]:
    """REDISKIT["MESSAGING"]: known keys, importable queue handlers, timeouts that make sense."""
    from django_rediskit.messaging.checks import messaging_messages

    return messaging_messages()
