"""Device tracking over HTTP: login, list, revoke, caps, timeouts, password change, signals."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings
from django.test import Client, override_settings

from django_rediskit.sessions import (
    count_devices,
    list_devices,
    revoke,
    revoke_all,
    revoke_others,
    revoke_session,
)
from django_rediskit.sessions import signals as rk_signals
from django_rediskit.sessions.backend import SessionStore
from django_rediskit.sessions.index import session_backend, user_keys
from django_rediskit.sessions.useragent import client_field
from tests.sessions.conftest import index_fields

FIREFOX = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0"
SAFARI_IOS = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)

pytestmark = pytest.mark.django_db


def sessions_opts(**options: Any) -> Any:
    return override_settings(
        REDISKIT={"SESSIONS": options},
        CACHES=settings.CACHES,  # keep the same aliases
    )


def login(user: Any, agent: str = FIREFOX, ip: str = "10.0.0.1") -> Client:
    client = Client(HTTP_USER_AGENT=agent, REMOTE_ADDR=ip)
    response = client.post("/login/", {"username": user.get_username(), "password": "pw-123456"})
    assert response.status_code == 302, response.content
    return client


def sid(client: Client) -> str:
    return client.cookies[settings.SESSION_COOKIE_NAME].value


def whoami(client: Client) -> str:
    return client.get("/whoami/").content.decode()


@pytest.fixture
def captured() -> Iterator[dict[str, list[dict[str, Any]]]]:
    seen: dict[str, list[dict[str, Any]]] = {"login": [], "revoked": [], "changed": []}

    def on(name: str) -> Any:
        def receiver(sender: Any, **kwargs: Any) -> None:
            seen[name].append(kwargs)

        return receiver

    receivers = {
        "login": (rk_signals.device_logged_in, on("login")),
        "revoked": (rk_signals.session_revoked, on("revoked")),
        "changed": (rk_signals.session_client_changed, on("changed")),
    }
    for signal, receiver in receivers.values():
        signal.connect(receiver)
    yield seen
    for signal, receiver in receivers.values():
        signal.disconnect(receiver)


def test_login_rotates_key_and_registers_device(make_user: Any, captured: Any) -> None:
    user = make_user()
    client = Client(HTTP_USER_AGENT=FIREFOX, REMOTE_ADDR="10.0.0.1")
    client.get("/touch/")
    anonymous_key = sid(client)
    client.post("/login/", {"username": user.get_username(), "password": "pw-123456"})
    assert sid(client) != anonymous_key  # fixation defence
    assert not SessionStore().exists(anonymous_key)
    assert whoami(client) == user.get_username()
    [device] = list_devices(user)
    assert (device.browser, device.os, device.ip) == ("Firefox", "Windows", "10.0.0.1")
    assert device.user_agent == client_field("10.0.0.1", FIREFOX).split("|", 3)[3]  # short form
    assert device.user_agent.endswith(" Firefox/128.0") and "Windows NT 10.0" in device.user_agent
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", device.device_id)
    assert device.device_id not in sid(client)
    assert [event["new_device"] for event in captured["login"]] == [True]
    assert captured["login"][0]["device_id"] == device.device_id


def test_two_devices_listed_and_other_revoked(make_user: Any, captured: Any) -> None:
    user = make_user()
    laptop = login(user, FIREFOX, "10.0.0.1")
    phone = login(user, SAFARI_IOS, "10.0.0.2")
    assert count_devices(user) == 2
    request = type("R", (), {"session": SessionStore(sid(laptop)), "user": user})()
    found = list_devices(user, request=request)
    current = [device for device in found if device.is_current]
    assert len(current) == 1 and current[0].browser == "Firefox"
    other = next(device for device in found if not device.is_current)
    assert (other.browser, other.os) == ("Safari", "iOS")
    assert revoke(user, other.device_id)
    assert whoami(phone) == "anonymous"  # takes effect on the very next request
    assert whoami(laptop) == user.get_username()
    assert [e["reason"] for e in captured["revoked"]] == ["user"]
    assert captured["revoked"][0]["device_id"] == other.device_id


def test_revoke_others_and_all(make_user: Any) -> None:
    user = make_user()
    clients = [login(user, ip=f"10.0.0.{i}") for i in range(4)]
    request = type("R", (), {"session": SessionStore(sid(clients[0])), "user": user})()
    assert revoke_others(request) == 3
    assert [whoami(c) for c in clients] == [user.get_username()] + ["anonymous"] * 3
    assert revoke_all(user) == 1
    assert whoami(clients[0]) == "anonymous"
    assert count_devices(user) == 0
    rclient = session_backend().client.get_client()
    assert not any(rclient.exists(key) for key in user_keys(session_backend(), str(user.pk)))


def test_idor_other_users_device_ids_do_nothing(make_user: Any) -> None:
    alice, bob = make_user(), make_user()
    login(alice)
    bob_client = login(bob)
    [alice_device] = list_devices(alice)
    assert not revoke(bob, alice_device.device_id)
    assert count_devices(alice) == 1
    response = bob_client.delete(f"/api/devices/{alice_device.device_id}/")
    assert response.status_code == 404
    page = bob_client.post(
        "/account/devices/", {"action": "revoke", "device_id": alice_device.device_id}
    )
    assert page.status_code == 302
    assert count_devices(alice) == 1
    assert alice_device.device_id not in bob_client.get("/account/devices/").content.decode()
    assert alice_device.device_id not in bob_client.get("/api/devices/").content.decode()


@pytest.mark.parametrize("bad", ["", "x", "../../etc", "a" * 500, "{x}", "*", "é" * 22])
def test_revoke_with_malformed_device_id_is_refused(make_user: Any, bad: str) -> None:
    user = make_user()
    login(user)
    assert not revoke(user, bad)
    assert count_devices(user) == 1


def test_device_limit_evicts_oldest(make_user: Any, captured: Any) -> None:
    user = make_user()
    with sessions_opts(DEVICE_LIMIT=2):
        first = login(user, ip="10.0.0.1")
        [first_device] = list_devices(user)
        time.sleep(0.01)
        second = login(user, ip="10.0.0.2")
        third = login(user, ip="10.0.0.3")
        assert count_devices(user) == 2
        assert whoami(first) == "anonymous"
        assert whoami(second) == whoami(third) == user.get_username()
    assert [e["reason"] for e in captured["revoked"]] == ["device_limit"]
    assert captured["revoked"][0]["device_id"] == first_device.device_id


def test_device_limit_deny_refuses_login(make_user: Any) -> None:
    user = make_user()
    with sessions_opts(DEVICE_LIMIT=1, DEVICE_LIMIT_POLICY="deny"):
        first = login(user)
        denied = Client(HTTP_USER_AGENT=SAFARI_IOS)
        response = denied.post(
            "/login/", {"username": user.get_username(), "password": "pw-123456"}
        )
        assert response.status_code == 403
        assert whoami(denied) == "anonymous"
        assert whoami(first) == user.get_username()
        assert count_devices(user) == 1
        revoke_all(user)
        assert login(user) is not None


def test_absolute_timeout_ends_active_session(make_user: Any, captured: Any) -> None:
    user = make_user()
    with sessions_opts(ABSOLUTE_TIMEOUT=1):
        client = login(user)
        assert whoami(client) == user.get_username()
        time.sleep(1.1)
        assert whoami(client) == "anonymous"
    assert count_devices(user) == 0
    assert [e["reason"] for e in captured["revoked"]] == ["absolute_timeout"]


def test_password_change_revokes_other_sessions_keeps_current(make_user: Any) -> None:
    user = make_user()
    current = login(user, ip="10.0.0.1")
    other = login(user, ip="10.0.0.2")
    response = current.post(
        "/password/",
        {
            "old_password": "pw-123456",
            "new_password1": "N3w-pass-99",
            "new_password2": "N3w-pass-99",
        },
    )
    assert response.status_code == 302, response.content
    assert whoami(current) == user.get_username()
    assert whoami(other) == "anonymous"
    assert count_devices(user) == 1


def test_password_change_all_mode_and_admin_reset(make_user: Any) -> None:
    user = make_user()
    clients = [login(user), login(user)]
    with sessions_opts(REVOKE_ON_PASSWORD_CHANGE="all"):
        user.set_password("changed-1234")
        user.save()
    assert [whoami(c) for c in clients] == ["anonymous", "anonymous"]
    with sessions_opts(REVOKE_ON_PASSWORD_CHANGE=None):
        user.set_password("pw-123456")
        user.save()
        client = login(user)
        user.set_password("changed-5678")
        user.save()
        assert count_devices(user) == 1  # eager revocation off; Django's lazy check remains
        assert whoami(client) == "anonymous"


def test_deactivation_revokes_everything(make_user: Any) -> None:
    user = make_user()
    clients = [login(user), login(user)]
    user.is_active = False
    user.save()
    assert count_devices(user) == 0
    assert all(whoami(c) == "anonymous" for c in clients)


def test_client_change_signal_and_activity_tracking(make_user: Any, captured: Any) -> None:
    user = make_user()
    client = login(user, FIREFOX, "10.0.0.1")
    [before] = list_devices(user)
    client.get("/whoami/", REMOTE_ADDR="10.9.9.9")
    [after] = list_devices(user)
    assert after.ip == "10.9.9.9" and after.last_activity >= before.last_activity
    assert after.device_id == before.device_id
    assert len(captured["changed"]) == 1
    assert captured["changed"][0]["device_id"] == before.device_id


def test_logout_removes_device(make_user: Any) -> None:
    from django.contrib.auth import logout
    from django.test import RequestFactory

    user = make_user()
    client = login(user)
    request = RequestFactory().get("/")
    request.session = SessionStore(sid(client))
    request.user = user
    logout(request)
    assert count_devices(user) == 0
    assert whoami(client) == "anonymous"


def test_revoke_session_by_key_and_in_flight_request_is_interrupted(
    make_user: Any, captured: Any
) -> None:
    user = make_user()
    client = login(user)
    [device] = list_devices(user)
    store = SessionStore(sid(client))
    store["n"] = 1  # loaded, in flight
    assert revoke_session(sid(client))
    with pytest.raises(Exception) as caught:
        store.save()
    assert caught.type.__name__ == "UpdateError"
    assert not revoke_session(sid(client))
    assert not revoke_session("not-a-key")
    assert [(e["device_id"], e["reason"]) for e in captured["revoked"]] == [
        (device.device_id, "admin")
    ]
    assert count_devices(user) == 0


def test_session_interrupted_through_middleware(make_user: Any) -> None:
    """A request whose session is revoked while it runs gets Django's SessionInterrupted (400)."""
    from django.urls import path

    from tests.sessions import urls as base

    def revoke_then_write(request: Any) -> Any:
        from django.http import HttpResponse

        request.session["n"] = 1
        revoke_all(request.user)
        return HttpResponse("ok")

    class Urls:
        urlpatterns = [*base.urlpatterns, path("race/", revoke_then_write)]

    user = make_user()
    client = login(user)
    with override_settings(ROOT_URLCONF=Urls):
        response = client.get("/race/")
    assert response.status_code == 400  # Django's answer to SessionInterrupted (a BadRequest)
    assert count_devices(user) == 0
    assert whoami(client) == "anonymous"


