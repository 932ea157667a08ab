"""Every test here runs with the rediskit session engine and middleware on the session Redis."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.test import override_settings

ENGINE = "django_rediskit.sessions.backend"
MIDDLEWARE = [
    "django_rediskit.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]


@pytest.fixture(autouse=True)
def _session_engine() -> Iterator[None]:
    with override_settings(
        SESSION_ENGINE=ENGINE,
        MIDDLEWARE=MIDDLEWARE,
        ROOT_URLCONF="tests.sessions.urls",
        PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],
        TEMPLATES=[{**settings.TEMPLATES[0], "DIRS": [Path(__file__).parent / "templates"]}],
    ):
        yield
    _drop_session_keys()


@pytest.fixture(autouse=True)
def builtin_user_agents(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The built-in parser's family names, whether or not ua-parser is installed; the
    ua-parser path has its own tests (test_useragent.py)."""
    from django_rediskit.sessions import useragent

    monkeypatch.setattr(useragent, "ua_parser", None)
    useragent.parse.cache_clear()
    yield
    useragent.parse.cache_clear()


def index_fields(rclient: Any, uid: str) -> list[bytes]:
    """The session ids in a user's index (one field each, plus "#..." client fields)."""
    from django_rediskit.sessions.index import session_backend, user_keys

    _, m = user_keys(session_backend(), uid)
    return sorted(field for field in rclient.hkeys(m) if not field.startswith(b"#"))


def _drop_session_keys() -> None:
    """User pks repeat across tests (the DB rolls back), so each test leaves no session keys:
    SCAN + UNLINK of this run's own sessions and user-index namespaces (cache.clear() spares
    them by design)."""
    from django.core.cache import caches

    from django_rediskit.patterns import glob_escape

    backend = caches["default"]
    client = backend.client.get_client(write=True)
    for namespace in ("sessions", "users"):
        pattern = glob_escape(backend.feature_key(namespace)) + ":*"
        batch = list(client.scan_iter(match=pattern, count=1000))
        if batch:
            client.unlink(*batch)


class CommandLog:
    """Every command sent through redis-py in this process, grouped by round trip."""

    def __init__(self) -> None:
        self.trips: list[list[str]] = []

    @property
    def commands(self) -> list[str]:
        return [name for trip in self.trips for name in trip]

    def clear(self) -> None:
        self.trips.clear()

    def named(self, *names: str) -> list[str]:
        wanted = {name.upper() for name in names}
        return [name for name in self.commands if name in wanted]


@pytest.fixture
def command_log(monkeypatch: pytest.MonkeyPatch) -> CommandLog:
    import redis.client

    log = CommandLog()
    original_execute_command = redis.client.Redis.execute_command
    original_pipeline_execute = redis.client.Pipeline.execute

    def execute_command(self: redis.client.Redis, *args: object, **options: object) -> object:
        log.trips.append([str(args[0]).upper()])
        return original_execute_command(self, *args, **options)

    def pipeline_execute(self: redis.client.Pipeline, raise_on_error: bool = True) -> object:
        log.trips.append([str(args[0]).upper() for args, _ in self.command_stack])
        return original_pipeline_execute(self, raise_on_error)

    monkeypatch.setattr(redis.client.Redis, "execute_command", execute_command)
    monkeypatch.setattr(redis.client.Pipeline, "execute", pipeline_execute)
    return log


@pytest.fixture
def rclient() -> object:
    from django_rediskit.sessions.index import session_backend

    return session_backend().client.get_client(write=True)


@pytest.fixture
def make_user(db: None) -> object:
    from django.contrib.auth import get_user_model

    counter = iter(range(10**6))

    def make(name: str | None = None, password: str = "pw-123456") -> object:
        model = get_user_model()
        return model.objects.create_user(name or f"user{next(counter)}", password=password)

    return make
