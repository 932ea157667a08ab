"""Redis down: reads fall back to an anonymous session, writes answer 503, nothing is lost."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings
from django.test import Client, override_settings

from django_rediskit.sessions import list_devices
from django_rediskit.sessions.backend import SessionStore
from django_rediskit.sessions.index import SessionStoreUnavailable
from tests.servers import RedisServer
from tests.sessions.test_devices import login

pytestmark = pytest.mark.django_db


@pytest.fixture
def own_redis(private_redis: RedisServer) -> Iterator[RedisServer]:
    """Sessions on a server of this test's own, under a fresh alias (so a fresh breaker)."""
    alias = f"sessions-{uuid.uuid4().hex[:8]}"
    caches = {
        **settings.CACHES,
        alias: {
            "BACKEND": "django_rediskit.cache.RedisCache",
            "LOCATION": private_redis.url,
            "KEY_PREFIX": "outage",
            "OPTIONS": {
                "SOCKET_CONNECT_TIMEOUT": 0.5,
                "SOCKET_TIMEOUT": 0.5,
                "CIRCUIT_BREAKER": {"FAILURE_THRESHOLD": 2, "RECOVERY_TIME": 1.0},
            },
        },
    }
    with override_settings(CACHES=caches, REDISKIT={"SESSIONS": {"CACHE_ALIAS": alias}}):
        yield private_redis


def test_read_during_outage_is_anonymous_and_keeps_cookie(
    own_redis: RedisServer, make_user: Any, caplog: pytest.LogCaptureFixture
) -> None:
    user = make_user()
    client = login(user)
    assert client.get("/whoami/").content.decode() == user.get_username()
    own_redis.stop()
    with caplog.at_level(logging.WARNING, logger="django_rediskit.sessions"):
        response = client.get("/whoami/")
    assert response.status_code == 200
    assert response.content == b"anonymous"
    assert "sessionid" not in response.cookies  # not deleted: the user is not logged out
    assert "Redis unavailable" in caplog.text


def test_write_during_outage_is_a_clean_503(own_redis: RedisServer, make_user: Any) -> None:
    user = make_user()
    client = Client(raise_request_exception=False)
    client.get("/touch/")
    own_redis.stop()
    response = client.get("/touch/")
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert b"Traceback" not in response.content
    login_attempt = Client().post(
        "/login/", {"username": user.get_username(), "password": "pw-123456"}
    )
    assert login_attempt.status_code == 503  # raised in the view by the login receiver
    assert b"Traceback" not in login_attempt.content


def test_session_read_in_outage_is_never_written_back(own_redis: RedisServer) -> None:
    store = SessionStore()
    store["cart"] = [1, 2, 3]
    store.save()
    own_redis.stop()
    reader = SessionStore(store.session_key)
    assert reader.get("cart") is None  # anonymous fallback
    own_redis.start()
    reader["cart"] = []
    with pytest.raises(SessionStoreUnavailable):
        reader.save()  # would otherwise overwrite the real session with partial data


def test_breaker_makes_outage_cheap_and_recovers(own_redis: RedisServer) -> None:
    import time

    store = SessionStore()
    store["a"] = 1
    store.save()
    key = store.session_key
    own_redis.stop()
    for _ in range(3):
        SessionStore(key).load()
    started = time.monotonic()
    for _ in range(50):
        assert SessionStore(key).load() == {}
    assert time.monotonic() - started < 2.0  # the breaker answers without connecting
    own_redis.start()
    time.sleep(1.2)  # RECOVERY_TIME
    fresh = SessionStore()
    fresh["b"] = 2
    fresh.save()
    assert SessionStore(fresh.session_key).load() == {"b": 2}


def test_device_api_raises_clear_error_when_down(own_redis: RedisServer, make_user: Any) -> None:
    from redis.exceptions import ConnectionError as RedisConnectionError

    user = make_user()
    own_redis.stop()
    with pytest.raises(RedisConnectionError):
        list_devices(user)


def test_restart_loses_sessions_cleanly_and_scripts_reload(
    own_redis: RedisServer, make_user: Any
) -> None:
    user = make_user()
    client = login(user)
    own_redis.restart()  # nothing persisted: every session is gone, and so are the scripts
    for _ in range(3):  # the first call may meet a pooled connection to the dead process
        response = client.get("/whoami/")
        if response.content == b"anonymous":
            break
    assert response.content == b"anonymous"
    again = login(user)
    assert again.get("/touch/").status_code == 200  # pipelined EVALSHA after SCRIPT FLUSH
    own_redis.client().script_flush()
    assert again.get("/touch/").content == b"2"  # NOSCRIPT: loaded and replayed once
    assert len(list_devices(user)) == 1
