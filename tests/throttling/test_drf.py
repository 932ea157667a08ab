"""DRF parity: DRF's documented throttle behaviours hold for the rediskit classes.

Cases follow DRF's own tests/test_throttling.py (Retry-After values, expiry, follow-on rates,
scopes, anon vs user, NUM_PROXIES); differences (unknown units raise, lists of rates) are at the
end.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ImproperlyConfigured
from django.test import Client
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from django_rediskit.throttling import drf
from tests.throttling import urls

pytestmark = [pytest.mark.urls("tests.throttling.urls"), pytest.mark.django_db]


@pytest.fixture(autouse=True)
def _drf_settings(settings: Any) -> None:
    settings.REST_FRAMEWORK = {
        "DEFAULT_THROTTLE_RATES": {"user": "3/min", "anon": "2/min", "x": "3/min", "y": "1/min"},
        "NUM_PROXIES": 0,
    }


def _timed(monkeypatch: pytest.MonkeyPatch, view: type, value: float) -> None:
    """DRF's tests set ``timer`` on the throttle classes; our classes then use that clock."""
    for cls in view.throttle_classes:
        monkeypatch.setattr(cls, "timer", lambda self, v=value: v, raising=False)


def _retry_afters(
    client: Client, monkeypatch: pytest.MonkeyPatch, view: type, url: str, times: list[float]
) -> list[tuple[int, str | None]]:
    out = []
    for value in times:
        _timed(monkeypatch, view, value)
        response = client.get(url)
        out.append((response.status_code, response.headers.get("Retry-After")))
    return out


def test_requests_are_throttled(client: Client) -> None:
    codes = [client.get("/second/").status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]


