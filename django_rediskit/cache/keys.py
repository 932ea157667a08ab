"""Key naming: hierarchical keys, an environment prefix, validation and glob-escaping.

``KeyBuilder("shop").key("user", 42, "profile")`` gives ``shop:user:42:profile`` (with
``REDISKIT["KEY_ENV"] = "staging"``: ``staging:shop:user:42:profile``). Parts are validated rather
than silently rewritten, so two different inputs can never produce the same key, and a key that
would trip memcached-style warnings or exceed the length budget fails where it is built.
"""

from __future__ import annotations

import copy
import hashlib
import json
import uuid
from collections.abc import Mapping
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any, Final

from django.db.models import Model

from django_rediskit.conf import get_setting
from django_rediskit.patterns import glob_escape

DEFAULT_MAX_LENGTH: Final = 200
SEPARATOR: Final = ":"


class Wildcard:
    """A part that matches anything in :meth:`KeyBuilder.pattern` (the only unescaped ``*``)."""

    def __repr__(self) -> str:
        return "ANY"


ANY: Final = Wildcard()

KeyPart = str | int | uuid.UUID | Model


def part_text(part: Any) -> str:
    """One key part as text: str, int (not bool), UUID, or a saved model instance
    (``<app_label.model>.<pk>``)."""
    if isinstance(part, bool) or not isinstance(part, (str, int, uuid.UUID, Model)):
        raise TypeError(f"Key parts must be str, int, UUID or a model instance, not {part!r}")
    if isinstance(part, Model):
        if part.pk is None:
            raise ValueError(f"Unsaved {part._meta.label} instance has no pk to key on.")
        return f"{part._meta.label_lower}.{part.pk}"
    text = str(part)
    if not text:
        raise ValueError("Key parts must not be empty.")
    if SEPARATOR in text:
        raise ValueError(f"Key part {text!r} contains the separator {SEPARATOR!r}.")
    if any(char.isspace() or not char.isprintable() for char in text):
        raise ValueError(f"Key part {text!r} contains whitespace or control characters.")
    return text


class KeyBuilder:
    """Builds ``[env:]namespace...:part...`` keys; ``child()`` narrows the namespace."""

    def __init__(
        self, *namespace: KeyPart, env: str | None = None, max_length: int = DEFAULT_MAX_LENGTH
    ) -> None:
        if env is None:
            env = str(get_setting("KEY_ENV") or "")
        self.env = env
        self.max_length = max_length
        self._prefix = tuple(part_text(part) for part in ((env,) if env else ()) + namespace)

    def child(self, *parts: KeyPart) -> KeyBuilder:
        """A builder whose keys all start with this one's prefix and ``parts``."""
        builder = copy.copy(self)
        builder._prefix = self._prefix + tuple(part_text(part) for part in parts)
        return builder

    def key(self, *parts: KeyPart) -> str:
        """The key for ``parts``; ValueError if it would exceed ``max_length``."""
        key = SEPARATOR.join(self._prefix + tuple(part_text(part) for part in parts))
        if not key:
            raise ValueError("A key needs at least one part.")
        if len(key) > self.max_length:
            raise ValueError(f"Key {key[:60]!r}... is {len(key)} chars, over {self.max_length}.")
        return key

    __call__ = key

    def format(self, template: str, /, **values: Any) -> str:
        """``format("user:{id}:profile", id=42)``: a template whose placeholders are parts."""
        parts = []
        for part in template.split(SEPARATOR):
            if part.startswith("{") and part.endswith("}"):
                name = part[1:-1]
                if name not in values:
                    raise ValueError(f"Key template {template!r} names unknown {name!r}.")
                parts.append(part_text(values[name]))
            else:
                parts.append(part)
        return self.key(*parts)

    def pattern(self, *parts: KeyPart | Wildcard) -> str:
        """A SCAN/``delete_pattern`` glob: literal parts are glob-escaped; ``ANY`` matches
        one or more whole parts."""
        return SEPARATOR.join(
            [glob_escape(part) for part in self._prefix]
            + ["*" if part is ANY else glob_escape(part_text(part)) for part in parts]
        )


def digest(value: Any) -> str:
    """A short, stable hex digest of arguments (for keys built from function arguments)."""
    encoded = json.dumps(canonical(value), separators=(",", ":"), sort_keys=True)
    return hashlib.blake2b(encoded.encode(), digest_size=16).hexdigest()


def canonical(value: Any) -> Any:
    """A JSON-able form of ``value`` that is equal exactly when the values are, type included.

    Model instances are keyed by label and pk (never their field values); objects that are
    none of the known kinds may define ``__cache_key__()``, otherwise TypeError: a key built
    from ``repr()`` of an arbitrary object would silently differ per process.
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return ["i", str(value)]
    if isinstance(value, float):
        return ["f", repr(value)]
    if isinstance(value, bytes):
        return ["b", value.hex()]
    if isinstance(value, (Decimal, uuid.UUID)):
        return [type(value).__name__, str(value)]
    if isinstance(value, (datetime, date, time)):
        return [type(value).__name__, value.isoformat()]
    if isinstance(value, Model):
        return ["model", value._meta.label_lower, canonical(value.pk)]
    if isinstance(value, (list, tuple)):
        return [type(value).__name__, [canonical(item) for item in value]]
    if isinstance(value, (set, frozenset)):
        items = [canonical(item) for item in value]
        return ["set", sorted(items, key=lambda item: json.dumps(item, sort_keys=True))]
    if isinstance(value, Mapping):
        pairs = [[canonical(k), canonical(v)] for k, v in value.items()]
        return ["map", sorted(pairs, key=lambda pair: json.dumps(pair, sort_keys=True))]
    custom = getattr(value, "__cache_key__", None)
    if callable(custom):
        return ["custom", type(value).__qualname__, canonical(custom())]
    raise TypeError(
        f"Cannot build a cache key from {type(value).__qualname__} {value!r}: pass key=, "
        "leave it out with vary_on=, or give its class a __cache_key__() method."
    )
