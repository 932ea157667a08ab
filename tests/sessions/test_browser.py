"""Headless Chromium: two browsers of one user, one signs the other out from the devices page."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser import chromium
from tests.sessions.test_devices import FIREFOX, SAFARI_IOS


@pytest.fixture
def server_url(transactional_db: None) -> Iterator[str]:
    """A live server started *inside* this test, so it loads the session engine and middleware
    that the conftest's override selects (pytest-django's live_server is started once per run,
    with whatever settings were active then)."""
    from django.db import connections
    from django.test.testcases import LiveServerThread, _StaticFilesHandler

    shared = {
        conn.alias: conn
        for conn in connections.all()
        if conn.vendor == "sqlite" and conn.is_in_memory_db()
    }
    for conn in shared.values():
        conn.inc_thread_sharing()
    thread = LiveServerThread("localhost", _StaticFilesHandler, connections_override=shared)
    thread.daemon = True
    thread.start()
    thread.is_ready.wait()
    try:
        if thread.error:
            raise thread.error
        yield f"http://localhost:{thread.port}"
    finally:
        thread.terminate()
        for conn in shared.values():
            conn.dec_thread_sharing()


@pytest.fixture
def browser(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    with chromium(monkeypatch) as instance:
        yield instance


def sign_in(browser: Any, base: str, agent: str) -> Any:
    page = browser.new_context(user_agent=agent).new_page()
    page.goto(f"{base}/login/")
    page.fill("#id_username", "dana")
    page.fill("#id_password", "pw-123456")
    page.click("#sign-in")
    page.goto(f"{base}/whoami/")
    assert page.inner_text("body") == "dana"
    return page


def test_sign_out_other_browser(server_url: str, browser: Any, django_user_model: Any) -> None:
    django_user_model.objects.create_user("dana", password="pw-123456")
    laptop = sign_in(browser, server_url, FIREFOX)
    phone = sign_in(browser, server_url, SAFARI_IOS)
    laptop.goto(f"{server_url}/account/devices/")
    assert laptop.locator("li.device").count() == 2
    assert "Safari on iOS" in laptop.inner_text("li.device:not(.current)")
    laptop.click("li.device:not(.current) button")
    assert laptop.locator("li.device").count() == 1
    assert "Firefox on Windows" in laptop.inner_text("li.device.current")
    phone.goto(f"{server_url}/whoami/")
    assert phone.inner_text("body") == "anonymous"
    laptop.click("#revoke-others")
    laptop.goto(f"{server_url}/whoami/")
    assert laptop.inner_text("body") == "dana"
