"""Tag names for models, one function each so callers never spell them by hand.

``<label>`` is the concrete model's ``_meta.label_lower`` (a proxy shares its concrete model's
tags, since they are the same rows).
"""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.db import models
from django.db.models.sql.query import Query


def label(model: type[models.Model] | models.Model) -> str:
    return str(model._meta.concrete_model._meta.label_lower)  # type: ignore[union-attr]


def object_tag(model: type[models.Model] | models.Model, pk: Any) -> str:
    """Entries about one row: a detail page, an API object, a cached ``get(pk=...)``."""
    return f"o:{label(model)}:{pk}"


def model_tag(model: type[models.Model] | models.Model) -> str:
    """Entries that depend on the set of rows: lists, counts, aggregates."""
    return f"m:{label(model)}"


def generation_tag(model: type[models.Model] | models.Model) -> str:
    """All object entries of a model: bumped by mass writes whose pks are unknown."""
    return f"og:{label(model)}"


def field_tag(model: type[models.Model] | models.Model, field: str, value: Any) -> str:
    """Granular lists (opt-in via ``tag_fields``): ``f:shop.product:category=3``."""
    return f"f:{label(model)}:{field}={value}"


def object_tags(model: type[models.Model] | models.Model, pk: Any) -> list[str]:
    """What an entry about one row should carry: its own tag and the model's generation."""
    return [object_tag(model, pk), generation_tag(model)]


def queryset_tags(queryset: models.QuerySet[Any]) -> list[str]:
    """``m:`` tags of every table a queryset reads: joins and ``select_related`` included."""
    query: Query = queryset.query.clone()
    query.get_compiler(queryset.db).setup_query()  # fills alias_map with every joined table
    tables = {join.table_name for join in query.alias_map.values()}
    models_by_table = {m._meta.db_table: m for m in apps.get_models(include_auto_created=True)}
    return sorted(
        {model_tag(models_by_table[table]) for table in tables if table in models_by_table}
    )
