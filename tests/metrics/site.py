"""A tiny site for the multiprocess test: gunicorn workers serving cache lookups and /metrics/.

Run with ``DJANGO_SETTINGS_MODULE=tests.metrics.site`` (this module is the settings, the URLconf
and the WSGI application at once), ``REDIS_URL`` and ``REDISKIT_TEST_PREFIX`` set so every
worker uses the same server and keys.
"""

from __future__ import annotations

import functools
import os
import time
from typing import Any

from django.core.cache import caches
from django.http import HttpRequest, HttpResponse
from django.urls import include, path

from tests.settings import *  # noqa: F403

ROOT_URLCONF = "tests.metrics.site"
REDISKIT = {"METRICS": {"PROMETHEUS": True}}
MIDDLEWARE: list[str] = []


def lookup(request: HttpRequest, key: str) -> HttpResponse:
    time.sleep(0.02)  # hold the worker a moment, so concurrent requests spread over workers
    if request.GET.get("set"):
        caches["default"].set(key, "v")
    value = caches["default"].get(key)
    return HttpResponse(f"{os.getpid()} {'hit' if value is not None else 'miss'}")


urlpatterns = [
    path("lookup/<str:key>/", lookup),
    path("metrics/", include("django_rediskit.metrics.urls")),
]


@functools.cache
def _wsgi() -> Any:
    from django.core.wsgi import get_wsgi_application

    return get_wsgi_application()


def application(environ: dict[str, Any], start_response: Any) -> Any:
    """Built on the first request, after gunicorn has forked the worker."""
    return _wsgi()(environ, start_response)
