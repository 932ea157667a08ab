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
