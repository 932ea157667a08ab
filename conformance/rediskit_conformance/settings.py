"""Settings for Django's ``tests/runtests.py`` (``--settings=rediskit_conformance.settings``).

Modelled on Django's own ``tests/test_sqlite.py``; runtests.py adds its INSTALLED_APPS,
MIDDLEWARE and templates on top. The default cache is ours on the private server that
``conformance/run.py`` started; the test classes bind their own cache and session settings.
"""

from __future__ import annotations

import os

DATABASES = {
    "default": {"ENGINE": "django.db.backends.sqlite3"},
    "other": {"ENGINE": "django.db.backends.sqlite3"},
}
SECRET_KEY = "django_tests_secret_key"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
USE_TZ = False

CACHES = {
    "default": {
        "BACKEND": "django_rediskit.cache.RedisCache",
        "LOCATION": os.environ["REDISKIT_CONFORMANCE_URL"],
    }
}

TEST_RUNNER = "rediskit_conformance.runner.RecordingRunner"
