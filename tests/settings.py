"""Settings for the test suite: one real Redis (private, or REDIS_URL) behind every alias."""

from __future__ import annotations

import os
import uuid

from tests.servers import session_redis_url

REDIS_URL = session_redis_url()
# A random prefix per run: on a shared REDIS_URL server the suite only ever touches its own keys.
TEST_PREFIX = os.environ.get("REDISKIT_TEST_PREFIX", f"rkt-{uuid.uuid4().hex[:8]}")

SECRET_KEY = "tests-secret-key-not-for-production"
SECRET_KEY_FALLBACKS: list[str] = []
DEBUG = False
USE_TZ = True
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "tests.urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.admin",
    "django_rediskit",
]

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}

CACHES = {
    "default": {
        "BACKEND": "django_rediskit.cache.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": TEST_PREFIX,
    },
    "other": {
        "BACKEND": "django_rediskit.cache.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": f"{TEST_PREFIX}-other",
    },
}

# Live-server tests (headless browser) need it: StaticFilesHandler parses it at start-up.
STATIC_URL = "/static/"
