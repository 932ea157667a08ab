"""Throttles in the inspector: an identity's windows read with RateLimiter.peek, the key panel."""

from __future__ import annotations

import base64
import threading
from typing import Any

import pytest
import redis
from django.test import Client

from django_rediskit.throttling import RateLimiter
from tests.inspector.conftest import ALIAS, ALL_PERMS, BASE, make_user

XSS = "<script>alert(1)</script>"
URL = BASE + "throttle/"

pytestmark = pytest.mark.django_db


def _ref(key: bytes) -> str:
    return base64.urlsafe_b64encode(key).rstrip(b"=").decode()


def _query(**fields: str) -> dict[str, str]:
    return {"alias": ALIAS, "scope": "login", "ident": "10.0.0.9", "rates": "5/min", **fields}


def test_peek_shows_the_window_without_consuming(admin_client: Client, raw: redis.Redis) -> None:
    limiter = RateLimiter("5/min;100/day", algorithm="exact", alias=ALIAS)
    for _ in range(3):
        assert limiter.hit("login", "10.0.0.9").allowed
    query = _query(rates="5/min;100/day", algorithm="exact")
    for _ in range(2):  # peeking twice changes nothing
        page = admin_client.get(URL, query)
        assert page.status_code == 200
        statuses = page.context["decision"].statuses
        assert [s.remaining for s in statuses] == [2, 97]
    keys = limiter.keys("login", "10.0.0.9")
    assert [key for _, key, _ in page.context["windows"]] == keys
    assert all(raw.exists(key) for key in keys)
    assert b"10.0.0.9" not in b"".join(key.encode() for key in keys)  # identity hashed
    key_page = admin_client.get(BASE + "key/", {"alias": ALIAS, "k": _ref(keys[0].encode())})
    rows = dict(key_page.context["panel_rows"])
    assert rows["Scope"] == "login" and rows["Window"] == "60 s"


def test_concurrent_hits_are_all_counted_in_the_peek(admin_client: Client) -> None:
    limiter = RateLimiter("50/min", algorithm="exact", alias=ALIAS)
    barrier = threading.Barrier(4)

    def worker() -> None:
        barrier.wait()
        for _ in range(5):
            limiter.hit("api", "u1")

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    page = admin_client.get(URL, _query(scope="api", ident="u1", rates="50/min", algorithm="exact"))
    assert page.context["decision"].statuses[0].remaining == 30


@pytest.mark.parametrize(
    "perms", [tuple(p for p in ALL_PERMS if p != "view_values"), ("view_values",)]
)
def test_throttle_page_needs_view_keys_and_view_values(
    inspect_settings: Any, perms: tuple[str, ...]
) -> None:
    client = Client()
    client.force_login(make_user("t" + str(len(perms)), *perms))
    assert client.get(URL, _query()).status_code == 403


def test_bad_input_is_a_400_and_input_is_escaped(admin_client: Client) -> None:
    assert admin_client.get(URL, _query(rates="lots")).status_code == 400
    assert admin_client.get(URL, _query(algorithm="magic")).status_code == 400
    assert admin_client.get(URL, _query(scope="a{b}")).status_code == 400
    page = admin_client.get(URL, _query(ident=XSS))
    assert page.status_code == 200 and XSS.encode() not in page.content
    assert b"&lt;script&gt;" in page.content
    form = admin_client.get(URL, {"alias": ALIAS})
    assert form.status_code == 200 and "decision" not in form.context


def test_redis_down_is_a_503(admin_client: Client, server: Any) -> None:
    server.stop()
    try:
        page = admin_client.get(URL, _query())
        assert page.status_code == 503 and b"Redis is unavailable" in page.content
    finally:
        server.start()
