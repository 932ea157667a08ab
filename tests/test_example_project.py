"""The example project (what `make demo` serves): end to end, and the demo's safe start-up.

The end-to-end script runs against the test Redis (REDIS_URL). The demo itself is run as
`make demo` runs it, with its state (secret key, admin password) in a temporary folder, on a free
port, and under an audit hook that records every socket it connects: it must start and use its
own redis-server and never connect to 127.0.0.1:6379.
"""

from __future__ import annotations

import http.cookiejar
import importlib.util
import os
import queue
import re
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from types import ModuleType

import pytest
from django.conf import settings

from tests.servers import REDIS_SERVER, free_port

EXAMPLE = Path(__file__).resolve().parent.parent / "example_project"

CLIENT_SCRIPT = """
import django, os, uuid
django.setup()
from django.test import Client
from django.core.cache import cache
from shop.models import Product
client = Client(HTTP_HOST="localhost")
home = client.get("/")
assert home.status_code == 200, home.content[:500]
for link in (b'href="/shop/"', b'href="/api/products/"', b'href="/accounts/login/"',
             b'href="/account/devices/"', b'href="/admin/django_rediskit/rediskey/"'):
    assert link in home.content, link
first = client.get("/shop/")
second = client.get("/shop/")
assert first.status_code == 200 and b"Espresso beans" in first.content, first.content[:500]
assert b"Served from Redis" in second.content
product = Product.objects.get(name="Espresso beans 1 kg")
assert client.get(f"/product/{product.pk}/").status_code == 200
assert client.get(f"/category/{product.category_id}/").status_code == 200
product.name = "Decaf beans 1 kg"
product.save()
after = client.get("/shop/")
assert b"Decaf beans" in after.content and b"Served from Redis" not in after.content
api = client.get("/api/products/")
assert api.status_code == 200 and "RateLimit-Policy" in api.headers, api.headers
from django.contrib.auth.models import User
User.objects.create_user("visitor", password="pw-visitor-1")
assert client.get("/accounts/login/").status_code == 200
client.post("/accounts/login/", {"username": "visitor", "password": "pw-visitor-1"})
devices = client.get("/account/devices/")
assert devices.status_code == 200 and b"(this device)" in devices.content, devices.content[:300]

# Login limits (username 5/min): 20 wrong passwords on each login path, each from its own
# address and for its own user, so that only that path's attempts count.
run = uuid.uuid4().hex[:8]
for number, url in enumerate(["/admin/login/", "/accounts/login/", "/api/token/"]):
    name = f"staff-{run}-{number}"
    User.objects.create_user(name, password="right-pw-1", is_staff=True)
    guesser = Client(HTTP_HOST="localhost", REMOTE_ADDR=f"10.{number}.{int(run[:2], 16)}.7")
    codes = [guesser.post(url, {"username": name, "password": f"bad{i}"}).status_code
             for i in range(20)]
    failed = 400 if url == "/api/token/" else 200
    assert codes == [failed] * 5 + [429] * 15, (url, codes)
    refused = guesser.post(url, {"username": name, "password": "right-pw-1"})
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
    assert b"Too many login attempts, try again in" in refused.content, refused.content[:300]
cache.clear()
print("example ok")
"""


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "EXAMPLE_DB": str(tmp_path / "db.sqlite3"),
        "DEMO_STATE_DIR": str(tmp_path / "state"),
        "DJANGO_SETTINGS_MODULE": "example.settings",
        "PYTHONPATH": os.pathsep.join([str(EXAMPLE), str(EXAMPLE.parent)]),
        **extra,
    }
    for name in ("SECRET_KEY", "DEMO_PORT"):
        if name not in extra:
            env.pop(name, None)
    return env


