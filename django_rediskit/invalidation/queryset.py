"""Bulk writes that send no signals (``update``, ``bulk_update``, ``bulk_create``) and cached
querysets tagged with every table they read."""

from __future__ import annotations

import contextvars
import hashlib
from collections.abc import Collection, Iterable
from typing import Any, TypeVar

from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.db import models, transaction

from django_rediskit import conf
from django_rediskit.invalidation import naming
from django_rediskit.invalidation.registry import _lineage, registration
from django_rediskit.pending import pending_tags, queue

T = TypeVar("T", bound=models.Model)

#: Set while bulk_update runs: it calls update() per batch, and has queued the tags already.
_inside_bulk_update: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "rediskit_inside_bulk_update", default=False
)


def _set_tags(model: type[models.Model]) -> set[str]:
    return {naming.model_tag(m) for m in _lineage(model)}


class RedisKitQuerySet(models.QuerySet[T]):
    """A QuerySet whose bulk writes invalidate like saves do (they send no signals)."""

    def update(self, **kwargs: Any) -> int:
        if registration(self.model) is None or _inside_bulk_update.get():
            return super().update(**kwargs)
        cap = int(conf.get_section("INVALIDATION")["UPDATE_PK_CAP"])
        with transaction.atomic(using=self.db, savepoint=False):
            pks = list(self.values_list("pk", flat=True)[: cap + 1])
            tags = _set_tags(self.model)
            if len(pks) > cap:
                tags |= {naming.generation_tag(m) for m in _lineage(self.model)}
            else:
                tags |= {naming.object_tag(m, pk) for m in _lineage(self.model) for pk in pks}
            queue(tags, self.db)
            return super().update(**kwargs)

    update.alters_data = True  # type: ignore[attr-defined]

    def bulk_update(
        self, objs: Iterable[T], fields: Iterable[str], batch_size: int | None = None
    ) -> int:
        objs = list(objs)
        if registration(self.model) is not None:
            tags = _set_tags(self.model)
            tags |= {naming.object_tag(m, obj.pk) for m in _lineage(self.model) for obj in objs}
            queue(tags, self.db)
        token = _inside_bulk_update.set(True)
        try:
            return super().bulk_update(objs, fields, batch_size=batch_size)
        finally:
            _inside_bulk_update.reset(token)

    bulk_update.alters_data = True  # type: ignore[attr-defined]

    def bulk_create(
        self,
        objs: Iterable[T],
        batch_size: int | None = None,
        ignore_conflicts: bool = False,
        update_conflicts: bool = False,
        update_fields: Collection[str] | None = None,
        unique_fields: Collection[str] | None = None,
    ) -> list[T]:
        created = super().bulk_create(
            objs,
            batch_size=batch_size,
            ignore_conflicts=ignore_conflicts,
            update_conflicts=update_conflicts,
            update_fields=update_fields,
            unique_fields=unique_fields,
        )
        if registration(self.model) is not None:
            tags = _set_tags(self.model)
            tags |= {
                naming.object_tag(m, obj.pk)
                for m in _lineage(self.model)
                for obj in created
                if obj.pk is not None
            }
            queue(tags, self.db)
        return created

    bulk_create.alters_data = True  # type: ignore[attr-defined]

    def cached(self, timeout: Any = DEFAULT_TIMEOUT) -> list[T]:
        """``cached_queryset(self, timeout)``: the rows, from Redis when possible."""
        return cached_queryset(self, timeout)


RedisKitManager = models.Manager.from_queryset(RedisKitQuerySet)


class RedisKitModel(models.Model):
    """Abstract base giving a model the invalidating manager; still call ``register()``.

    It is the base manager too: Django's deletion collector sets ``on_delete=SET_NULL`` /
    ``SET_DEFAULT`` / ``SET(...)`` foreign keys with the base manager's ``update()``, which sends
    no signals. A subclass with a ``Meta`` of its own still gets it (Django takes the base
    manager's name from the first parent that has one).
    """

    objects = RedisKitManager()

    class Meta:
        abstract = True
        base_manager_name = "objects"


def cached_queryset(queryset: models.QuerySet[T], timeout: Any = DEFAULT_TIMEOUT) -> list[T]:
    """Evaluate ``queryset`` through the cache, tagged ``m:`` for every table it reads.

    Inside a transaction that has pending invalidations for any of those tables, the cache is
    bypassed both ways: the writer sees its own writes and never caches uncommitted rows.
    """
    from django_rediskit.aliases import backend_for_alias

    tags = naming.queryset_tags(queryset)
    if pending_tags(queryset.db).intersection(tags):
        return list(queryset.all())
    sql, params = queryset.query.sql_with_params()
    digest = hashlib.blake2b(repr((queryset.db, sql, params)).encode(), digest_size=16)
    key = f"rediskit:qs:{queryset.model._meta.label_lower}:{digest.hexdigest()}"
    cache = backend_for_alias(conf.get_setting("CACHE_ALIAS"))
    rows: list[T] = cache.get_or_set(key, lambda: list(queryset.all()), timeout, tags=tags)
    return rows
