"""System checks of model invalidation: a registered model must not keep a signal-less write path.

``update()``, ``bulk_update()`` and ``bulk_create()`` send no signals; only the QuerySet of
``queryset.py`` turns them into invalidations. A registered model reached through a manager built
on Django's plain ``QuerySet`` would keep stale entries after those calls, silently, so that is
an error here rather than a surprise in production. Managers are not patched to fix it behind
the site's back: the check says what to write instead.

Ids (the ``E2xx`` block is model invalidation's):

* ``django_rediskit.E201``: a manager of a registered model (its default manager included) does
  not build ``RedisKitQuerySet``s.
* ``django_rediskit.E202``: a registered model whose foreign keys Django updates on delete of
  the parent (``on_delete=SET_NULL``, ``SET_DEFAULT``, ``SET(...)``) through its *base* manager,
  and that base manager is not invalidating (Django's automatic one never is).
"""

from __future__ import annotations

from typing import Any

from django.apps import AppConfig, apps
from django.core import checks
from django.db import models

from django_rediskit.invalidation.queryset import RedisKitQuerySet
from django_rediskit.invalidation.registry import registration

#: on_delete handlers that never UPDATE the child rows (the others, SET_NULL / SET_DEFAULT /
#: SET(...) or a site's own, make Django's deletion collector call the base manager's update()).
_NO_UPDATE_ON_DELETE = (models.CASCADE, models.PROTECT, models.RESTRICT, models.DO_NOTHING)

_HOW = (
    "Use the invalidating QuerySet: `{name} = RedisKitManager()` or "
    "`{name} = RedisKitQuerySet.as_manager()` (from django_rediskit.invalidation), or build "
    "your own from it (`YourManager.from_queryset(YourQuerySet)()` with "
    "`class YourQuerySet(RedisKitQuerySet)`), or inherit the model from RedisKitModel."
)


def invalidates(manager: models.Manager[Any]) -> bool:
    """Whether the QuerySets ``manager`` hands out turn bulk writes into invalidations."""
    queryset_class = getattr(manager, "_queryset_class", None)
    if isinstance(queryset_class, type) and issubclass(queryset_class, RedisKitQuerySet):
        return True
    try:  # a manager may override get_queryset(); building a QuerySet runs no query
        return isinstance(manager.get_queryset(), RedisKitQuerySet)
    except Exception:  # a get_queryset() that needs a request or a database: not provable
        return False


def _updated_on_delete(model: type[models.Model]) -> list[str]:
    """Local foreign keys whose parent's deletion UPDATEs this model's rows."""
    return [
        field.name
        for field in model._meta.local_fields
        if field.many_to_one or field.one_to_one
        if getattr(field.remote_field, "on_delete", None) not in _NO_UPDATE_ON_DELETE
    ]


def _qualified(manager: models.Manager[Any]) -> str:
    cls = type(manager)
    return f"{cls.__module__}.{cls.__qualname__}"


def check_model(model: type[models.Model]) -> list[checks.CheckMessage]:
    messages: list[checks.CheckMessage] = []
    label = model._meta.label
    for manager in model._meta.managers:
        if not invalidates(manager):
            messages.append(
                checks.Error(
                    f"{label} is registered for model invalidation, but its manager "
                    f"{manager.name!r} ({_qualified(manager)}) uses Django's plain QuerySet: "
                    f"{model.__name__}.{manager.name}.filter(...).update(...), bulk_update() and "
                    "bulk_create() send no signals and would leave stale cache entries.",
                    hint=_HOW.format(name=manager.name),
                    obj=model,
                    id="django_rediskit.E201",
                )
            )
    fields = _updated_on_delete(model) if not model._meta.proxy else []
    if fields and not invalidates(model._base_manager):
        default = model._meta.default_manager
        name = default.name if default is not None else "objects"
        messages.append(
            checks.Error(
                f"{label} is registered for model invalidation, but its base manager is not "
                f"invalidating: when the row a foreign key ({', '.join(fields)}) points to is "
                "deleted, Django updates these rows through the base manager's update(), which "
                "sends no signals, and their cache entries would stay stale.",
                hint=f'Set `base_manager_name = "{name}"` in {model.__name__}.Meta (with '
                f"{name!r} an invalidating manager), or inherit the model from RedisKitModel, "
                "which does it.",
                obj=model,
                id="django_rediskit.E202",
            )
        )
    return messages


def check_registered_models(
    app_configs: list[AppConfig] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """E201 / E202 for every registered model and proxy (of ``app_configs``, when given)."""
    if app_configs is None:
        candidates = apps.get_models()
    else:
        candidates = [model for config in app_configs for model in config.get_models()]
    messages: list[checks.CheckMessage] = []
    for model in candidates:
        if registration(model) is not None:
            messages.extend(check_model(model))
    return messages
