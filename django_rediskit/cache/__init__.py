"""The ``CACHES`` backend: ``BACKEND = "django_rediskit.cache.RedisCache"``."""

from django_rediskit.cache.backend import RedisCache

__all__ = ["RedisCache"]
