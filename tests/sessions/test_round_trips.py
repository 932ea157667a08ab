"""Round trips per request, counted at the redis-py client (every command, every pipeline)."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from django_rediskit.sessions import backend as session_backend_module
from tests.sessions.conftest import CommandLog
from tests.sessions.test_devices import login, sid

pytestmark = pytest.mark.django_db
WRITES = {"SET", "SETEX", "PSETEX", "EVALSHA", "EVAL", "PEXPIRE", "EXPIRE", "DEL", "UNLINK"}


def writes(log: CommandLog) -> list[str]:
    return [name for name in log.commands if name in WRITES]


@pytest.mark.standalone_only
def test_anonymous_request_is_one_get_and_no_write(command_log: CommandLog) -> None:
    client = Client()
    client.get("/touch/")  # creates an anonymous session with data
    command_log.clear()
    for _ in range(5):
        assert client.get("/read/").content == b"1"
    assert command_log.trips == [["GET"]] * 5


def test_request_without_cookie_touches_nothing(command_log: CommandLog) -> None:
    assert Client().get("/read/").content == b"none"
    assert Client().get("/whoami/").content == b"anonymous"
    assert command_log.trips == []


@pytest.mark.standalone_only
def test_anonymous_write_is_one_set(command_log: CommandLog) -> None:
    client = Client()
    client.get("/touch/")
    assert command_log.trips == [["SET"]]  # SET NX, no EXISTS probe before it
    command_log.clear()
    client.get("/touch/")
    assert command_log.trips == [["GET"], ["SET"]]  # SET XX


@pytest.mark.standalone_only
def test_authenticated_write_is_one_pipelined_trip(make_user: Any, command_log: CommandLog) -> None:
    client = login(make_user())
    command_log.clear()
    client.get("/touch/")
    assert command_log.trips == [["GET"], ["EVALSHA", "SET"]]


@pytest.mark.standalone_only
def test_hundred_requests_in_a_minute_write_activity_once(
    make_user: Any, command_log: CommandLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = {"now": session_backend_module.now_ms()}
    monkeypatch.setattr(session_backend_module, "now_ms", lambda: clock["now"])
    user = make_user()
    client = login(user)
    start = clock["now"] + 60_500  # first request once the login's activity is a minute old
    command_log.clear()
    for i in range(100):
        clock["now"] = start + i * 500  # 100 requests spread over 49.5 s
        assert client.get("/whoami/").content.decode() == user.get_username()
    assert command_log.named("GET") == ["GET"] * 100
    assert writes(command_log) == ["EVALSHA", "EVALSHA"]  # one pipeline: index + activity
    activity_trips = [trip for trip in command_log.trips if "EVALSHA" in trip]
    assert activity_trips == [["EVALSHA", "EVALSHA"]]
    clock["now"] = start + 61_000
    command_log.clear()
    client.get("/whoami/")
    assert writes(command_log) == ["EVALSHA", "EVALSHA"]


def test_activity_slides_cookie_and_ttl(
    make_user: Any, monkeypatch: pytest.MonkeyPatch, rclient: Any
) -> None:
    clock = {"now": session_backend_module.now_ms()}
    monkeypatch.setattr(session_backend_module, "now_ms", lambda: clock["now"])
    client = login(make_user())
    key = f"{sid(client)}"
    from django_rediskit.sessions.index import data_key, session_backend

    rclient.pexpire(data_key(session_backend(), key), 50_000)
    clock["now"] += 61_000
    response = client.get("/whoami/")
    assert response.cookies["sessionid"]["max-age"] == 1209600
    assert "Cookie" in response["Vary"]
    assert rclient.pttl(data_key(session_backend(), key)) > 1_000_000_000
