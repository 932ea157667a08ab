"""The one list of upstream tests that are skipped, each with the reason it cannot apply.

Keys are upstream test ids: the module and class that *define* the test in the upstream tree
(``cache.tests.BaseCacheTests.test_cull``), or a pytest node id for DRF. Anything skipped that is
not listed here (a test that skipped itself) is reported by ``run.py`` as a failure of the job,
so a skip can never hide a regression silently.
"""

from __future__ import annotations

import functools
import os
import unittest
from collections.abc import Callable
from typing import Any, TypeVar

CULLING = (
    "culling by MAX_ENTRIES / CULL_FREQUENCY does not apply to Redis, which evicts by its "
    "maxmemory-policy; Django binds its own RedisCache without the 'cull' caches too"
)

SKIPS: dict[str, str] = {
    "cache.tests.BaseCacheTests.test_cull": CULLING,
    "cache.tests.BaseCacheTests.test_zero_cull": CULLING,
    "cache.tests.BaseCacheTests.test_cull_delete_when_store_empty": CULLING,
    "sessions_tests.tests.SessionMiddlewareTests.test_empty_session_saved": (
        "reads the saved session back through the database engine's model "
        "(Session.objects.get); our engine keeps no database row"
    ),
    "sessions_tests.tests.SessionMiddlewareTests.test_session_update_error_redirect": (
        "builds Django's database engine (DatabaseSession) itself, so it tests that engine, "
        "not the configured one; ours raising UpdateError is SessionTestsMixin's "
        "test_session_save_does_not_resurrect_session_logged_out_in_other_context"
    ),
}

T = TypeVar("T", bound=type)


def upstream_id(cls: type, name: str) -> str:
    """The id of test ``name`` where upstream defines it (``module.Class.test``), so a skip is
    listed once for every binding that inherits or borrows the test. Decorators (upstream's
    ``override_settings``, our skip wrapper) keep the function's module and qualname."""
    function = getattr(cls, name)
    module, qualname = getattr(function, "__module__", None), getattr(function, "__qualname__", "")
    if module and "." in qualname:
        return f"{module}.{qualname}"
    return f"{cls.__module__}.{cls.__qualname__}.{name}"


def apply_skips(cls: T) -> T:
    """Mark the tests of ``cls`` that SKIPS lists as skipped, with the listed reason."""
    for name in dir(cls):
        if not name.startswith("test"):
            continue
        reason = SKIPS.get(upstream_id(cls, name))
        if reason is not None:
            setattr(cls, name, _skipped(getattr(cls, name), reason))
    return cls


def _skipped(method: Callable[..., Any], reason: str) -> Callable[..., Any]:
    @functools.wraps(method)
    def skipped(self: unittest.TestCase, *args: Any, **kwargs: Any) -> None:
        raise unittest.SkipTest(f"[listed] {reason}")

    return skipped


def backend_params() -> dict[str, Any]:
    """BACKEND and LOCATION of our cache on the private server the runner started."""
    return {
        "BACKEND": "django_rediskit.cache.RedisCache",
        "LOCATION": os.environ["REDISKIT_CONFORMANCE_URL"],
    }
