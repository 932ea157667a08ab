"""The example shop: every Redis use goes through the one CACHES alias below.

Configured from the environment: ``REDIS_URL`` (required: never a guessed server),
``DATABASE_URL`` (``sqlite:///path`` or ``postgres://user:pass@host:port/name``; default: SQLite
next to this project), ``DEBUG`` (``1``/``0``), ``ALLOWED_HOSTS`` (comma separated) and the
``SHOP_*_RATE`` throttle rates (the load benchmark raises them).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

from example import local_state

BASE_DIR = Path(__file__).resolve().parent.parent
# Never a committed key: with it anyone who can write to Redis could forge signed pickles.
SECRET_KEY = local_state.secret_key()
DEBUG = os.environ.get("DEBUG", os.environ.get("DJANGO_DEBUG", "1")).lower() in ("1", "true", "yes")
ALLOWED_HOSTS = os.environ.get("ALLOWED_HOSTS", "127.0.0.1,localhost").split(",")
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
        "DIRS": [BASE_DIR / "templates"],  # first: the devices page in the shop's layout
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


def database_from_url(url: str) -> dict[str, Any]:
    """``DATABASE_URL`` as a Django ``DATABASES`` entry (SQLite and PostgreSQL only)."""
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": unquote(parts.path[1:]) or ":memory:",
        }
    if parts.scheme in ("postgres", "postgresql"):
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": unquote(parts.path[1:]),
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "",
            "PORT": str(parts.port or ""),
            "CONN_MAX_AGE": 60,
        }
    raise ImproperlyConfigured(f"DATABASE_URL: unsupported scheme {parts.scheme!r}")


_default_db = f"sqlite:///{os.environ.get('EXAMPLE_DB', BASE_DIR / 'db.sqlite3')}"
DATABASES = {"default": database_from_url(os.environ.get("DATABASE_URL") or _default_db)}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # Several gunicorn workers write to one file: wait for the lock instead of failing.
    DATABASES["default"]["OPTIONS"] = {"timeout": 20}

# No default: the demo must never use whatever Redis answers on 127.0.0.1:6379 (someone else's
# data). `make demo` starts a private redis-server and sets this; or set it yourself.
REDIS_URL = os.environ.get("REDIS_URL", "")
if not REDIS_URL:
    raise ImproperlyConfigured(
        "Set REDIS_URL (e.g. REDIS_URL=redis://127.0.0.1:6379/0) or run `make demo`, which "
        "starts a private redis-server."
    )

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
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", BASE_DIR / ".demo" / "static"))

# --- Throttles (django_rediskit.throttling): a DRF API under /api/ and a fail-closed login ---
INSTALLED_APPS += ["rest_framework", "rest_framework.authtoken", "api"]
MIDDLEWARE += ["django_rediskit.throttling.views.RateLimitMiddleware"]  # RateLimit headers
REST_FRAMEWORK = {
    "DEFAULT_THROTTLE_CLASSES": [
        "django_rediskit.throttling.drf.AnonRateThrottle",
        "django_rediskit.throttling.drf.UserRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": os.environ.get("SHOP_ANON_RATE", "20/min;200/day"),
        "user": os.environ.get("SHOP_USER_RATE", "120/min"),
        "search": os.environ.get("SHOP_SEARCH_RATE", "10/10s"),
        # /api/limited/: fail closed (503 while Redis is down); the exactness benchmark's target
        "limited": os.environ.get("SHOP_LIMITED_RATE", "10/min"),
    },
    "NUM_PROXIES": 0,  # no proxy in front of the demo: never trust X-Forwarded-For
}
REDISKIT = {"THROTTLE": {"HEADERS": True}}

# --- Login limits: every login (admin, /accounts/login/, /api/token/) in one setting ---
# Failed logins per address and per user name; Redis down: logins refused (fail closed).
REDISKIT["LOGIN_RATES"] = {"ip": "20/min", "username": "5/min;30/h"}
AUTHENTICATION_BACKENDS = [
    "django_rediskit.throttling.login.LoginRateLimitBackend",  # first: before any password check
    "django.contrib.auth.backends.ModelBackend",
]
MIDDLEWARE += ["django_rediskit.throttling.login.LoginRateLimitMiddleware"]  # the 429 page

# --- The admin key inspector: read-only here whatever DEBUG says (False to try deletes) ---
REDISKIT["INSPECTOR"] = {"READ_ONLY": True}

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
