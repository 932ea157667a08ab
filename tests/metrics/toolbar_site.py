"""Settings of a dev site with the Debug Toolbar and the rediskit panel (URLs: toolbar_urls).

Run: ``DJANGO_SETTINGS_MODULE=tests.metrics.toolbar_site python -m django runserver`` with
``REDIS_URL`` set. ``/shop/`` misses, stores, hits, throttles and invalidates, as a page would.
"""

from __future__ import annotations

from typing import Any

from tests.settings import *  # noqa: F403
from tests.settings import INSTALLED_APPS, MIDDLEWARE

DEBUG = True
ROOT_URLCONF = "tests.metrics.toolbar_urls"
INSTALLED_APPS = [*INSTALLED_APPS, "debug_toolbar"]
MIDDLEWARE = ["debug_toolbar.middleware.DebugToolbarMiddleware", *MIDDLEWARE]
DEBUG_TOOLBAR_PANELS = ["django_rediskit.metrics.panels.RedisKitPanel"]
DEBUG_TOOLBAR_CONFIG = {
    "SHOW_TOOLBAR_CALLBACK": "tests.metrics.toolbar_site.always",
    "IS_RUNNING_TESTS": False,
}
#: a key that is markup: the panel must show it as text
XSS_KEY = "<img src=x onerror=window.__pwned=1>"


def always(request: Any) -> bool:
    return True
