"""Django's ``SessionTestsMixin`` and ``SessionMiddlewareTests`` bound to our session engine.

``RediskitSessionTests`` mirrors upstream's ``CacheSessionTests`` (the mixin on a SimpleTestCase:
a cache engine never touches the database) and borrows its ``test_load_overlong_key``; its other
methods read Django's ``cache_key`` layout in the cache and are not bound. The middleware tests
run with ``SESSION_ENGINE`` set to ours.

The upstream module is imported as a module, never its classes by name: the test loader runs
every TestCase class found in a module's namespace, and upstream's would run on Django's engines.

``RediskitOwnMiddlewareTests`` runs the same middleware tests on our ``SessionMiddleware`` (its
response half is our own operation, awaited under ASGI): the upstream module's
``SessionMiddleware`` name points at ours for the duration of each test.
"""

from __future__ import annotations

from unittest import mock

from django.conf import settings
from django.test import SimpleTestCase, override_settings
from sessions_tests import tests as upstream

from django_rediskit.sessions.backend import SessionStore
from django_rediskit.sessions.middleware import SessionMiddleware
from rediskit_conformance.skips import apply_skips

ENGINE = "django_rediskit.sessions.backend"


@apply_skips
@override_settings(SESSION_ENGINE=ENGINE)
class RediskitSessionTests(upstream.SessionTestsMixin, SimpleTestCase):
    backend = SessionStore

    # the one CacheSessionTests method that is about the engine rather than Django's key layout
    test_load_overlong_key = upstream.CacheSessionTests.test_load_overlong_key


@apply_skips
@override_settings(SESSION_ENGINE=ENGINE)
class RediskitSessionMiddlewareTests(upstream.SessionMiddlewareTests):
    def setUp(self) -> None:
        super().setUp()
        assert settings.SESSION_ENGINE == ENGINE, settings.SESSION_ENGINE


@apply_skips
@override_settings(SESSION_ENGINE=ENGINE)
class RediskitOwnMiddlewareTests(upstream.SessionMiddlewareTests):
    def setUp(self) -> None:
        super().setUp()
        patcher = mock.patch.object(upstream, "SessionMiddleware", SessionMiddleware)
        patcher.start()
        self.addCleanup(patcher.stop)
        assert upstream.SessionMiddleware is SessionMiddleware
