"""`make serve` (gunicorn, 4 workers) and `make serve-asgi` (uvicorn): the shop served
production-like, by demo.py as the Makefile runs it, with its own private redis-server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.servers import REDIS_SERVER, free_port
from tests.test_example_project import EXAMPLE, _read_until, _wait_http


def _serve(tmp_path: Path, port: int, *args: str) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "DEMO_PORT": str(port),
        "DEMO_STATE_DIR": str(tmp_path / "state"),
        "EXAMPLE_DB": str(tmp_path / "db.sqlite3"),
        "STATIC_ROOT": str(tmp_path / "static"),
        "REDIS_SERVER_BIN": REDIS_SERVER,
        "PYTHONUNBUFFERED": "1",
    }
    for name in ("REDIS_URL", "DJANGO_SETTINGS_MODULE", "SECRET_KEY", "DATABASE_URL", "DEBUG"):
        env.pop(name, None)
    return subprocess.Popen(
        [sys.executable, str(EXAMPLE / "demo.py"), *args],
        cwd=EXAMPLE.parent,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=20) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def _workers(pid: int) -> int:
    """Python processes below ``pid`` (the server's master and its workers)."""
    found = 0
    frontier = [pid]
    while frontier:
        parent = frontier.pop()
        children = Path(f"/proc/{parent}/task/{parent}/children")
        kids = [int(k) for k in children.read_text().split()] if children.exists() else []
        frontier.extend(kids)
        found += len(kids)
    return found


@pytest.mark.parametrize("server", ["gunicorn", "uvicorn"])
def test_serve_production_like(tmp_path: Path, server: str) -> None:
    port = free_port()
    process = _serve(tmp_path, port, "--server", server, "--workers", "4")
    try:
        banner = _read_until(process, f"Serving with {server}, 4 workers")
        assert "a private redis-server" in banner
        _wait_http(port, timeout=60)
        base = f"http://127.0.0.1:{port}"
        status, shop = _get(base + "/shop/")
        assert status == 200 and "Espresso beans" in shop
        status, css = _get(base + "/static/shop/style.css")
        assert status == 200 and ".card" in css  # collected and served with DEBUG off
        status, missing = _get(base + "/product/999999/")
        assert status == 404 and "Traceback" not in missing  # DEBUG is off: no debug page
        status, page = _get(base + "/async/product/1/")
        assert status == 200 and "await cache.aget" in page
        assert _get(base + "/api/products/")[0] == 200
        # redis-server + the server's master + 4 workers (uvicorn adds a spawn helper)
        assert _workers(process.pid) >= 6
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(30)


def test_serve_refuses_bad_worker_counts(tmp_path: Path) -> None:
    process = _serve(tmp_path, free_port(), "--server", "gunicorn", "--workers", "0")
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 2 and "--workers must be between 1 and 64" in output
