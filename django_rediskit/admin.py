"""Admin registration (Django autodiscovers this module): the key inspector."""

from django_rediskit.inspector import admin  # noqa: F401  (registers RedisKey)