def test_seconds_fields(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    got = _retry_afters(client, monkeypatch, urls.SecondView, "/second/", [0, 0, 0, 0])
    assert got == [(200, None), (200, None), (200, None), (429, "1")]


def test_minutes_fields(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    got = _retry_afters(client, monkeypatch, urls.MinuteView, "/minute/", [0, 0, 0, 0])
    assert got == [(200, None), (200, None), (200, None), (429, "60")]


def test_next_rate_remains_constant_if_followed(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    got = _retry_afters(client, monkeypatch, urls.MinuteView, "/minute/", [0, 20, 40, 60, 80])
    assert got == [(200, None)] * 5


def test_request_throttling_expires(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    got = _retry_afters(client, monkeypatch, urls.SecondView, "/second/", [0, 0, 0, 0, 1])
    assert [code for code, _ in got] == [200, 200, 200, 429, 200]


def test_retry_after_counts_from_the_entry_that_must_expire(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    got = _retry_afters(client, monkeypatch, urls.MinuteView, "/minute/", [0, 10, 20, 30.5])
    assert got[-1] == (429, "30")  # the entry of t=0 leaves the window at t=60


def test_wait_is_never_none_while_throttled() -> None:
    factory = APIRequestFactory()
    throttle = urls.ThreePerMinute()
    request = urls.MinuteView().initialize_request(factory.get("/"))
    assert throttle.wait() == 15.0  # nothing decided yet: DRF's answer (60 s / 4)
    results = [throttle.allow_request(request, None) for _ in range(4)]
    assert results == [True, True, True, False]
    assert 59 < throttle.wait() <= 60


def test_user_and_anon_throttles(client: Client) -> None:
    # anonymous: the tighter anon rate (2/min) binds
    assert [client.get("/user/").status_code for _ in range(3)] == [200, 200, 429]
    user = User.objects.create_user("u1", password="pw")
    client.force_login(user)
    # authenticated: the anon throttle steps aside, the user rate (3/min) applies per user
    assert [client.get("/user/").status_code for _ in range(4)] == [200, 200, 200, 429]
    other = Client()
    other.force_login(User.objects.create_user("u2", password="pw"))
    assert other.get("/user/").status_code == 200


def test_scoped_throttles_keep_separate_budgets(client: Client) -> None:
    assert [client.get("/x/").status_code for _ in range(4)] == [200, 200, 200, 429]
    assert [client.get("/y/").status_code for _ in range(2)] == [200, 429]
    assert [client.get("/unscoped/").status_code for _ in range(10)] == [200] * 10


def test_a_view_can_cost_more_than_one_unit(client: Client) -> None:
    assert [client.get("/expensive/").status_code for _ in range(2)] == [200, 429]
    assert client.get("/x/").status_code == 200  # 2 + 1 = 3 units of the x scope


@pytest.mark.parametrize(
    ("num_proxies", "xffs", "codes"),
    [
        # NUM_PROXIES=0: X-Forwarded-For is ignored, every request is 127.0.0.1
        (0, ["10.0.0.1", "10.0.0.2", "10.0.0.3"], [200, 200, 429]),
        # NUM_PROXIES=1: the last entry (added by our proxy) is the client
        (1, ["9.9.9.9, 10.0.0.1", "8.8.8.8, 10.0.0.1", "10.0.0.2"], [200, 200, 200]),
        (1, ["9.9.9.9, 10.0.0.1", "8.8.8.8, 10.0.0.1", "7.7.7.7, 10.0.0.1"], [200, 200, 429]),
    ],
)
def test_num_proxies(
    client: Client, settings: Any, num_proxies: int, xffs: list[str], codes: list[int]
) -> None:
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": num_proxies}
    got = [client.get("/user/", headers={"x-forwarded-for": xff}).status_code for xff in xffs]
    assert got == codes


def test_parse_rate_and_attributes() -> None:
    throttle = urls.ThreePerMinute()
    assert (throttle.num_requests, throttle.duration) == (3, 60)
    assert throttle.parse_rate(None) == (None, None)
    assert throttle.parse_rate("1000/day;10/5s") == (10, 5)  # the shortest window


def test_difference_unknown_units_raise(settings: Any) -> None:
    class Monthly(drf.UserRateThrottle):
        rate = "100/month"  # DRF: silently 100 per *minute*

    with pytest.raises(ImproperlyConfigured):
        Monthly()


def test_missing_scope_or_rate_is_a_configuration_error(settings: Any) -> None:
    class NoScope(drf.SimpleRateThrottle):
        pass

    class UnknownScope(drf.SimpleRateThrottle):
        scope = "nope"

    with pytest.raises(ImproperlyConfigured):
        NoScope()
    with pytest.raises(ImproperlyConfigured):
        UnknownScope()


def test_a_none_rate_never_throttles(client: Client, settings: Any) -> None:
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"x": None}}
    assert [client.get("/x/").status_code for _ in range(5)] == [200] * 5


def test_lists_of_rates_are_all_or_nothing(client: Client, settings: Any) -> None:
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"x": "2/5s;3/min"},
    }
    assert [client.get("/x/").status_code for _ in range(3)] == [200, 200, 429]


# --- DRF's public attributes on a fresh throttle (issue 10) -----------------------------------


class ThreePerMinute(drf.UserRateThrottle):
    rate = "3/min"


def test_timer_is_callable_and_the_redis_clock_decides_by_default() -> None:
    throttle = ThreePerMinute()
    assert isinstance(throttle.timer(), float)
    assert throttle.decision_time() is None  # not overridden: Redis TIME decides


def test_an_overridden_timer_decides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ThreePerMinute, "timer", lambda self: 1234.5)
    assert ThreePerMinute().decision_time() == 1234.5


@pytest.mark.parametrize(
    ("history", "expected"),
    [([], 30.0), ([100.0], 55.0 / 1), ([100.0, 101.0, 102.0], None)],
)
def test_wait_without_a_decision_is_drfs_answer(
    history: list[float], expected: float | None
) -> None:
    throttle = ThreePerMinute()
    throttle.num_requests, throttle.duration = 1, 60
    throttle.history, throttle.now = history, 105.0
    waited = throttle.wait()
    assert waited == expected
    if expected is not None:
        assert isinstance(waited, float)


def test_wait_after_a_redis_decision_is_exact_and_never_none_when_rejected() -> None:
    factory = APIRequestFactory()
    wrapped = Request(factory.get("/"))
    throttle = ThreePerMinute()
    for _ in range(3):
        assert throttle.allow_request(wrapped, None)
        assert throttle.wait() is None
    assert not throttle.allow_request(wrapped, None)
    waited = throttle.wait()
    assert isinstance(waited, float) and 0 < waited <= 60
