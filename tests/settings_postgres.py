"""The test settings on PostgreSQL: ``pytest tests/invalidation --ds=tests.settings_postgres``.

Model invalidation is proven on both SQLite and PostgreSQL (real transactions, row locks and a
second connection). When no PostgreSQL answers, the run is skipped with a message, except in CI
(``CI=true``), where it fails.
"""

from __future__ import annotations

import os
import socket
import uuid

from tests.settings import *  # noqa: F403

PG_HOST = os.environ.get("PGHOST", "127.0.0.1")
PG_PORT = int(os.environ.get("PGPORT", "5432"))


def _reachable() -> bool:
    try:
        with socket.create_connection((PG_HOST, PG_PORT), timeout=1):
            return True
    except OSError:
        return False


POSTGRES_UNAVAILABLE = "" if _reachable() else f"no PostgreSQL at {PG_HOST}:{PG_PORT}"
if not POSTGRES_UNAVAILABLE or os.environ.get("CI", "").lower() == "true":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "HOST": PG_HOST,
            "PORT": PG_PORT,
            "USER": os.environ.get("PGUSER", "postgres"),
            "PASSWORD": os.environ.get("PGPASSWORD", ""),
            "NAME": "rediskit",
            # A name per run, so parallel runs (tox, a developer's shell) never collide.
            "TEST": {"NAME": f"test_rediskit_{uuid.uuid4().hex[:8]}"},
        }
    }
