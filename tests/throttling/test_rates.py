"""The rate parser and the throttle system checks."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured

from django_rediskit.throttling.checks import check_throttle_settings
from django_rediskit.throttling.rates import Rate, parse_rate, parse_rates


@pytest.mark.parametrize(
    ("text", "limit", "window"),
    [
        ("100/min", 100, 60),
        ("100/m", 100, 60),
        ("3/s", 3, 1),
        ("3/sec", 3, 1),
        ("3/second", 3, 1),
        ("1000/day", 1000, 86400),
        ("1000/d", 1000, 86400),
        ("10/hour", 10, 3600),
        ("5/10s", 5, 10),
        ("100/15m", 100, 900),
        ("10/2h", 10, 7200),
        (" 7 / 3 days ", 7, 259200),
        ("7/MIN", 7, 60),
    ],
)
def test_parses_drf_forms_and_multiples(text: str, limit: int, window: int) -> None:
    assert parse_rate(text) == Rate(window=window, limit=limit)


def test_lists_are_sorted_shortest_window_first() -> None:
    assert parse_rates("1000/day;100/min, 10/5s") == (
        Rate(5, 10),
        Rate(60, 100),
        Rate(86400, 1000),
    )
    assert parse_rates(None) == ()


@pytest.mark.parametrize(
    "text",
    [
        "100/month",  # DRF silently reads this as 100 per minute
        "100/week",
        "100/mn",
        "100",
        "/min",
        "abc/min",
        "0/min",
        "5/0s",
        "-1/min",
        "1.5/min",
        "",
        ";",
        "100/min;5/60s",  # two limits for one window
    ],
)
def test_rejects_unknown_units_and_malformed_rates(text: str) -> None:
    with pytest.raises(ImproperlyConfigured):
        parse_rates(text)


@pytest.mark.parametrize("value", [100, b"100/min", ["100/min"]])
def test_rejects_non_strings(value: Any) -> None:
    with pytest.raises(ImproperlyConfigured):
        parse_rates(value)


def test_rate_labels() -> None:
    rate = parse_rate("100/15m")
    assert (str(rate), rate.name, rate.window_us) == ("100/900s", "100-per-900s", 900_000_000)


def _ids(messages: list[Any]) -> list[str]:
    return sorted(message.id for message in messages)


def test_checks_pass_on_a_sound_configuration(settings: Any) -> None:
    settings.REST_FRAMEWORK = {
        "DEFAULT_THROTTLE_CLASSES": ["django_rediskit.throttling.drf.UserRateThrottle"],
        "DEFAULT_THROTTLE_RATES": {"user": "100/min;1000/day", "anon": None},
        "NUM_PROXIES": 1,
    }
    assert check_throttle_settings() == []


def test_checks_report_bad_rates_algorithm_typos_and_trusted_xff(settings: Any) -> None:
    settings.REST_FRAMEWORK = {
        "DEFAULT_THROTTLE_CLASSES": ["django_rediskit.throttling.drf.AnonRateThrottle"],
        "DEFAULT_THROTTLE_RATES": {"anon": "100/month"},
    }
    settings.REDISKIT = {
        "THROTTLE": {"ALGORITHM": "leaky", "FAIL_OPN": False, "MIDDLEWARE_RATE": "5/fortnight"}
    }
    messages = check_throttle_settings()
    assert _ids(messages) == [
        "django_rediskit.E601",
        "django_rediskit.E601",
        "django_rediskit.E603",
        "django_rediskit.W601",
        "django_rediskit.W602",
    ]
    assert "'FAIL_OPEN'" in str([m.hint for m in messages])


def test_check_warns_about_huge_exact_logs(settings: Any) -> None:
    settings.REST_FRAMEWORK = {"DEFAULT_THROTTLE_RATES": {"user": "50000/day"}}
    assert _ids(check_throttle_settings()) == ["django_rediskit.W603"]
    settings.REDISKIT = {"THROTTLE": {"ALGORITHM": "gcra"}}
    assert check_throttle_settings() == []


def test_check_rejects_a_throttle_section_that_is_not_a_dict(settings: Any) -> None:
    settings.REDISKIT = {"THROTTLE": "exact"}
    assert _ids(check_throttle_settings()) == ["django_rediskit.E602"]
