"""Sessions in the inspector: revoke through the sessions API, a user's devices, redaction."""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
import redis
from django.contrib.admin.models import LogEntry
from django.contrib.auth import SESSION_KEY
from django.contrib.auth.models import User
from django.core.cache import caches
from django.test import Client, override_settings

from django_rediskit.inspector import feature_panels
from django_rediskit.inspector.access import Target
from django_rediskit.inspector.config import load
from django_rediskit.inspector.panels import panel_for
from django_rediskit.sessions import list_devices
from django_rediskit.sessions import signals as session_signals
from django_rediskit.sessions.backend import SessionStore
from tests.inspector.conftest import ALIAS, ALL_PERMS, BASE, make_user

XSS_AGENT = "Mozilla/5.0 <script>alert(1)</script>"

pytestmark = pytest.mark.django_db


def _ref(key: bytes) -> str:
    return base64.urlsafe_b64encode(key).rstrip(b"=").decode()


@pytest.fixture
def session_settings(inspect_settings: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The session store on the inspected alias (the private server)."""
    with override_settings(
        REDISKIT={"INSPECTOR": inspect_settings, "SESSIONS": {"CACHE_ALIAS": ALIAS}},
        SESSION_ENGINE="django_rediskit.sessions.backend",
    ):
        yield inspect_settings


def _login(user: User, agent: str = "Firefox") -> str:
    store = SessionStore()
    store.set_client("10.1.2.3", agent)
    store[SESSION_KEY] = str(user.pk)
    store.create()
    assert store.session_key is not None
    return store.session_key


def _client(*perms: str) -> Client:
    client = Client()
    client.force_login(make_user("u-" + "-".join(perms), *perms))
    return client


def test_revoke_goes_through_the_sessions_api(session_settings: Any, raw: redis.Redis) -> None:
    owner = User.objects.create_user("owner")
    kept, revoked = _login(owner), _login(owner)
    assert len(list_devices(owner)) == 2
    key = f"app:s:{revoked}".encode()
    signals: list[dict[str, Any]] = []

    def receiver(**kwargs: Any) -> None:
        signals.append(kwargs)

    session_signals.session_revoked.connect(receiver)
    try:
        admin = _client(*ALL_PERMS)
        page = admin.get(BASE + "key/", {"alias": ALIAS, "k": _ref(key)})
        assert b"Revoke session" in page.content
        assert any("revoke_session" in text for _, text in page.context["panel_rows"])
        done = admin.post(BASE + "key/delete/", {"alias": ALIAS, "k": _ref(key), "confirm": "yes"})
    finally:
        session_signals.session_revoked.disconnect(receiver)
    assert done.status_code == 302 and not raw.exists(key)
    assert raw.exists(f"app:s:{kept}")
    # The owner's index no longer lists it: the API, not a bare UNLINK, did the work.
    assert raw.hget(f"app:u:{{{owner.pk}}}:m", revoked) is None
    assert len(list_devices(owner)) == 1
    assert [s["reason"] for s in signals] == ["admin"]
    log = LogEntry.objects.get()
    assert "Revoke session" in log.change_message and revoked in log.object_repr


def test_session_ids_stay_redacted_without_view_sensitive(
    session_settings: Any, raw: redis.Redis
) -> None:
    owner = User.objects.create_user("owner")
    sid = _login(owner)
    key = f"app:s:{sid}".encode()
    blind = _client("view_keys", "view_values", "delete_keys")
    listing = blind.get(BASE, {"alias": ALIAS, "ns": "sessions"})
    assert sid.encode() not in listing.content
    for path in ("key/", "key/delete/"):
        assert blind.get(BASE + path, {"alias": ALIAS, "k": _ref(key)}).status_code == 403
    refused = blind.post(BASE + "key/delete/", {"alias": ALIAS, "k": _ref(key), "confirm": "yes"})
    assert refused.status_code == 403 and raw.exists(key)
    no_delete = _client("view_keys", "view_values", "view_sensitive", "change_keys")
    refused = no_delete.post(
        BASE + "key/delete/", {"alias": ALIAS, "k": _ref(key), "confirm": "yes"}
    )
    assert refused.status_code == 403 and raw.exists(key)
    assert not LogEntry.objects.exists()


def test_session_key_of_another_alias_is_a_plain_unlink(
    session_settings: Any, raw: redis.Redis
) -> None:
    # The session store is the "inspect" alias; a look-alike key on "default" is not a session.
    other = caches["default"]
    key = other.feature_key("sessions", "x" * 32)
    client = other.client.get_client(write=True)
    client.set(key, "not a session")
    target = Target.for_alias("default", load())
    assert feature_panels.session_key_of(target, key.encode()) is None
    panel = panel_for("sessions")
    assert panel is not None
    assert panel.delete(target, key.encode()) == 1 and not client.exists(key)


def test_revoke_with_redis_down_is_a_connection_error(session_settings: Any, server: Any) -> None:
    owner = User.objects.create_user("owner")
    sid = _login(owner)
    target = Target.for_alias(ALIAS, load())
    panel = panel_for("sessions")
    assert panel is not None
    server.stop()
    try:
        with pytest.raises(redis.ConnectionError):
            panel.delete(target, f"app:s:{sid}".encode())
    finally:
        server.start()


def test_concurrent_revokes_end_the_session_once(session_settings: Any) -> None:
    owner = User.objects.create_user("owner")
    sid = _login(owner)
    target = Target.for_alias(ALIAS, load())
    panel = panel_for("sessions")
    assert panel is not None
    results: list[int] = []
    barrier = threading.Barrier(4)

    def worker() -> None:
        barrier.wait()
        results.append(panel.delete(target, f"app:s:{sid}".encode()))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [0, 0, 0, 1]
    assert list_devices(owner) == []


def test_device_index_panel_lists_devices_escaped_and_only_when_sensitive(
    session_settings: Any,
) -> None:
    owner = User.objects.create_user("owner")
    _login(owner, XSS_AGENT)
    _login(owner, "curl/8")
    key = f"app:u:{{{owner.pk}}}:m".encode()
    trusted = _client(*ALL_PERMS)
    page = trusted.get(BASE + "key/", {"alias": ALIAS, "k": _ref(key)})
    rows = dict(page.context["panel_rows"])
    assert "2 live device(s)" in rows["User"]
    assert sum(label.startswith("Device ") for label in rows) == 2
    assert b"10.1.2.3" in page.content
    assert b"<script>alert(1)</script>" not in page.content
    blind = _client("view_keys", "view_values")
    hidden = blind.get(BASE + "key/", {"alias": ALIAS, "k": _ref(key)})
    assert hidden.status_code == 200 and b"10.1.2.3" not in hidden.content
    assert "User" not in dict(hidden.context["panel_rows"])
    # An index key naming no user (forged) shows no devices and does not fail.
    target = Target.for_alias(ALIAS, load())
    panel = panel_for("users")
    assert panel is not None
    meta = page.context["meta"]
    assert dict(panel.describe(target, b"app:u:{abc}:m", meta))["User"].startswith("no user")
    assert "User" not in dict(panel.describe(target, b"app:u:nobrace", meta))
    huge = replace(meta, length=feature_panels.MAX_INDEX_READ + 1)
    assert "too many" in dict(panel.describe(target, key, huge))["Devices"]


def test_a_session_with_a_non_standard_key_is_revoked_through_the_api(
    session_settings: Any, raw: redis.Redis
) -> None:
    """Keys Django accepts but does not generate are stored under an escaped name; the panel
    maps that name back to the key, so revoking updates the owner's device index too."""
    from django_rediskit.sessions.envelope import session_name

    owner = User.objects.create_user("owner")
    odd = "odd key *with* {braces} & spaces"
    SessionStore(odd).save(must_create=True)
    store = SessionStore(odd)
    store.set_client("10.1.2.3", "Firefox")
    store[SESSION_KEY] = str(owner.pk)
    store.save()
    assert store.session_key == odd and len(list_devices(owner)) == 1
    key = f"app:s:{session_name(odd)}".encode()
    assert raw.exists(key)
    target = Target.for_alias(ALIAS, load())
    assert feature_panels.session_key_of(target, key) == odd
    panel = panel_for("sessions")
    assert panel is not None
    assert panel.delete(target, key) == 1
    assert not raw.exists(key) and list_devices(owner) == []
