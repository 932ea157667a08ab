"""Fixtures for the inspector: a recording connection, an alias on a private server, users.

``RecordingConnection`` is installed through the alias's ``CONNECTION_POOL_KWARGS``, so it sees
every command the inspector sends through the real client stack, counts round trips (one per
single command, one per pipeline) and is checked after every test against the forbidden list.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from django.contrib.auth.models import Permission, User
from django.test import Client, override_settings

from tests import servers

ALIAS = "inspect"


class Recorder:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.commands: list[tuple[bytes, ...]] = []
        self.round_trips = 0

    def reset(self) -> None:
        with self.lock:
            self.commands.clear()
            self.round_trips = 0

    def add(self, commands: list[tuple[Any, ...]]) -> None:
        with self.lock:
            self.round_trips += 1
            self.commands.extend(tuple(_b(part) for part in command) for command in commands)

    def names(self) -> list[str]:
        return [command[0].decode().upper() for command in self.commands]

    def count(self, name: str) -> int:
        return self.names().count(name.upper())


def _b(part: Any) -> bytes:
    if isinstance(part, bytes):
        return part
    return str(part).encode()


RECORDER = Recorder()


class RecordingConnection(redis.Connection):
    """A redis-py connection that logs each command it sends (not the connection handshake)."""

    handshaking = False

    def on_connect(self) -> None:
        self.handshaking = True
        try:
            super().on_connect()
        finally:
            self.handshaking = False

    def send_command(self, *args: Any, **kwargs: Any) -> None:
        if not self.handshaking:
            RECORDER.add([args])
        super().send_command(*args, **kwargs)

    def pack_commands(self, commands: Any) -> list[bytes]:
        commands = list(commands)
        RECORDER.add([tuple(command) for command in commands])
        packed: list[bytes] = super().pack_commands(commands)
        return packed


def forbidden(command: tuple[bytes, ...]) -> str | None:
    """Why ``command`` must never come from the inspector, or None if it is fine."""
    name = command[0].upper()
    args = [part.upper() for part in command[1:]]
    if name in (b"KEYS", b"FLUSHDB", b"FLUSHALL", b"HGETALL", b"SMEMBERS", b"HVALS", b"HKEYS"):
        return f"{name.decode()} is forbidden"
    if name in (b"LRANGE", b"ZRANGE") and len(args) >= 3 and args[2] == b"-1":
        return f"{name.decode()} to -1 reads a whole collection"
    if name == b"MEMORY" and b"SAMPLES" in args and args[args.index(b"SAMPLES") + 1] == b"0":
        return "MEMORY USAGE SAMPLES 0 walks whole values"
    return None


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    RECORDER.reset()
    yield RECORDER
    bad = [(command, forbidden(command)) for command in RECORDER.commands if forbidden(command)]
    RECORDER.reset()
    assert not bad, f"forbidden commands sent: {bad[:5]}"


@pytest.fixture
def server(private_redis: servers.RedisServer) -> servers.RedisServer:
    return private_redis


@pytest.fixture
def raw(server: servers.RedisServer) -> Iterator[redis.Redis]:
    client = server.client()
    yield client
    client.close()


@pytest.fixture
def inspect_settings(
    server: servers.RedisServer, settings: Any, recorder: Recorder
) -> Iterator[dict[str, Any]]:
    """CACHES['inspect'] on the private server (recorded), and the inspector writable."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast users
    caches = dict(settings.CACHES)
    caches[ALIAS] = {
        "BACKEND": "django_rediskit.cache.RedisCache",
        "LOCATION": server.url,
        "KEY_PREFIX": "app",
        "OPTIONS": {"CONNECTION_POOL_KWARGS": {"connection_class": RecordingConnection}},
    }
    # Most tests plant keys anywhere in the database; test_hardening.py runs on the default
    # scope (the alias's prefix) and the default READ_ONLY.
    inspector = {"READ_ONLY": False, "SCOPE": "database", "ALIASES": [ALIAS, "default"]}
    with override_settings(CACHES=caches, REDISKIT={"INSPECTOR": inspector}):
        yield inspector


def make_user(username: str, *perms: str, superuser: bool = False) -> User:
    user = User.objects.create_user(username, password="pw", is_staff=True)
    if superuser:
        user.is_superuser = True
        user.save()
    for perm in perms:
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label="django_rediskit", codename=perm)
        )
    return User.objects.get(pk=user.pk)  # fresh permission cache


ALL_PERMS = (
    "view_keys",
    "view_values",
    "change_keys",
    "delete_keys",
    "view_sensitive",
    "view_stats",
)


@pytest.fixture
def admin_client(db: None, inspect_settings: dict[str, Any]) -> Client:
    client = Client()
    client.force_login(make_user("boss", *ALL_PERMS))
    return client


BASE = "/admin/django_rediskit/rediskey/"
