"""Lazy migration: sessions written by Django's cache engine survive the switch to ours."""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings
from django.contrib.sessions.backends.cache import SessionStore as DjangoCacheStore
from django.core.cache import caches
from django.test import Client, override_settings

from django_rediskit.sessions import list_devices
from django_rediskit.sessions.backend import SessionStore
from django_rediskit.sessions.envelope import Envelope
from django_rediskit.sessions.index import data_key, session_backend

pytestmark = pytest.mark.django_db
LEGACY = {"SESSIONS": {"LEGACY_CACHE_ALIAS": "other"}}
DJANGO_CACHE_ENGINE = "django.contrib.sessions.backends.cache"


def test_every_legacy_session_survives_and_is_converted(rclient: Any) -> None:
    with override_settings(SESSION_ENGINE=DJANGO_CACHE_ENGINE, SESSION_CACHE_ALIAS="other"):
        legacy = []
        for i in range(50):
            store = DjangoCacheStore()
            store["i"] = i
            store.save()
            legacy.append(store.session_key)
    with override_settings(REDISKIT=LEGACY):
        for i, key in enumerate(legacy):
            store = SessionStore(key)
            assert store["i"] == i
            assert store.session_key == key
            raw = rclient.get(data_key(session_backend(), key))
            assert Envelope.parse(raw) is not None
            assert caches["other"].get(DjangoCacheStore.cache_key_prefix + key) is None
        assert SessionStore(legacy[0])["i"] == 0  # second read: our format, no legacy lookup


def test_logged_in_user_stays_logged_in_across_engine_switch(make_user: Any) -> None:
    user = make_user()
    client = Client()
    with override_settings(
        SESSION_ENGINE=DJANGO_CACHE_ENGINE,
        SESSION_CACHE_ALIAS="other",
        MIDDLEWARE=[
            "django.contrib.sessions.middleware.SessionMiddleware",
            *settings.MIDDLEWARE[1:],
        ],
    ):
        client.post("/login/", {"username": user.get_username(), "password": "pw-123456"})
        assert client.get("/whoami/").content.decode() == user.get_username()
    switched = Client()  # a test client keeps the middleware it loaded first: use a new one
    switched.cookies = client.cookies
    with override_settings(REDISKIT=LEGACY):
        assert switched.get("/whoami/").content.decode() == user.get_username()
        [device] = list_devices(user)
        assert device.device_id


def test_without_legacy_alias_old_sessions_are_not_read() -> None:
    with override_settings(SESSION_ENGINE=DJANGO_CACHE_ENGINE, SESSION_CACHE_ALIAS="other"):
        store = DjangoCacheStore()
        store["x"] = 1
        store.save()
    assert SessionStore(store.session_key).get("x") is None


def test_legacy_value_that_is_not_a_dict_is_ignored() -> None:
    key = "b" * 32
    caches["other"].set(DjangoCacheStore.cache_key_prefix + key, ["not", "a", "dict"])
    with override_settings(REDISKIT=LEGACY):
        assert SessionStore(key).load() == {}


def test_legacy_session_over_a_deny_cap_is_not_migrated() -> None:
    with override_settings(SESSION_ENGINE=DJANGO_CACHE_ENGINE, SESSION_CACHE_ALIAS="other"):
        legacy = DjangoCacheStore()
        legacy["_auth_user_id"] = "5"
        legacy.save()
    existing = SessionStore()
    existing["_auth_user_id"] = "5"
    existing.save()
    limits = {"SESSIONS": {**LEGACY["SESSIONS"], "DEVICE_LIMIT": 1, "DEVICE_LIMIT_POLICY": "deny"}}
    with override_settings(REDISKIT=limits):
        assert SessionStore(legacy.session_key).load() == {}
    assert caches["other"].get(DjangoCacheStore.cache_key_prefix + legacy.session_key) is not None
    assert not SessionStore().exists(legacy.session_key)
