"""The Django side of reaching Redis: which alias, which nodes, who may see what.

``Target`` binds an admin request to one ``CACHES`` alias (its client, its SCAN nodes, its key
prefix and value codec). ``Viewer`` applies the permissions and redaction rules: session ids and
keys matching ``SENSITIVE_PATTERNS`` are shown as a short keyed hash, and their values are hidden,
unless the user has "view sensitive".
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.core.exceptions import PermissionDenied
from django.utils.crypto import salted_hmac

from django_rediskit import conf, get_redis
from django_rediskit.connection import backend_for_alias
from django_rediskit.inspector.panels import Panel, panel_for
from django_rediskit.patterns import glob_escape

if TYPE_CHECKING:
    from django.http import HttpRequest
    from redis import Redis

    from django_rediskit.cache.codec import Codec
    from django_rediskit.inspector.config import InspectorConfig

APP = "django_rediskit"
PERMISSIONS = (
    ("view_keys", "Can browse Redis keys and their metadata"),
    ("view_values", "Can view Redis values"),
    ("change_keys", "Can change Redis keys (TTL, invalidate)"),
    ("delete_keys", "Can delete Redis keys"),
    ("view_sensitive", "Can view sensitive Redis keys and values"),
    ("view_stats", "Can view Redis server statistics"),
)
_REDACT_SALT = "django_rediskit.inspector.redact"


class BadKeyReference(ValueError):
    """A ``k`` parameter that is not a key reference this admin produced."""


def has(request: HttpRequest, permission: str) -> bool:
    return bool(request.user.has_perm(f"{APP}.{permission}"))


def require(request: HttpRequest, permission: str) -> None:
    if not has(request, permission):
        raise PermissionDenied(f"needs the {APP}.{permission} permission")


def key_ref(key: bytes) -> str:
    """A URL-safe reference to a key (its bytes, base64url without padding)."""
    return base64.urlsafe_b64encode(key).rstrip(b"=").decode()


def key_from_ref(ref: str | None) -> bytes:
    if not ref or len(ref) > 8192:
        raise BadKeyReference("missing or oversized key reference")
    try:
        return base64.urlsafe_b64decode(ref + "=" * (-len(ref) % 4))
    except (binascii.Error, ValueError):
        raise BadKeyReference("malformed key reference") from None


def _nodes(client: Redis) -> list[Redis]:
    """The clients to SCAN: each primary of a cluster, or the one server otherwise."""
    get_primaries = getattr(client, "get_primaries", None)
    if get_primaries is None:
        return [client]
    return [client.get_redis_connection(node) for node in get_primaries()]  # type: ignore[attr-defined]


@dataclass
class Target:
    alias: str
    prefix: str
    client: Redis
    nodes: list[Redis]
    codec: Codec | None
    #: The alias's ``RedisCache.tag_key``: where a tag's version lives.
    tag_key: Callable[[str], str]

    @classmethod
    def for_alias(cls, alias: str, config: InspectorConfig) -> Target:
        if alias not in config.aliases:
            raise BadKeyReference(f"alias {alias[:40]!r} is not offered by the inspector")
        backend = backend_for_alias(alias)
        client = get_redis(alias)
        return cls(
            alias,
            backend.key_prefix,
            client,
            _nodes(client),
            backend.client.codec,
            backend.tag_key,
        )

    def namespace_of(self, key: bytes) -> str | None:
        """The ``conf.NAMESPACES`` name a key of this alias belongs to, if any."""
        head = (self.prefix + ":").encode()
        if not key.startswith(head):
            return None
        token = key[len(head) :].split(b":", 1)[0].decode("utf-8", "replace")
        for name, value in conf.NAMESPACES.items():
            if value == token:
                return name
        return None

    def panel(self, key: bytes) -> Panel | None:
        return panel_for(self.namespace_of(key))

    def presets(self) -> list[tuple[str, str]]:
        """``(value, label)`` for the namespace filter."""
        return [
            ("", "All keys in the database"),
            ("alias", f"This alias ({self.prefix}:*)"),
            ("cache", "Cache entries"),
            *(
                (name, f"{name} ({self.prefix}:{token}:*)")
                for name, token in conf.NAMESPACES.items()
            ),
        ]

    def pattern(self, preset: str, query: str, literal: bool) -> str:
        """The SCAN MATCH pattern for a namespace preset and a user's glob (or literal text)."""
        escaped_prefix = glob_escape(self.prefix)
        if preset == "":
            base = ""
        elif preset == "alias":
            base = escaped_prefix + ":"
        elif preset == "cache":
            base = escaped_prefix + ":[0-9-]*:"
        elif preset in conf.NAMESPACES:
            base = f"{escaped_prefix}:{glob_escape(conf.NAMESPACES[preset])}:"
        else:
            raise BadKeyReference(f"unknown namespace preset {preset[:40]!r}")
        if literal:
            return base + glob_escape(query) if query else base + "*"
        return base + (query or "*")


class Viewer:
    """One user's view of one alias: what they may read, and how names are shown.

    ``sensitive_ok`` is the user's "view sensitive" permission in the admin, and the
    ``--show-sensitive`` flag in ``manage.py rediskit_keys``.
    """

    def __init__(self, target: Target, config: InspectorConfig, *, sensitive_ok: bool) -> None:
        self.target = target
        self.config = config
        self.sensitive_ok = sensitive_ok

    def _matches_pattern(self, key: bytes) -> bool:
        text = key.decode("utf-8", "backslashreplace")
        return any(fnmatch.fnmatchcase(text, pattern) for pattern in self.config.sensitive_patterns)

    def name_hidden(self, key: bytes) -> bool:
        if self.sensitive_ok:
            return False
        panel = self.target.panel(key)
        return (panel is not None and panel.sensitive_names) or self._matches_pattern(key)

    def value_hidden(self, key: bytes) -> bool:
        if self.sensitive_ok:
            return False
        panel = self.target.panel(key)
        return (panel is not None and panel.sensitive_values) or self.name_hidden(key)

    def display(self, key: bytes) -> str:
        """The key as text, or its namespace and a keyed 8-hex-digit hash when hidden."""
        if not self.name_hidden(key):
            return key.decode("utf-8", "backslashreplace")
        digest = salted_hmac(_REDACT_SALT, key, algorithm="sha256").hexdigest()[:8]
        namespace = self.target.namespace_of(key)
        if namespace is not None:
            return f"{self.target.prefix}:{conf.NAMESPACES[namespace]}:<{digest}>"
        return f"<redacted {digest}>"

    def redact_text(self, text: bytes) -> str:
        """A SLOWLOG argument, hidden if it names or holds something sensitive."""
        if self.sensitive_ok:
            return text.decode("utf-8", "backslashreplace")
        if self.name_hidden(text):
            return self.display(text)
        return text.decode("utf-8", "backslashreplace")
