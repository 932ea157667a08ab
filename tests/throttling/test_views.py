"""@ratelimit, RateLimitMiddleware and the IETF RateLimit headers on plain Django views."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.http import HttpRequest, HttpResponse
from django.test import Client, RequestFactory

from django_rediskit.throttling.views import RateLimitMiddleware, client_ip

pytestmark = [pytest.mark.urls("tests.throttling.urls"), pytest.mark.django_db]

# RFC 9651 List of Items whose bare item is a String and whose parameters are Integers
_ITEM = re.compile(r'"(?P<name>[^"\\]*)"(?P<params>(?:;[a-z][a-z0-9_.*-]*=-?\d{1,15})*)')


def parse_sf_list(value: str) -> dict[str, dict[str, int]]:
    items: dict[str, dict[str, int]] = {}
    for member in value.split(","):
        match = _ITEM.fullmatch(member.strip())
        assert match, f"not a structured-field item: {member!r}"
        params = dict(p.split("=") for p in match["params"].split(";")[1:])
        items[match["name"]] = {k: int(v) for k, v in params.items()}
    return items


@pytest.fixture
def headers_on(settings: Any) -> None:
    settings.REDISKIT = {"THROTTLE": {"HEADERS": True}}
    settings.REST_FRAMEWORK = {"DEFAULT_THROTTLE_RATES": {"x": "3/min"}, "NUM_PROXIES": 0}


def test_decorator_limits_and_answers_429_with_retry_after(client: Client) -> None:
    responses = [client.get("/limited/") for _ in range(3)]
    assert [r.status_code for r in responses] == [200, 200, 429]
    assert 1 <= int(responses[-1].headers["Retry-After"]) <= 60
    assert "RateLimit" not in responses[-1].headers  # headers are opt-in


def test_decorator_only_limits_the_listed_methods(client: Client) -> None:
    assert [client.get("/login/").status_code for _ in range(5)] == [200] * 5
    assert [client.post("/login/").status_code for _ in range(3)] == [200, 200, 429]


def test_non_blocking_mode_and_unkeyed_requests(client: Client) -> None:
    assert [client.get("/soft/?k=a").content for _ in range(2)] == [b"fresh", b"limited"]
    assert [client.get("/soft/").content for _ in range(3)] == [b"fresh"] * 3  # key None


@pytest.mark.usefixtures("headers_on")
def test_ratelimit_headers_parse_as_structured_fields(client: Client) -> None:
    first, _second, third = (client.get("/limited/") for _ in range(3))
    policy = parse_sf_list(first.headers["RateLimit-Policy"])
    assert list(policy.values()) == [{"q": 2, "w": 60}]
    (name,) = policy
    assert parse_sf_list(first.headers["RateLimit"])[name]["r"] == 1
    state = parse_sf_list(third.headers["RateLimit"])[name]
    assert state["r"] == 0 and 1 <= state["t"] <= 60
    assert third.status_code == 429 and int(third.headers["Retry-After"]) <= state["t"]


@pytest.mark.usefixtures("headers_on")
def test_middleware_adds_drf_throttle_headers(client: Client, settings: Any) -> None:
    settings.MIDDLEWARE = [
        *settings.MIDDLEWARE,
        "django_rediskit.throttling.views.RateLimitMiddleware",
    ]
    responses = [client.get("/x/") for _ in range(4)]
    assert [r.status_code for r in responses] == [200, 200, 200, 429]
    states = [parse_sf_list(r.headers["RateLimit"]) for r in responses]
    assert [next(iter(s.values()))["r"] for s in states] == [2, 1, 0, 0]
    assert int(responses[-1].headers["Retry-After"]) >= 1


def test_middleware_site_wide_rate(settings: Any, rf: RequestFactory) -> None:
    settings.REDISKIT = {"THROTTLE": {"MIDDLEWARE_RATE": "2/min"}}

    def view(request: HttpRequest) -> HttpResponse:
        return HttpResponse("ok")

    middleware = RateLimitMiddleware(view)
    codes = []
    for addr in ["192.0.2.1"] * 3 + ["192.0.2.2"]:
        request = rf.get("/", REMOTE_ADDR=addr)
        request.user = type("Anon", (), {"is_authenticated": False})()  # type: ignore[assignment]
        codes.append(middleware(request).status_code)
    assert codes == [200, 200, 429, 200]


@pytest.mark.parametrize(
    ("num_proxies", "xff", "expected"),
    [
        (0, "1.1.1.1", "192.0.2.9"),
        (1, "1.1.1.1, 2.2.2.2", "2.2.2.2"),
        (2, "1.1.1.1, 2.2.2.2", "1.1.1.1"),
        (5, "1.1.1.1, 2.2.2.2", "1.1.1.1"),
        (1, None, "192.0.2.9"),
    ],
)
def test_client_ip_trusts_only_our_proxies(
    settings: Any, rf: RequestFactory, num_proxies: int, xff: str | None, expected: str
) -> None:
    settings.REDISKIT = {"THROTTLE": {"NUM_PROXIES": num_proxies}}
    headers = {"x-forwarded-for": xff} if xff else {}
    assert client_ip(rf.get("/", REMOTE_ADDR="192.0.2.9", headers=headers)) == expected


def test_bad_decorator_arguments_fail_at_decoration() -> None:
    from django.core.exceptions import ImproperlyConfigured

    from django_rediskit.throttling.views import ratelimit

    with pytest.raises(ImproperlyConfigured):
        ratelimit("10/fortnight")
    with pytest.raises(ImproperlyConfigured):
        ratelimit("10/min", key="cookie")
