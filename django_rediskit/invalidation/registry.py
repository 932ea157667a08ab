"""Which models invalidate what, and the receivers that compute their tags.

Receivers are connected with ``sender=`` for each registered model (and its proxies), so models
that are not registered keep Django's fast delete (a listener for every sender would disable it
project-wide). Receivers only compute tags and queue them; Redis is touched after COMMIT.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar, overload

from django.apps import apps
from django.core.exceptions import FieldDoesNotExist, ImproperlyConfigured
from django.db import models
from django.db.models.signals import m2m_changed, post_delete, post_init, post_save

from django_rediskit.invalidation import naming
from django_rediskit.pending import queue

M = TypeVar("M", bound=type[models.Model])

_LOADED = "_rediskit_loaded"
_CLEAR_SNAPSHOT = "_rediskit_clear_snapshot"


@dataclass(frozen=True)
class Registration:
    model: type[models.Model]
    tag_fields: tuple[str, ...]
    related: tuple[str, ...]
    keys: tuple[str, ...]

    def attnames(self) -> dict[str, str]:
        """tag field name -> attribute holding its value (``category`` -> ``category_id``)."""
        return {name: self.model._meta.get_field(name).attname for name in self.tag_fields}  # type: ignore[union-attr]


_registry: dict[type[models.Model], Registration] = {}


def registration(model: type[models.Model]) -> Registration | None:
    """The registration that covers ``model`` (a proxy is covered by its concrete model)."""
    return _registry.get(model._meta.concrete_model)  # type: ignore[arg-type]


@overload
def register(
    model: M,
    *,
    tag_fields: Iterable[str] = ...,
    related: Iterable[str] = ...,
    keys: Iterable[str] = ...,
) -> M: ...
@overload
def register(
    model: None = None,
    *,
    tag_fields: Iterable[str] = ...,
    related: Iterable[str] = ...,
    keys: Iterable[str] = ...,
) -> Callable[[M], M]: ...
def register(
    model: M | None = None,
    *,
    tag_fields: Iterable[str] = (),
    related: Iterable[str] = (),
    keys: Iterable[str] = (),
) -> M | Callable[[M], M]:
    """Opt a model in: its writes invalidate ``o:``/``m:`` tags (and ``f:`` for ``tag_fields``).

    ``related`` names foreign keys whose parents' ``o:`` tags a delete of this row invalidates
    (a comment's deletion changes its post's page). ``keys`` are plain cache key templates,
    formatted with the instance (``"product:{pk}:detail"``), deleted after commit, for sites
    that do not use tags. Usable as ``register(Model, ...)`` or as a class decorator.
    """

    def decorate(cls: M) -> M:
        _register(cls, tuple(tag_fields), tuple(related), tuple(keys))
        return cls

    return decorate(model) if model is not None else decorate


def _register(
    model: type[models.Model],
    tag_fields: tuple[str, ...],
    related: tuple[str, ...],
    keys: tuple[str, ...],
) -> None:
    concrete: type[models.Model] = model._meta.concrete_model  # type: ignore[assignment]
    for name in (*tag_fields, *related):
        try:
            field = concrete._meta.get_field(name)
        except FieldDoesNotExist:
            raise ImproperlyConfigured(
                f"register({concrete.__name__}): no field {name!r}"
            ) from None
        if name in related and not field.many_to_one:
            raise ImproperlyConfigured(
                f"register({concrete.__name__}): related={name!r} must be a ForeignKey"
            )
    _registry[concrete] = Registration(concrete, tag_fields, related, keys)
    if apps.models_ready:
        _connect_model(concrete)
    # Otherwise we are inside a models module: RedisKitConfig.ready() connects it once every
    # model (proxies and m2m through models included) is known.


class NotRegistered(LookupError):
    """``unregister()`` of a model that no ``register()`` call covers."""


def unregister(model: type[models.Model]) -> None:
    """Undo ``register(model)``: its writes stop invalidating and its receivers are disconnected
    (so it gets Django's fast delete back). A proxy names its concrete model, as in ``register``.

    Raises ``NotRegistered`` for a model that is not registered, so a typo or a second call
    cannot pass for a successful opt-out.
    """
    if not (isinstance(model, type) and issubclass(model, models.Model)):
        raise TypeError(f"unregister() takes a model class, not {model!r}")
    concrete: type[models.Model] = model._meta.concrete_model  # type: ignore[assignment]
    if concrete not in _registry:
        raise NotRegistered(
            f"unregister({model._meta.label}): {concrete._meta.label} is not registered for "
            "model invalidation (django_rediskit.register)."
        )
    del _registry[concrete]
    if apps.models_ready:
        _disconnect_model(concrete)


def connect_registered() -> None:
    """Connect the receivers of every registration made while models were still loading."""
    for model in list(_registry):
        _connect_model(model)


def _connect_model(concrete: type[models.Model]) -> None:
    for sender in (concrete, *_proxies(concrete)):
        uid = f"rediskit:{sender._meta.label_lower}"
        post_init.connect(_stash_loaded_values, sender=sender, dispatch_uid=uid)
        post_save.connect(_on_save, sender=sender, dispatch_uid=uid)
        post_delete.connect(_on_delete, sender=sender, dispatch_uid=uid)
    for through in _through_models(concrete):
        m2m_changed.connect(
            _on_m2m_changed, sender=through, dispatch_uid=f"rediskit:{through._meta.label_lower}"
        )


def _disconnect_model(concrete: type[models.Model]) -> None:
    for sender in (concrete, *_proxies(concrete)):
        uid = f"rediskit:{sender._meta.label_lower}"
        post_init.disconnect(sender=sender, dispatch_uid=uid)
        post_save.disconnect(sender=sender, dispatch_uid=uid)
        post_delete.disconnect(sender=sender, dispatch_uid=uid)
    # A through model joins two models: its receiver stays while the other side is registered.
    still_needed = {through for model in _registry for through in _through_models(model)}
    for through in _through_models(concrete) - still_needed:
        m2m_changed.disconnect(sender=through, dispatch_uid=f"rediskit:{through._meta.label_lower}")


def _proxies(concrete: type[models.Model]) -> list[type[models.Model]]:
    return [
        candidate
        for candidate in apps.get_models()
        if candidate._meta.proxy and candidate._meta.concrete_model is concrete
    ]


def _through_models(model: type[models.Model]) -> set[type[models.Model]]:
    throughs: set[type[models.Model]] = set()
    for field in model._meta.get_fields(include_hidden=True):
        if field.many_to_many:
            remote = field.remote_field
            through = getattr(remote, "through", None) or getattr(field, "through", None)
            if isinstance(through, type):
                throughs.add(through)
    return throughs


# --- tag computation -----------------------------------------------------------------------------


def _lineage(model: type[models.Model]) -> list[type[models.Model]]:
    """The model and its multi-table-inheritance parents: a child's write changes their rows."""
    concrete: type[models.Model] = model._meta.concrete_model  # type: ignore[assignment]
    return [concrete, *concrete._meta.get_parent_list()]


def _row_tags(instance: models.Model) -> set[str]:
    tags: set[str] = set()
    for model in _lineage(type(instance)):
        tags.add(naming.object_tag(model, instance.pk))
        tags.add(naming.model_tag(model))
    return tags


def _field_tags(entry: Registration, values: dict[str, Any]) -> set[str]:
    return {
        naming.field_tag(entry.model, name, values[name])
        for name in entry.tag_fields
        if name in values
    }


def _current_values(entry: Registration, instance: models.Model) -> dict[str, Any]:
    """Tag field values present on the instance; deferred fields are skipped (no query)."""
    return {
        name: instance.__dict__[attname]
        for name, attname in entry.attnames().items()
        if attname in instance.__dict__
    }


def _key_names(entry: Registration, instance: models.Model) -> list[str]:
    return [template.format_map(_InstanceFields(instance)) for template in entry.keys]


class _InstanceFields(dict[str, Any]):
    """``str.format_map`` source: ``{pk}`` and any attribute of the instance."""

    def __init__(self, instance: models.Model) -> None:
        super().__init__()
        self.instance = instance

    def __missing__(self, name: str) -> Any:
        return self.instance.pk if name == "pk" else getattr(self.instance, name)


# --- receivers -----------------------------------------------------------------------------------


def _stash_loaded_values(sender: type[models.Model], instance: models.Model, **kwargs: Any) -> None:
    entry = registration(sender)
    if entry is not None and entry.tag_fields:
        setattr(instance, _LOADED, _current_values(entry, instance))


def _on_save(
    sender: type[models.Model],
    instance: models.Model,
    raw: bool = False,
    using: str = "default",
    update_fields: frozenset[str] | None = None,
    **kwargs: Any,
) -> None:
    entry = registration(sender)
    if entry is None:
        return
    tags = _row_tags(instance)
    if entry.tag_fields and not raw:
        new = _current_values(entry, instance)
        old: dict[str, Any] = getattr(instance, _LOADED, {})
        changed = set(entry.tag_fields) if update_fields is None else set(update_fields)
        tags |= _field_tags(entry, {k: v for k, v in new.items() if k in changed})
        tags |= _field_tags(entry, {k: v for k, v in old.items() if k in changed})
        setattr(instance, _LOADED, {**old, **new})
    queue(tags, using, () if raw else _key_names(entry, instance))


def _on_delete(
    sender: type[models.Model], instance: models.Model, using: str = "default", **kwargs: Any
) -> None:
    entry = registration(sender)
    if entry is None:
        return
    tags = _row_tags(instance) | _field_tags(entry, _current_values(entry, instance))
    for name in entry.related:
        field = entry.model._meta.get_field(name)
        parent_pk = instance.__dict__.get(field.attname)  # type: ignore[union-attr]
        if parent_pk is not None:
            tags.add(naming.object_tag(field.related_model, parent_pk))  # type: ignore[arg-type]
    queue(tags, using, _key_names(entry, instance))


def _on_m2m_changed(
    sender: type[models.Model],
    instance: models.Model,
    action: str,
    reverse: bool,
    model: type[models.Model],
    pk_set: set[Any] | None,
    using: str = "default",
    **kwargs: Any,
) -> None:
    if action == "pre_clear":
        snapshots = instance.__dict__.setdefault(_CLEAR_SNAPSHOT, {})
        snapshots[sender] = _linked_pks(sender, instance, reverse)
        return
    if action not in ("post_add", "post_remove", "post_clear"):
        return
    if action == "post_clear":
        pk_set = instance.__dict__.get(_CLEAR_SNAPSHOT, {}).pop(sender, set())
    tags = {naming.model_tag(sender), *_row_tags(instance)}
    tags.update(naming.object_tag(model, pk) for pk in pk_set or ())
    queue(tags, using)


def _linked_pks(through: type[models.Model], instance: models.Model, reverse: bool) -> set[Any]:
    """The pks on the other side of ``through`` linked to ``instance`` (before a clear)."""
    field = _declaring_field(through)
    source, target = field.m2m_field_name(), field.m2m_reverse_field_name()
    if reverse:
        source, target = target, source
    return set(
        through._default_manager.filter(**{source: instance.pk}).values_list(
            f"{target}_id", flat=True
        )
    )


def _declaring_field(through: type[models.Model]) -> Any:
    for model in apps.get_models():
        for field in model._meta.many_to_many:
            if field.remote_field.through is through:
                return field
    raise LookupError(f"No ManyToManyField uses {through._meta.label}")


def invalidate_model(model: type[models.Model], using: str = "default") -> None:
    """After raw SQL, a migration or a bulk load: drop every entry about ``model``, O(1).

    Bumps ``m:`` (lists) and ``og:`` (every object entry); queued like the receivers, so inside
    a transaction it is sent after COMMIT.
    """
    queue(
        {tag for m in _lineage(model) for tag in (naming.model_tag(m), naming.generation_tag(m))},
        using,
    )
