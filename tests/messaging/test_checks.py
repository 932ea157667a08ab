"""System checks of REDISKIT["MESSAGING"]."""

from __future__ import annotations

from django.test import override_settings

from django_rediskit.messaging.checks import messaging_messages


def ids(**messaging: object) -> list[str]:
    with override_settings(REDISKIT={"MESSAGING": messaging}):
        return [message.id or "" for message in messaging_messages()]


def test_default_configuration_is_clean() -> None:
    assert ids() == []


def test_typos_bad_handlers_and_timeouts_are_reported() -> None:
    assert ids(VISIBILTY_TIMEOUT=5) == ["django_rediskit.W801"]
    assert ids(QUEUES={"a": "no.such.handler"}) == ["django_rediskit.E804"]
    assert ids(QUEUES={"a": "django.conf.settings"}) == ["django_rediskit.E804"]  # not callable
    assert ids(QUEUES={"a": {"HANDLR": "x"}}) == ["django_rediskit.E802"]
    assert ids(VISIBILITY_TIMEOUT=10, HANDLER_DEADLINE=10) == ["django_rediskit.E803"]
    good = "tests.messaging.handlers.record_slowly"
    assert ids(QUEUES={"a": {"HANDLER": good, "VISIBILITY_TIMEOUT": 1}}) == ["django_rediskit.E803"]
    assert ids(QUEUES={"a": good}) == []
    with override_settings(REDISKIT={"MESSAGING": []}):
        assert [m.id for m in messaging_messages()] == ["django_rediskit.E801"]
