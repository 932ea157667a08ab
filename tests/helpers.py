"""Types shared by test modules."""

from __future__ import annotations

from collections.abc import Callable

from django_rediskit.cache import RedisCache

#: ``make_cache(location=None, *, prefix=None, OPTIONS={...}, **params)`` fixture signature.
MakeCache = Callable[..., RedisCache]
