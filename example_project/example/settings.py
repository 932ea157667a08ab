"""The example shop: every Redis use goes through the one CACHES alias below."""

from __future__ import annotations

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-project-insecure-key-change-me")
DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
ROOT_URLCONF = "example.urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_rediskit",
    "shop",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
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

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("EXAMPLE_DB", BASE_DIR / "db.sqlite3"),
    }
}

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")

CACHES = {
    "default": {
        "BACKEND": "django_rediskit.cache.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "shop",
        "TIMEOUT": 300,
        "OPTIONS": {
            "IGNORE_EXCEPTIONS": True,  # the shop keeps working (uncached) if Redis is down
            "COMPRESSOR": "zlib",
        },
    }
}

STATIC_URL = "static/"

# --- Throttles (django_rediskit.throttling): a DRF API under /api/ and a fail-closed login ---
INSTALLED_APPS += ["rest_framework", "api"]
MIDDLEWARE += ["django_rediskit.throttling.views.RateLimitMiddleware"]  # RateLimit headers
REST_FRAMEWORK = {
    "DEFAULT_THROTTLE_CLASSES": [
        "django_rediskit.throttling.drf.AnonRateThrottle",
        "django_rediskit.throttling.drf.UserRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {"anon": "20/min;200/day", "user": "120/min", "search": "10/10s"},
    "NUM_PROXIES": 0,  # no proxy in front of the demo: never trust X-Forwarded-For
}
REDISKIT = {"THROTTLE": {"HEADERS": True}}

# --- Sessions with device tracking (django_rediskit.sessions; see docs/sessions.md) ---
SESSION_ENGINE = "django_rediskit.sessions.backend"
MIDDLEWARE = [
    "django_rediskit.sessions.middleware.SessionMiddleware"
    if entry == "django.contrib.sessions.middleware.SessionMiddleware"
    else entry
    for entry in MIDDLEWARE
]
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/account/devices/"
LOGOUT_REDIRECT_URL = "/"
REDISKIT["SESSIONS"] = {"ACTIVITY_RESOLUTION": 60, "DEVICE_LIMIT": 10}
