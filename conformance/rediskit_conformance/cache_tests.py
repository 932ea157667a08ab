"""Django's ``BaseCacheTests`` bound to ``django_rediskit.cache.RedisCache``.

Bound the way Django binds its own Redis backend (``RedisCacheTests`` in ``tests/cache/tests.py``):
``caches_setting_for_tests`` with our BACKEND and LOCATION, without the culling caches. Django's
``RedisCacheTests`` adds tests of its ``RedisCacheClient`` internals (pool index, serializer); those
describe Django's implementation, not the cache API, and are not bound here.

Imported by a two-line module that ``run.py`` writes into the upstream ``tests/cache/`` folder, so
runtests.py installs upstream's ``cache`` test app (its models) for the label.
"""

from __future__ import annotations

from cache.tests import BaseCacheTests, caches_setting_for_tests
from django.core.cache import caches
from django.test import TestCase, override_settings

from django_rediskit.cache import RedisCache
from rediskit_conformance.skips import apply_skips, backend_params


@apply_skips
@override_settings(
    CACHES=caches_setting_for_tests(base=backend_params(), exclude={"cull", "zero_cull"})
)
class RediskitCacheTests(BaseCacheTests, TestCase):
    def setUp(self) -> None:
        super().setUp()
        # every test fails loudly if the binding ever points somewhere else
        assert isinstance(caches["default"], RedisCache), type(caches["default"])
