"""pytest plugin for DRF's own test run (``-p rediskit_conformance.drf_plugin``).

DRF's ``tests/conftest.py`` configures Django in its ``pytest_configure``; this hook runs after it
(``trylast``) and points the default cache, where DRF's throttles keep their history, at our
backend on the private server, before anything has opened a cache. Our throttle classes need only
that alias (django_rediskit's AppConfig wires sessions, invalidation and the inspector, none of
which DRF's throttling tests touch). Every test's outcome is written to JSON for ``run.py``.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

#: run.py copies DRF's test module under this name, with our classes imported
COPY, ORIGINAL = "tests/test_rediskit_throttling.py", "tests/test_throttling.py"
_outcomes: dict[str, dict[str, str]] = {}


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    from django.conf import settings

    settings.CACHES = {
        "default": {
            "BACKEND": "django_rediskit.cache.RedisCache",
            "LOCATION": os.environ["REDISKIT_CONFORMANCE_URL"],
        }
    }


def pytest_sessionstart(session: pytest.Session) -> None:
    from django.core.cache import caches

    from django_rediskit.cache import RedisCache

    backend = caches["default"]
    if not isinstance(backend, RedisCache):
        raise pytest.UsageError(f"the default cache is {type(backend)}, not ours")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Refuse to run if the copied module's throttles are not ours (a stale or bad rewrite)."""
    for item in items:
        module = getattr(item, "module", None)
        throttle = getattr(module, "UserRateThrottle", None)
        if throttle is not None and not throttle.__module__.startswith("django_rediskit."):
            raise pytest.UsageError(f"{item.nodeid} runs {throttle.__module__}, not ours")


def pytest_collectreport(report: pytest.CollectReport) -> None:
    """A module that fails to import is an error of the run, not a quiet zero."""
    if report.failed:
        _outcomes[report.nodeid or "collection"] = {
            "outcome": "error",
            "detail": str(report.longrepr),
            "upstream": report.nodeid.replace(COPY, ORIGINAL, 1),
        }


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    seen = _outcomes.get(report.nodeid, {}).get("outcome")
    if seen in ("failed", "error"):
        return
    detail = str(report.longrepr) if report.longrepr else ""
    if report.skipped:
        outcome = "skipped"
        longrepr: Any = report.longrepr
        if isinstance(longrepr, tuple):
            detail = str(longrepr[2]).removeprefix("Skipped: ")
    elif report.failed:
        outcome = "failed" if report.when == "call" else "error"
    elif report.when == "call":
        outcome = "passed"
    else:
        return
    upstream = report.nodeid.replace(COPY, ORIGINAL, 1)
    _outcomes[report.nodeid] = {"outcome": outcome, "detail": detail, "upstream": upstream}


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    path = os.environ.get("REDISKIT_CONFORMANCE_RESULTS")
    if path:
        with open(path, "w") as handle:
            json.dump({"ran": len(_outcomes), "tests": _outcomes}, handle, indent=1)