def test_index_hygiene_with_short_expiry(make_user: Any) -> None:
    user = make_user()
    backend = session_backend()
    rclient = backend.client.get_client()
    with override_settings(SESSION_COOKIE_AGE=1):
        clients = [login(user, ip=f"10.0.1.{i}") for i in range(3)]
        assert count_devices(user) == 3
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline and any(
            rclient.exists(key) for key in user_keys(backend, str(user.pk))
        ):
            time.sleep(0.1)
    assert not any(rclient.exists(key) for key in user_keys(backend, str(user.pk)))
    assert list_devices(user) == []
    assert all(whoami(c) == "anonymous" for c in clients)


def test_list_devices_never_shows_a_dead_session(make_user: Any) -> None:
    user = make_user()
    doomed, kept = login(user, ip="10.0.0.1"), login(user, ip="10.0.0.2")
    backend = session_backend()
    rclient = backend.client.get_client()
    rclient.unlink(backend.feature_key("sessions", sid(doomed)))  # e.g. evicted by maxmemory
    [device] = list_devices(user)
    assert device.ip == "10.0.0.2"
    assert index_fields(rclient, str(user.pk)) == [sid(kept).encode()]
    assert whoami(kept) == user.get_username()


def test_clear_expired_prunes_indexes(make_user: Any) -> None:
    user = make_user()
    client = login(user)
    backend = session_backend()
    rclient = backend.client.get_client()
    _, m = user_keys(backend, str(user.pk))
    rclient.hset(m, "0" * 32, "1|AAAAAAAAAAAAAAAAAAAAAA|1|1|")  # long expired, e.g. an old crash
    rclient.hset(m, "1" * 32, "not an entry")
    rclient.hset(m, "#" + "2" * 6, "Other|Other|")  # a client field without its entry
    SessionStore.clear_expired()
    assert sorted(rclient.hkeys(m)) == [b"#" + sid(client)[:6].encode(), sid(client).encode()]


