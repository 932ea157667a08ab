"""System checks of the session engine."""

from __future__ import annotations

from django.conf import settings
from django.test import override_settings

from django_rediskit.sessions.checks import check_sessions


def ids() -> list[str]:
    return [message.id or "" for message in check_sessions()]


def test_clean_configuration_passes() -> None:
    assert ids() == []


def test_other_engine_is_not_checked() -> None:
    with override_settings(
        SESSION_ENGINE="django.contrib.sessions.backends.db", REDISKIT={"SESSIONS": {"X": 1}}
    ):
        assert ids() == []


def test_bad_options_alias_and_resolver_are_errors() -> None:
    for sessions in (
        {"DEVICE_LIMIT": -3},
        {"CACHE_ALIAS": "missing"},
        {"IP_RESOLVER": "no.such.module.func"},
        {"LEGACY_CACHE_ALIAS": "missing"},
    ):
        with override_settings(REDISKIT={"SESSIONS": sessions}):
            assert ids() == ["django_rediskit.E102"], sessions


def test_djangos_middleware_is_reported() -> None:
    middleware = ["django.contrib.sessions.middleware.SessionMiddleware", *settings.MIDDLEWARE[1:]]
    with override_settings(MIDDLEWARE=middleware):
        assert ids() == ["django_rediskit.I101"]
