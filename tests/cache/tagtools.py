"""Helpers shared by the tag tests: a round-trip counter and private-server caches."""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from redis.connection import AbstractConnection

from django_rediskit.cache.backend import RedisCache


class Measurement:
    count = 0


class RoundTrips:
    """Counts network sends (one per command, one per pipeline) made by this thread."""

    def __init__(self) -> None:
        self.count = 0
        self.thread = threading.get_ident()

    @contextlib.contextmanager
    def measure(self) -> Iterator[Measurement]:
        result = Measurement()
        start = self.count
        try:
            yield result
        finally:
            result.count = self.count - start


@pytest.fixture
def round_trips(monkeypatch: pytest.MonkeyPatch) -> RoundTrips:
    counter = RoundTrips()
    original = AbstractConnection.send_packed_command

    def counting(self: AbstractConnection, command: Any, check_health: bool = True) -> None:
        if threading.get_ident() == counter.thread:
            counter.count += 1
        original(self, command, check_health)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", counting)
    return counter


def private_cache(url: str, **options: Any) -> RedisCache:
    """A backend on a private server, outside settings.CACHES (its own breaker and stats)."""
    options.setdefault("SOCKET_CONNECT_TIMEOUT", 0.2)
    options.setdefault("SOCKET_TIMEOUT", 0.5)
    return RedisCache(url, {"KEY_PREFIX": f"pt-{uuid.uuid4().hex[:6]}", "OPTIONS": options})