def _run(args: list[str], env: dict[str, str]) -> str:
    result = subprocess.run(
        [sys.executable, *args], cwd=EXAMPLE, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_example_project_serves_and_invalidates(tmp_path: Path) -> None:
    env = _env(tmp_path, REDIS_URL=settings.REDIS_URL)
    _run(["manage.py", "check", "--fail-level", "WARNING"], env)
    _run(["manage.py", "migrate", "--verbosity", "0"], env)
    _run(["manage.py", "seed_shop"], env)
    assert "example ok" in _run(["-c", CLIENT_SCRIPT], env)


def test_settings_refuse_to_guess_a_redis(tmp_path: Path) -> None:
    env = _env(tmp_path)
    env.pop("REDIS_URL", None)
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=EXAMPLE,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0 and "Set REDIS_URL" in result.stderr


# --- the per-checkout secret ---------------------------------------------------------------------


def _local_state(monkeypatch: pytest.MonkeyPatch, state: Path) -> ModuleType:
    monkeypatch.setenv("DEMO_STATE_DIR", str(state))
    monkeypatch.delenv("SECRET_KEY", raising=False)
    spec = importlib.util.spec_from_file_location(
        "demo_local_state", EXAMPLE / "example" / "local_state.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_secret_key_is_generated_once_private_and_ignored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    local_state = _local_state(monkeypatch, tmp_path / "state")
    results: list[str] = []
    threads = [
        threading.Thread(target=lambda: results.append(local_state.secret_key())) for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(results)) == 1 and len(results[0]) >= 50  # one key, however many start at once
    path = tmp_path / "state" / "secret_key"
    assert path.read_text().strip() == results[0]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert local_state.secret_key() == results[0]  # kept across runs
    # another checkout (another state folder) gets another key
    other = _local_state(monkeypatch, tmp_path / "other")
    assert other.secret_key() != results[0]
    monkeypatch.setenv("SECRET_KEY", "from-the-environment")
    assert other.secret_key() == "from-the-environment"
    # the default folder is ignored by git, and no key is committed in the settings
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", "example_project/.demo/secret_key"], cwd=EXAMPLE.parent
    )
    assert ignored.returncode == 0
    text = (EXAMPLE / "example" / "settings.py").read_text()
    assert not re.search(r"SECRET_KEY\s*=\s*['\"]", text)
    assert "insecure" not in text


# --- the demo itself -----------------------------------------------------------------------------

#: Runs demo.py as `make demo` does, recording every address the process connects to.
AUDITED = """
import os, runpy, sys
log = open(os.environ["CONNECT_LOG"], "a", buffering=1)
def hook(event, args):
    if event == "socket.connect":
        log.write(repr(args[1]) + "\\n")
sys.addaudithook(hook)
sys.argv = [os.environ["DEMO_SCRIPT"]]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def _demo(tmp_path: Path, port: int, **extra: str) -> subprocess.Popen[str]:
    env = _env(
        tmp_path,
        DEMO_PORT=str(port),
        CONNECT_LOG=str(tmp_path / "connects.log"),
        DEMO_SCRIPT=str(EXAMPLE / "demo.py"),
        PYTHONUNBUFFERED="1",
        REDIS_SERVER_BIN=REDIS_SERVER,  # the suite's server binary (Valkey under test-valkey)
        **extra,
    )
    env.pop("REDIS_URL", None)
    env.pop("DJANGO_SETTINGS_MODULE", None)
    return subprocess.Popen(
        [sys.executable, "-c", AUDITED],
        cwd=EXAMPLE.parent,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _read_until(process: subprocess.Popen[str], marker: str, timeout: float = 90) -> str:
    """The demo's output up to the line holding ``marker`` (it prints before serving).

    Read on a thread, so a demo that stalls fails the test at the deadline instead of blocking.
    """
    assert process.stdout is not None
    stdout = process.stdout
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in stdout], daemon=True).start()
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        try:
            line = lines.get(timeout=left)
        except queue.Empty:
            break
        seen.append(line)
        if marker in line:
            return "".join(seen)
    raise AssertionError(f"no {marker!r} in the demo's output:\n{''.join(seen)}")


def _wait_http(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"the demo does not listen on {port}")


def _admin_login(port: int, password: str) -> bool:
    """Sign in to the demo's admin over HTTP; True when the admin index is reached."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    base = f"http://127.0.0.1:{port}/admin/login/"
    with opener.open(base, timeout=10) as page:
        html = page.read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
    assert token is not None
    data = urllib.parse.urlencode(
        {
            "csrfmiddlewaretoken": token.group(1),
            "username": "admin",
            "password": password,
            "next": "/admin/",
        }
    ).encode()
    request = urllib.request.Request(base, data=data, headers={"Referer": base})
    with opener.open(request, timeout=10) as answer:
        return bool(
            answer.geturl().endswith("/admin/") and "Site administration" in answer.read().decode()
        )


def test_busy_port_stops_the_demo_before_anything_else(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "admin_password").write_text("kept-password\n")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        process = _demo(tmp_path, port)
        output, _ = process.communicate(timeout=60)
    assert process.returncode != 0
    assert f"Port {port} on 127.0.0.1 is already in use" in output
    assert f"DEMO_PORT={port + 1}" in output
    # nothing was started or changed
    assert "Redis:" not in output
    assert not (tmp_path / "db.sqlite3").exists()
    assert (state / "admin_password").read_text() == "kept-password\n"
    assert not (tmp_path / "connects.log").exists() or not (tmp_path / "connects.log").read_text()


def test_demo_uses_its_own_redis_keeps_its_password_and_refuses_a_second_start(
    tmp_path: Path,
) -> None:
    port = free_port()
    first = _demo(tmp_path, port)
    try:
        banner = _read_until(first, "Admin:")
        match = re.search(r"Redis: redis://127\.0\.0\.1:(\d+)/0 \(a private redis-server", banner)
        assert match, banner
        redis_port = int(match.group(1))
        assert redis_port != 6379
        password = re.search(r"password '([^']+)'", banner)
        assert password, banner
        _wait_http(port)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as home:
            assert f"redis://127.0.0.1:{redis_port}/0" in home.read().decode()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/shop/", timeout=10) as shop:
            assert shop.status == 200
        # a second demo on the same port: a clear message, and the first one's password works
        second = _demo(tmp_path, port)
        output, _ = second.communicate(timeout=60)
        assert second.returncode != 0 and "already in use" in output, output
        assert _admin_login(port, password.group(1))
        # the login limits are on in the demo
        assert (
            "django_rediskit.throttling.login.LoginRateLimitBackend"
            in (EXAMPLE / "example" / "settings.py").read_text()
        )
    finally:
        first.send_signal(signal.SIGTERM)
        first.wait(30)
    # its redis-server stopped with it
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", redis_port), timeout=0.5).close()
    connects = (tmp_path / "connects.log").read_text().splitlines()
    assert any(f"{redis_port})" in line for line in connects), connects[:20]
    assert not [line for line in connects if line.endswith(", 6379)")], connects
    # a later run prints the same password again
    third_port = free_port()
    third = _demo(tmp_path, third_port)
    try:
        assert f"password '{password.group(1)}'" in _read_until(third, "Admin:")
    finally:
        third.send_signal(signal.SIGTERM)
        third.wait(30)
