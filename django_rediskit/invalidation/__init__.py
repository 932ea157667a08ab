"""Model-signal invalidation: saves, deletes and bulk writes drop the right cache entries after
the transaction commits.

Register a model once; every write path then queues tags (``o:<label>:<pk>``, ``m:<label>``,
``f:<label>:<field>=<value>``, ``og:<label>``) on the database connection and one
``on_commit`` callback sends them to Redis in one pipeline after COMMIT.
"""

from django_rediskit.invalidation.naming import (
    field_tag,
    generation_tag,
    model_tag,
    object_tag,
    queryset_tags,
)
from django_rediskit.invalidation.queryset import (
    RedisKitManager,
    RedisKitModel,
    RedisKitQuerySet,
    cached_queryset,
)
from django_rediskit.invalidation.registry import (
    NotRegistered,
    invalidate_model,
    register,
    unregister,
)
from django_rediskit.pending import pending_tags

__all__ = [
    "NotRegistered",
    "RedisKitManager",
    "RedisKitModel",
    "RedisKitQuerySet",
    "cached_queryset",
    "field_tag",
    "generation_tag",
    "invalidate_model",
    "model_tag",
    "object_tag",
    "pending_tags",
    "queryset_tags",
    "register",
    "unregister",
]
