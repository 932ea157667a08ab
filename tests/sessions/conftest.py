"""Every test here runs with the rediskit session engine and middleware on the session Redis."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
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
    ):
        yield
