"""Fixtures for throttle tests: clean throttle keys, a throttle alias on a private server."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.core.cache import caches

from django_rediskit.aliases import backend_for_alias
from django_rediskit.connection.policy import close_breakers
from tests import servers

_ids = itertools.count()


@pytest.fixture(autouse=True)
def _clean_throttle_keys() -> Iterator[None]:
    """Each test ends with this run's throttle keys deleted (``clear()`` resets them as well,
    but not every test clears the cache).

    Breakers start closed: throttles use 0.2 s socket timeouts, so on a starved machine one
    slow reply could open an alias's breaker and make the next tests' decisions fail open.
    """
    close_breakers()
    yield
    backend = caches["default"]
    client = backend.client.get_client(write=True)
    pattern = backend.feature_key("throttle", "*")
    keys = list(client.scan_iter(match=pattern, count=1000))
    if keys:
        client.unlink(*keys)


@pytest.fixture
def unique_scope() -> str:
    """A scope no other test uses, so histories never leak between tests."""
    return f"t{next(_ids)}"


@pytest.fixture
def throttle_server(private_redis: servers.RedisServer, settings: Any) -> servers.RedisServer:
    """A private redis-server behind the throttles' alias, to stop, flush and count commands on.

    The alias name is unique per server: breakers and pools are per alias in a process.
    """
    alias = f"throttle{private_redis.port}"
    settings.CACHES = {
        **settings.CACHES,
        alias: {
            "BACKEND": "django_rediskit.cache.RedisCache",
            "LOCATION": private_redis.url,
            "KEY_PREFIX": "thr",
            "OPTIONS": {"CIRCUIT_BREAKER": {"FAILURE_THRESHOLD": 2, "RECOVERY_TIME": 0.5}},
        },
    }
    settings.REDISKIT = {
        "THROTTLE": {
            "CACHE_ALIAS": alias,
            "SOCKET_TIMEOUT": 0.5,
            "SOCKET_CONNECT_TIMEOUT": 0.5,
        }
    }
    assert backend_for_alias(alias).key_prefix == "thr"
    return private_redis


def client_commands(server: servers.RedisServer, action: Callable[[], object]) -> list[str]:
    """The commands clients sent to ``server`` while ``action`` ran (MONITOR), names uppercased.

    Commands that Lua scripts ran are left out: a round trip is one command sent by a client.
    """
    marker = "rediskit-monitor-end"
    with server.client() as admin, server.client() as watcher:
        admin.ping()  # connect now, so its handshake is not among the commands
        with watcher.monitor() as monitor:
            action()
            admin.echo(marker)
            sent: list[str] = []
            while True:
                command = monitor.next_command()
                if marker in command["command"]:
                    return sent
                if command["client_type"] != "lua":
                    sent.append(command["command"].split(" ", 1)[0].upper())