def test_options_are_validated() -> None:
    from django.core.exceptions import ImproperlyConfigured

    from django_rediskit.sessions.options import get_options

    for bad in (
        {"DEVICE_LIMIT": 0},
        {"DEVICE_LIMIT_POLICY": "random"},
        {"ACTIVITY_RESOLUTION": -1},
        {"REVOKE_ON_PASSWORD_CHANGE": "some"},
        {"TYPO": 1},
    ):
        with sessions_opts(**bad), pytest.raises(ImproperlyConfigured):
            get_options()
    with (
        override_settings(REDISKIT={"SESSIONS": ["DEVICE_LIMIT", 3]}),
        pytest.raises(ImproperlyConfigured, match=r"SESSIONS.*must be a dict"),
    ):
        get_options()
    with sessions_opts(DEVICE_LIMIT=3, ACTIVITY_RESOLUTION=5):
        merged = get_options()  # the given keys over the defaults, the rest defaulted
    assert (merged.device_limit, merged.activity_resolution) == (3, 5.0)
    assert (
        merged.device_limit_policy == "evict_oldest"
        and merged.revoke_on_password_change == "others"
    )


def test_async_device_api(make_user: Any) -> None:
    import asyncio

    from django_rediskit.sessions import (
        acount_devices,
        alist_devices,
        arevoke,
        arevoke_all,
        arevoke_others,
    )

    user = make_user()
    clients = [login(user, ip=f"10.0.2.{i}") for i in range(4)]
    request = type("R", (), {"session": SessionStore(sid(clients[0])), "user": user})()

    async def flow() -> tuple[int, int, int, bool, int]:
        found = await alist_devices(user, request=request)
        victim = next(device for device in found if not device.is_current)
        revoked_one = await arevoke(user, victim.device_id)
        others = await arevoke_others(request)
        remaining = await acount_devices(user)
        everything = await arevoke_all(user)
        return len(found), others, remaining, revoked_one, everything

    assert asyncio.run(flow()) == (4, 2, 1, True, 1)
    assert all(whoami(c) == "anonymous" for c in clients)
