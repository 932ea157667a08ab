"""The Debug Toolbar panel, in headless Chromium against a dev server running the toolbar."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests import servers
from tests.browser import chromium

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("REDISKIT_ARTIFACTS", "test-artifacts")) / "metrics"


@pytest.fixture
def toolbar_site(private_redis: servers.RedisServer, tmp_path: Path) -> Any:
    port = servers.free_port()
    log = tmp_path / "runserver.log"
    stderr = open(log, "wb")  # noqa: SIM115 (closed below)
    process = subprocess.Popen(
        [sys.executable, "-m", "django", "runserver", f"127.0.0.1:{port}", "--noreload"],
        cwd=ROOT,
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.metrics.toolbar_site",
            "REDIS_URL": private_redis.url,
        },
        stdout=subprocess.DEVNULL,
        stderr=stderr,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{base}/shop/", timeout=5).read()
            break
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                stderr.close()
                raise AssertionError(log.read_text()) from None
            time.sleep(0.3)
    try:
        yield base
    finally:
        process.terminate()
        process.wait(timeout=20)
        stderr.close()


def test_panel_shows_hits_misses_tags_throttles_and_invalidations(
    toolbar_site: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with chromium(monkeypatch) as browser:
        page = browser.new_page()
        page.set_default_timeout(15_000)
        page.goto(f"{toolbar_site}/shop/")
        page.wait_for_selector("#djDebug", state="attached")
        page.wait_for_selector("#djDebugToolbar:visible, #djDebugToolbarHandle:visible")
        if page.locator("#djDebugToolbar").is_hidden():
            page.click("#djShowToolBarButton")
        button = page.locator("#djdt-RedisKitPanel")
        assert "calls, 1 hits, 2 misses" in button.inner_text()
        button.locator("a").click()
        panel = page.locator("#RedisKitPanel")
        panel.locator("#rk-calls table").wait_for()
        page.screenshot(path=str(ARTIFACTS / "toolbar-panel.png"), full_page=True)
        rows = [
            [cell.strip() for cell in row.split("\t")]
            for row in panel.locator("#rk-calls tbody tr").all_inner_texts()
        ]
        ops = [(row[1], row[2], row[3]) for row in rows]
        assert ("get", "product:1", "miss") in ops
        assert ("get", "product:1", "hit") in ops
        assert ("get", "<img src=x onerror=window.__pwned=1>", "miss") in ops  # shown as text
        assert page.evaluate("window.__pwned") is None
        assert panel.locator("#rk-calls img").count() == 0
        assert any(row[1] == "set" and row[4] == "product:1, category:3" for row in rows)
        # the post-commit flush goes through the cache: its invalidate_tags call is listed
        assert any(row[1] == "invalidate_tags" and row[4] == "category:3" for row in rows)
        invalidations = panel.locator("#rk-invalidations tbody").inner_text()
        assert "queued" in invalidations and "sent after commit" in invalidations
        assert "category:3" in invalidations
        scope, outcome, remaining, rates, _ = (
            panel.locator("#rk-throttles tbody tr").inner_text().split("\t")
        )
        # the fixture's warm-up request spent one unit already, this page another
        assert (scope, outcome, remaining, rates) == ("shop", "allowed", "3", "5/60s")
