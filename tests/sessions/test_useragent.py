"""User-agent parsing: ua-parser when installed, the built-in rules otherwise, and the compact
stored form that keeps the index listpack-encoded."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from django_rediskit.sessions import list_devices, useragent
from tests.sessions.test_devices import FIREFOX, SAFARI_IOS, login

EDGE = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0"
)


@pytest.fixture
def with_ua_parser(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    module = pytest.importorskip("ua_parser")
    monkeypatch.setattr(useragent, "ua_parser", module)
    useragent.parse.cache_clear()
    yield module
    useragent.parse.cache_clear()


def test_builtin_parser_is_used_without_ua_parser() -> None:
    assert useragent.ua_parser is None  # the autouse fixture in conftest.py
    assert useragent.parse(SAFARI_IOS) == ("Safari", "iOS")
    assert useragent.parse(EDGE) == ("Edge", "Windows")
    assert useragent.parse("") == ("Other", "Other")


def test_ua_parser_is_used_when_installed(with_ua_parser: ModuleType) -> None:
    assert useragent.parse(SAFARI_IOS) == ("Mobile Safari", "iOS")
    assert useragent.parse(EDGE) == ("Edge", "Windows")
    assert useragent.parse("") == ("Other", "Other")


@pytest.mark.django_db
def test_device_list_shows_ua_parser_families(with_ua_parser: ModuleType, make_user: Any) -> None:
    user = make_user()
    login(user, SAFARI_IOS)
    [device] = list_devices(user)
    assert (device.browser, device.os) == ("Mobile Safari", "iOS")


def test_missing_ua_parser_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_module(name: str) -> ModuleType:
        raise ImportError(name)

    monkeypatch.setattr(importlib, "import_module", no_module)
    assert useragent._optional_parser() is None


def test_short_form_drops_boilerplate_tokens() -> None:
    assert useragent.shorten(EDGE) == "(Windows NT 10.0; Win64; x64) Chrome/131.0.0.0 Edg/131.0.0.0"
    assert useragent.shorten(FIREFOX) == "(Windows NT 10.0; Win64; x64; rv:128.0) Firefox/128.0"
    # Safari's own agent keeps its Safari token.
    assert useragent.shorten(SAFARI_IOS).endswith("Mobile/15E148 Safari/604.1")


def test_client_field_keeps_the_last_product_token_when_cut() -> None:
    field = useragent.client_field("203.0.113.9", EDGE)
    assert len(field) == useragent.CLIENT_FIELD_MAX and field.startswith(
        "203.0.113.9|Edge|Windows|(Windows NT 10.0"
    )
    assert field.endswith("~ Edg/131.0.0.0")
    assert useragent.read_client_field(field)[:3] == ("203.0.113.9", "Edge", "Windows")


def test_client_field_keeps_a_long_ipv6_address_whole() -> None:
    ip = "2001:db8:85a3:8d3:1319:8a2e:370:7348"
    field = useragent.client_field(ip, EDGE)
    assert len(field) <= useragent.CLIENT_FIELD_MAX
    assert useragent.read_client_field(field)[:3] == (ip, "Edge", "Windows")


@given(st.text(max_size=80), st.text(max_size=600))
def test_client_field_is_bounded_ascii_for_any_header(ip: str, agent: str) -> None:
    field = useragent.client_field(ip, agent)
    assert len(field.encode()) == len(field) <= useragent.CLIENT_FIELD_MAX
    address, browser, system, short = field.split("|", 3)
    assert "|" not in short and browser and system
    assert useragent.read_client_field(field) == (address, browser, system, short)
