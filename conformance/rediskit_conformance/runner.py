"""A DiscoverRunner that installs django_rediskit (as our docs tell users to) and writes every
test's outcome to a JSON file, so ``run.py`` counts results without parsing human output."""

from __future__ import annotations

import json
import os
import traceback
import unittest
from typing import Any

from django.apps import apps
from django.conf import settings
from django.test.runner import DiscoverRunner
from django.test.utils import iter_test_cases

from rediskit_conformance.skips import upstream_id


class RecordingRunner(DiscoverRunner):
    def setup_test_environment(self, **kwargs: Any) -> None:
        # runtests.py builds INSTALLED_APPS from the test labels; a site using our engine and
        # backend has our app installed (receivers, checks, its migration), so add it here,
        # before the test databases are created.
        if "django_rediskit" not in settings.INSTALLED_APPS:
            settings.INSTALLED_APPS = [*settings.INSTALLED_APPS, "django_rediskit"]
            apps.set_installed_apps(settings.INSTALLED_APPS)
        super().setup_test_environment(**kwargs)

    def run_suite(self, suite: unittest.TestSuite, **kwargs: Any) -> unittest.TestResult:
        # ids first: unittest drops each test from the suite once it has run
        ids = [test.id() for test in iter_test_cases(suite)]
        result = super().run_suite(suite, **kwargs)
        outcomes: dict[str, dict[str, str]] = {}

        def record(test: Any, outcome: str, detail: str = "") -> None:
            test_id = _parent_id(test)
            if outcomes.get(test_id, {}).get("outcome") in ("failed", "error"):
                return  # a later subtest does not hide the first failure
            outcomes[test_id] = {"outcome": outcome, "detail": detail, "upstream": _upstream(test)}

        for test, tb in result.errors:
            record(test, "error", tb)
        for test, tb in result.failures:
            record(test, "failed", tb)
        for test in result.unexpectedSuccesses:
            record(test, "failed", "unexpected success")
        for test, reason in result.skipped:
            record(test, "skipped", reason)
        for test, tb in result.expectedFailures:
            record(test, "xfail", tb)
        for test_id in ids:
            outcomes.setdefault(test_id, {"outcome": "passed", "detail": ""})
        path = os.environ.get("REDISKIT_CONFORMANCE_RESULTS")
        if path:
            with open(path, "w") as handle:
                json.dump({"ran": result.testsRun, "tests": outcomes}, handle, indent=1)
        return result


def _upstream(test: Any) -> str:
    """Where upstream defines the test (what a report names), or "" for a class-level error."""
    test = getattr(test, "test_case", test)
    name = getattr(test, "_testMethodName", None)
    return upstream_id(type(test), name) if name else ""


def _parent_id(test: Any) -> str:
    """A subtest's failure counts for its test; a class-level error keeps its own id."""
    parent = getattr(test, "test_case", None)
    if parent is not None:
        return str(parent.id())
    try:
        return str(test.id())
    except Exception:  # an error holder without an id: keep its description
        return "".join(traceback.format_exception_only(type(test), test)).strip()
