"""The shop in headless Chromium, served by gunicorn with 4 workers (``make serve``): an admin
edit shows on the very next request of the product page, whichever worker answers it.

Screenshots of the shop, the product page, the devices page and the inspector are taken on
every run and written to ``docs/img/`` when ``REDISKIT_SCREENSHOTS=1`` (the docs show them; set
it to refresh them), to a temporary folder otherwise, so a test run leaves the checkout clean.
"""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser import chromium
from tests.servers import free_port
from tests.test_example_project import _read_until, _wait_http
from tests.test_site_serve import _serve

DOCS_IMG = Path(__file__).resolve().parent.parent / "docs" / "img"


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    return DOCS_IMG if os.environ.get("REDISKIT_SCREENSHOTS") == "1" else tmp_path


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(base URL, admin password) of the shop under gunicorn."""
    port = free_port()
    process = _serve(tmp_path, port, "--server", "gunicorn", "--workers", "4")
    try:
        banner = _read_until(process, "Serving with gunicorn")
        password = re.search(r"password '([^']+)'", banner)
        assert password, banner
        _wait_http(port, timeout=60)
        yield f"http://127.0.0.1:{port}", password.group(1)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(30)


@pytest.fixture
def page(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    DOCS_IMG.mkdir(parents=True, exist_ok=True)
    with chromium(monkeypatch) as browser:
        tab = browser.new_page(viewport={"width": 1200, "height": 800})
        tab.set_default_timeout(15_000)
        yield tab


def _admin_login(page: Any, base: str, password: str) -> None:
    page.goto(f"{base}/admin/login/?next=/admin/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", password)
    page.click("input[type=submit]")
    page.wait_for_selector("#site-name")


def test_admin_edits_show_on_the_next_request(
    page: Any, site: tuple[str, str], shots: Path
) -> None:
    base, password = site
    page.goto(f"{base}/shop/")
    page.wait_for_selector(".card")
    page.screenshot(path=str(shots / "shop.png"), full_page=True)
    page.click("text=Espresso beans 1 kg")
    page.wait_for_selector("#product-name")
    product_url = page.url
    pk = int(product_url.rstrip("/").rsplit("/", 1)[1])
    assert page.inner_text("#product-name") == "Espresso beans 1 kg"
    assert page.inner_text("#product-category") == "Coffee"
    rendered = page.inner_text(".product .muted")
    page.reload()
    assert page.inner_text(".product .muted") == rendered  # served from the cached fragment
    page.screenshot(path=str(shots / "product.png"), full_page=True)

    _admin_login(page, base, password)
    # 1. the product's name and price edited in the admin
    page.goto(f"{base}/admin/shop/product/{pk}/change/")
    page.fill("#id_name", "Espresso beans 1 kg (new roast)")
    page.fill("#id_price", "26.40")
    page.click("input[name=_save]")
    page.wait_for_selector(".messagelist")
    page.goto(product_url)
    assert page.inner_text("#product-name") == "Espresso beans 1 kg (new roast)"
    assert page.inner_text("#product-price") == "€ 26.40"
    # 2. its category renamed in the admin: the product page shows the new name
    category_pk = int(page.get_attribute("#product-category", "href").rstrip("/").rsplit("/")[-1])
    page.goto(f"{base}/admin/shop/category/{category_pk}/change/")
    page.fill("#id_name", "Coffee beans")
    page.click("input[name=_save]")
    page.wait_for_selector(".messagelist")
    page.goto(product_url)
    assert page.inner_text("#product-category") == "Coffee beans"
    page.goto(f"{base}/shop/")
    card = page.locator(f'.card[data-product="{pk}"]')
    assert "Coffee beans" in card.inner_text() and "(new roast)" in card.inner_text()

    # the devices page (signed in as the admin) and the inspector, for the docs
    page.goto(f"{base}/account/devices/")
    page.wait_for_selector("#devices")
    assert "(this device)" in page.inner_text("#devices")
    page.screenshot(path=str(shots / "devices.png"), full_page=True)
    page.goto(f"{base}/admin/django_rediskit/rediskey/")
    page.wait_for_selector("#rk-keys")
    assert "fragment" in page.inner_text("#rk-keys")  # the shop's cached fragments are listed
    # the screenshot shows the cached fragments (not the session keys of this test run)
    page.fill("input[name=q]", "*fragment*")
    page.click("#rk-filter input[type=submit]")
    page.wait_for_selector("#rk-keys >> text=product-card")
    page.screenshot(path=str(shots / "inspector.png"), full_page=True)
