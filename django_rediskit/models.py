"""The inspector's admin entry: an unmanaged model with no table, for the sidebar and permissions.

Nothing is ever stored: the model exists so the admin lists "Redis keys", ``LogEntry`` rows have
a content type to point at, and the custom permissions below can be granted to groups.
"""

from __future__ import annotations

from django.db import models

from django_rediskit.inspector.access import PERMISSIONS


class RedisKey(models.Model):
    class Meta:
        managed = False
        default_permissions = ()
        permissions = PERMISSIONS
        verbose_name = "Redis key"
        verbose_name_plural = "Redis keys"

    def __str__(self) -> str:
        return "Redis key"
