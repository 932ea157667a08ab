"""The example project (what `make demo` serves) works end to end against the test Redis."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from django.conf import settings

EXAMPLE = Path(__file__).resolve().parent.parent / "example_project"

CLIENT_SCRIPT = """
import django, os
django.setup()
from django.test import Client
from django.core.cache import cache
from shop.models import Product
client = Client(HTTP_HOST="localhost")
first = client.get("/")
second = client.get("/")
assert first.status_code == 200 and b"Espresso beans" in first.content, first.content[:500]
assert b"Served from Redis" in second.content
product = Product.objects.get(name="Espresso beans 1 kg")
assert client.get(f"/product/{product.pk}/").status_code == 200
assert client.get(f"/category/{product.category_id}/").status_code == 200
product.name = "Decaf beans 1 kg"
product.save()
after = client.get("/")
assert b"Decaf beans" in after.content and b"Served from Redis" not in after.content
api = client.get("/api/products/")
assert api.status_code == 200 and "RateLimit-Policy" in api.headers, api.headers
from django.contrib.auth.models import User
User.objects.create_user("visitor", password="pw-visitor-1")
assert client.get("/accounts/login/").status_code == 200
client.post("/accounts/login/", {"username": "visitor", "password": "pw-visitor-1"})
devices = client.get("/account/devices/")
assert devices.status_code == 200 and b"(this device)" in devices.content, devices.content[:300]
cache.clear()
print("example ok")
"""


def _run(args: list[str], env: dict[str, str]) -> str:
    result = subprocess.run(
        [sys.executable, *args], cwd=EXAMPLE, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_example_project_serves_and_invalidates(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "REDIS_URL": settings.REDIS_URL,
        "EXAMPLE_DB": str(tmp_path / "db.sqlite3"),
        "DJANGO_SETTINGS_MODULE": "example.settings",
        "PYTHONPATH": os.pathsep.join([str(EXAMPLE), str(EXAMPLE.parent)]),
    }
    _run(["manage.py", "check", "--fail-level", "WARNING"], env)
    _run(["manage.py", "migrate", "--verbosity", "0"], env)
    _run(["manage.py", "seed_shop"], env)
    assert "example ok" in _run(["-c", CLIENT_SCRIPT], env)
