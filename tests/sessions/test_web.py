"""The devices page, the DRF endpoints, the admin action and the management command.

Every rendered page, API response and log record is grepped for raw session keys.
"""

from __future__ import annotations

import importlib
import io
import logging
import sys
from typing import Any

import pytest
from django.contrib import admin
from django.contrib.admin.models import LogEntry
from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command
from django.test import Client

from django_rediskit.sessions import count_devices, list_devices
from django_rediskit.sessions.admin import DevicesAdminMixin, install
from tests.sessions.test_devices import FIREFOX, SAFARI_IOS, login, sid, whoami

pytestmark = pytest.mark.django_db


@pytest.fixture
def all_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    return caplog


def assert_no_session_key(text: str, *keys: str) -> None:
    for key in keys:
        assert key not in text


def test_devices_page_lists_and_revokes_with_csrf(make_user: Any, all_logs: Any) -> None:
    user = make_user()
    laptop = login(user, FIREFOX, "10.0.0.1")
    phone = login(user, SAFARI_IOS, "10.0.0.2")
    keys = (sid(laptop), sid(phone))
    page = laptop.get("/account/devices/")
    html = page.content.decode()
    assert page.status_code == 200
    assert "Firefox on Windows" in html and "Safari on iOS" in html
    assert "(this device)" in html
    assert page["Cache-Control"].startswith("max-age=0")
    assert_no_session_key(html, *keys)
    other = next(d for d in list_devices(user) if d.ip == "10.0.0.2")

    strict = Client(enforce_csrf_checks=True, HTTP_USER_AGENT=FIREFOX)
    strict.cookies = laptop.cookies
    forged = strict.post("/account/devices/", {"action": "revoke", "device_id": other.device_id})
    assert forged.status_code == 403  # no CSRF token: nothing happens
    assert count_devices(user) == 2

    token = strict.get("/account/devices/").context["csrf_token"]
    done = strict.post(
        "/account/devices/",
        {"action": "revoke", "device_id": other.device_id, "csrfmiddlewaretoken": str(token)},
    )
    assert done.status_code == 302
    assert whoami(phone) == "anonymous"
    assert count_devices(user) == 1
    assert laptop.post("/account/devices/", {"action": "bogus"}).status_code == 400
    assert_no_session_key(all_logs.text, *keys)


def test_devices_page_revoke_others_and_self(make_user: Any) -> None:
    user = make_user()
    clients = [login(user, ip=f"10.0.0.{i}") for i in range(3)]
    response = clients[0].post("/account/devices/", {"action": "revoke_others"}, follow=True)
    assert "Signed out 2 other device(s)." in response.content.decode()
    assert [whoami(c) for c in clients[1:]] == ["anonymous", "anonymous"]
    [mine] = list_devices(user)
    clients[0].post("/account/devices/", {"action": "revoke", "device_id": mine.device_id})
    assert whoami(clients[0]) == "anonymous"
    assert clients[0].get("/account/devices/").status_code == 302  # to login


def test_devices_page_escapes_user_agent(make_user: Any) -> None:
    user = make_user()
    client = login(user, "<script>alert(1)</script> Firefox/1")
    html = client.get("/account/devices/").content.decode()
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;" in html


def test_drf_endpoints(make_user: Any, all_logs: Any) -> None:
    user = make_user()
    laptop = login(user, FIREFOX, "10.0.0.1")
    phone = login(user, SAFARI_IOS, "10.0.0.2")
    keys = (sid(laptop), sid(phone))
    listing = laptop.get("/api/devices/")
    assert listing.status_code == 200
    body = listing.json()
    assert {d["browser"] for d in body} == {"Firefox", "Safari"}
    assert [d["is_current"] for d in body if d["ip"] == "10.0.0.1"] == [True]
    assert_no_session_key(listing.content.decode(), *keys)
    other = next(d for d in body if not d["is_current"])
    assert laptop.delete(f"/api/devices/{other['device_id']}/").status_code == 204
    assert laptop.delete(f"/api/devices/{other['device_id']}/").status_code == 404
    assert whoami(phone) == "anonymous"
    third = login(user)
    revoked = laptop.post("/api/devices/revoke-others/")
    assert revoked.json() == {"revoked": 1}
    assert whoami(third) == "anonymous"
    assert Client().get("/api/devices/").status_code in (401, 403)
    assert_no_session_key(all_logs.text, *keys)


def test_drf_post_needs_csrf_with_session_auth(make_user: Any) -> None:
    user = make_user()
    laptop = login(user)
    login(user)
    strict = Client(enforce_csrf_checks=True)
    strict.cookies = laptop.cookies
    assert strict.post("/api/devices/revoke-others/").status_code == 403
    assert count_devices(user) == 2


def test_drf_module_imports_without_drf(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [
        n for n in sys.modules if n == "rest_framework" or n.startswith("rest_framework.")
    ]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "rest_framework", None)  # type: ignore[arg-type]
    monkeypatch.delitem(sys.modules, "django_rediskit.sessions.drf", raising=False)
    module = importlib.import_module("django_rediskit.sessions.drf")
    assert module.HAVE_DRF is False
    with pytest.raises(ImproperlyConfigured, match="REST framework"):
        module.urlpatterns  # noqa: B018
    monkeypatch.delitem(sys.modules, "django_rediskit.sessions.drf")


