"""Headless Chromium (Debian's package, driven by Playwright): the inspector as an operator uses it.

Screenshots go to ``$REDISKIT_ARTIFACTS`` (default ``test-artifacts/``) for CI to keep.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.browser import chromium
from tests.inspector.conftest import ALL_PERMS, BASE, make_user

ARTIFACTS = Path(os.environ.get("REDISKIT_ARTIFACTS", "test-artifacts")) / "inspector"
XSS = "<script>window.__pwned = 1</script>"


@pytest.fixture
def page(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with chromium(monkeypatch) as browser:
        tab = browser.new_page()
        tab.set_default_timeout(10_000)
        yield tab


def _login(page: Any, live_server: Any) -> None:
    make_user("operator", *ALL_PERMS)
    page.goto(f"{live_server.url}/admin/login/?next={BASE}?alias=inspect")
    page.fill("#id_username", "operator")
    page.fill("#id_password", "pw")
    page.click("input[type=submit]")
    page.wait_for_selector("#rk-keys")


def test_browse_filter_page_a_hash_and_delete(
    page: Any, live_server: Any, inspect_settings: Any, raw: redis.Redis
) -> None:
    raw.hset("shop:cart:{42}", mapping={f"item{i}": str(i) for i in range(250)})
    for i in range(30):
        raw.set(f"shop:product:{i}", i)
    _login(page, live_server)
    page.screenshot(path=str(ARTIFACTS / "01-browse.png"))
    page.fill("input[name=q]", "shop:cart:*")
    page.click("#rk-filter input[type=submit]")
    page.wait_for_selector("#rk-keys >> text=shop:cart:{42}")
    assert page.locator("#rk-keys tbody tr").count() == 1
    page.click("text=shop:cart:{42}")
    page.wait_for_selector("#rk-items")
    first = page.locator("#rk-items tbody tr").count()
    assert 1 <= first <= 100
    page.screenshot(path=str(ARTIFACTS / "02-hash-page-1.png"))
    page.click("#rk-value-next")
    page.wait_for_selector("#rk-items")
    page.screenshot(path=str(ARTIFACTS / "03-hash-page-2.png"))
    page.click("#rk-delete")
    page.wait_for_selector("#rk-confirm")
    assert raw.exists("shop:cart:{42}")  # the confirm page changes nothing
    page.screenshot(path=str(ARTIFACTS / "04-confirm-delete.png"))
    page.click("#rk-confirm")
    page.wait_for_selector("#rk-keys")
    assert not raw.exists("shop:cart:{42}")
    assert "shop:cart:{42}" in page.inner_text(".messagelist")
    page.screenshot(path=str(ARTIFACTS / "05-deleted.png"))


def test_stored_xss_in_keys_and_values_stays_text(
    page: Any, live_server: Any, inspect_settings: Any, raw: redis.Redis
) -> None:
    raw.set(f"xss:{XSS}", XSS)
    _login(page, live_server)
    page.click(f"text=xss:{XSS}")
    page.wait_for_selector("#rk-value")
    assert page.inner_text("#rk-value") == XSS
    assert page.inner_text("#rk-name") == f"xss:{XSS}"
    assert page.evaluate("window.__pwned") is None
    page.screenshot(path=str(ARTIFACTS / "06-xss-escaped.png"))


def test_default_scope_long_name_control_bytes_and_bulk_confirm(
    page: Any, live_server: Any, inspect_settings: Any, raw: redis.Redis
) -> None:
    """Issue 14 as an operator sees it: the scope line, a 1 MB name opened and deleted from the
    list, control bytes escaped, and a bulk delete of the whole alias confirmed by its count."""
    from django.test import override_settings

    long_key = b"app:long:" + b"L" * (1024 * 1024)
    raw.set(long_key, "v")
    raw.set(b"app:ctl\x00\x1b", "v")
    raw.set(b"other:app", "theirs")
    for i in range(20):
        raw.set(f"app:item:{i}", i)
    inspector = {"READ_ONLY": False, "ALIASES": ["inspect"]}
    with override_settings(REDISKIT={"INSPECTOR": inspector}):
        _login(page, live_server)
        assert "keys of this alias, app:*" in page.inner_text("#rk-scope")
        table = page.inner_text("#rk-keys")
        assert "app:ctl\\x00\\x1b" in table and "other:app" not in table
        assert f"({len(long_key):,} bytes, sha256" in table
        page.screenshot(path=str(ARTIFACTS / "07-default-scope.png"))
        page.click("#rk-keys a:has-text('app:long:')")
        page.wait_for_selector("#rk-full-name")
        page.click("#rk-delete")
        page.click("#rk-confirm")
        page.wait_for_selector("#rk-keys")
        assert not raw.exists(long_key)
        page.goto(f"{live_server.url}{BASE}bulk-delete/?alias=inspect")
        page.fill("input[name=q]", "*")
        page.click("button[value=start]")
        while page.locator("button[value=count]").count():
            page.click("button[value=count]")
        assert page.inner_text("#rk-matched") == "21"
        page.fill("#rk-confirm-count", "20")
        page.click("button[value=delete]")
        assert "type the number of keys counted (21)" in page.inner_text("#rk-bulk-error")
        page.fill("#rk-confirm-count", "21")
        page.screenshot(path=str(ARTIFACTS / "08-bulk-confirm.png"))
        page.click("button[value=delete]")
        while page.locator("button[value=delete]").count():
            page.click("button[value=delete]")
        assert page.inner_text("#rk-phase") == "done"
    assert raw.get("other:app") == b"theirs" and not list(raw.scan_iter("app:*"))