def test_admin_log_out_everywhere_action(make_user: Any) -> None:
    user_model = get_user_model()
    site = admin.AdminSite(name="rk-test")
    site.register(user_model, type(admin.site._registry[user_model]).__mro__[0])
    install(site)
    model_admin = site._registry[user_model]
    assert isinstance(model_admin, DevicesAdminMixin)
    staff = user_model.objects.create_superuser("boss", password="pw-123456")
    victim = make_user()
    clients = [login(victim, "<b>evil</b>"), login(victim)]
    from django.test import RequestFactory

    request = RequestFactory().post("/")
    request.user = staff
    request.session = {}  # type: ignore[assignment]
    request._messages = __import__(  # type: ignore[attr-defined]
        "django.contrib.messages.storage.fallback", fromlist=["FallbackStorage"]
    ).FallbackStorage(request)
    panel = str(model_admin.active_devices(victim))
    assert "&lt;b&gt;evil" not in panel  # the panel shows parsed families, escaped
    assert "<b>" not in panel and "Other on Other" in panel
    assert "logout_everywhere" in model_admin.get_actions(request)
    model_admin.logout_everywhere(request, user_model.objects.filter(pk=victim.pk))
    assert all(whoami(c) == "anonymous" for c in clients)
    entry = LogEntry.objects.get(object_id=str(victim.pk))
    assert "Logged out everywhere (2 sessions)" in entry.get_change_message()


def test_admin_change_page_button(make_user: Any) -> None:
    user_model = get_user_model()
    staff = user_model.objects.create_superuser("root", password="pw-123456")
    victim = make_user()
    clients = [login(victim), login(victim)]
    site = admin.AdminSite(name="rk-test-3")
    site.register(user_model, type(admin.site._registry[user_model]))
    install(site)
    model_admin = site._registry[user_model]
    panel = str(model_admin.active_devices(victim))
    assert 'name="_rediskit_logout_everywhere"' in panel
    from django.contrib.messages.storage.fallback import FallbackStorage
    from django.test import RequestFactory

    request = RequestFactory().post(
        "/admin/auth/user/1/change/", {"_rediskit_logout_everywhere": "1"}
    )
    request.user = staff
    request.session = {}  # type: ignore[assignment]
    request._messages = FallbackStorage(request)  # type: ignore[attr-defined]
    response = model_admin.response_change(request, victim)
    assert response.status_code == 302
    assert all(whoami(c) == "anonymous" for c in clients)
    assert LogEntry.objects.filter(object_id=str(victim.pk)).count() == 1
    plain = RequestFactory().post("/admin/auth/user/1/change/", {"_save": "1"})
    plain.user = staff
    plain.session = {}  # type: ignore[assignment]
    plain._messages = FallbackStorage(plain)  # type: ignore[attr-defined]
    login(victim)
    model_admin.response_change(plain, victim)
    assert count_devices(victim) == 1


def test_admin_action_needs_change_permission(make_user: Any) -> None:
    user_model = get_user_model()
    site = admin.AdminSite(name="rk-test-2")
    site.register(user_model, type(admin.site._registry[user_model]))
    install(site)
    model_admin = site._registry[user_model]
    viewer = make_user()
    viewer.is_staff = True
    viewer.save()
    from django.contrib.auth.models import Permission
    from django.test import RequestFactory

    viewer.user_permissions.add(Permission.objects.get(codename="view_user"))
    viewer = user_model.objects.get(pk=viewer.pk)
    request = RequestFactory().get("/")
    request.user = viewer
    assert "logout_everywhere" not in model_admin.get_actions(request)
    victim = make_user()
    login(victim)
    model_admin.logout_everywhere(request, user_model.objects.filter(pk=victim.pk))
    assert count_devices(victim) == 1


def test_management_command(make_user: Any) -> None:
    user = make_user("carol")
    client = login(user, FIREFOX, "10.0.0.7")
    login(user, SAFARI_IOS)
    out = io.StringIO()
    call_command("rediskit_sessions", "list", "--user", "carol", stdout=out)
    text = out.getvalue()
    assert "Firefox on Windows" in text and "2 device(s)." in text
    assert sid(client) not in text
    device = next(d for d in list_devices(user) if d.ip == "10.0.0.7")
    out = io.StringIO()
    call_command(
        "rediskit_sessions",
        "revoke",
        "--user",
        str(user.pk),
        # "=": a device id may start with "-" (urlsafe base64), which argparse would take
        # for an option when given as a separate argument.
        f"--device={device.device_id}",
        stdout=out,
    )
    assert "Revoked 1 device." in out.getvalue()
    assert whoami(client) == "anonymous"
    out = io.StringIO()
    call_command("rediskit_sessions", "stats", stdout=out)
    assert "users with sessions: 1" in out.getvalue()
    assert "indexed authenticated sessions: 1" in out.getvalue()
    out = io.StringIO()
    call_command("rediskit_sessions", "revoke", "--user", "carol", stdout=out)
    assert "Revoked 1 sessions." in out.getvalue()
    with pytest.raises(CommandError):
        call_command("rediskit_sessions", "list", "--user", "nobody")
    with pytest.raises(CommandError):
        call_command("rediskit_sessions", "revoke", "--user", "carol", "--device", "nope")


def test_admin_change_page_renders_devices_and_button(make_user: Any) -> None:
    from django.test import override_settings
    from django.urls import path

    user_model = get_user_model()
    site = admin.AdminSite(name="rk-render")
    site.register(user_model, type(admin.site._registry[user_model]))
    install(site)

    class Urls:
        urlpatterns = [path("admin2/", site.urls)]

    staff = user_model.objects.create_superuser("root2", password="pw-123456")
    victim = make_user()
    victim_client = login(victim, "<img src=x onerror=alert(1)> Firefox/1 Windows")
    browser = Client()
    browser.force_login(staff)
    with override_settings(ROOT_URLCONF=Urls):
        page = browser.get(f"/admin2/auth/user/{victim.pk}/change/")
    html = page.content.decode()
    assert page.status_code == 200
    assert "Firefox on Windows" in html and 'name="_rediskit_logout_everywhere"' in html
    assert "<img src=x" not in html
    assert sid(victim_client) not in html
