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
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from django.core.exceptions import PermissionDenied
from django.utils.crypto import salted_hmac

from django_rediskit import conf, get_redis, globs
from django_rediskit.aliases import backend_for_alias
from django_rediskit.inspector.display import escape_bytes, escape_text, label
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


class KeyGone(LookupError):
    """A long name's reference no longer finds its key (deleted, or moved by a rehash)."""


#: Names up to this many bytes travel in URLs as they are (base64url, about 1.4 KB).
INLINE_LIMIT = 1024
#: Bytes of a long name kept in its reference, to narrow the SCAN that finds it again.
HEAD_BYTES = 48
_MAX_INLINE_REF = 8192
_LONG_REF = re.compile(r"~(\d{1,4})\.(\d{1,20})\.(\d{1,10})\.([0-9a-f]{64})\.([A-Za-z0-9_-]{0,64})")


@dataclass(frozen=True)
class LongRef:
    """Where the browse found a long name: ``node``'s SCAN cursor before the call that
    returned it, and the name's length, SHA-256 and first bytes.

    Redis allows names up to 512 MB and no URL carries that, so a long name is not put in the
    link: it is found again by SCANning from that cursor (SCAN from a cursor reaches every key
    that the call from it reached and that still exists, whatever COUNT), with a MATCH on its
    first bytes so only look-alikes cross the wire, and recognised by length and digest. No
    server-side state: the reference works in any process, for any user allowed to see the key.
    """

    node: int
    position: int
    size: int
    digest: str
    head: bytes

    def encode(self) -> str:
        head = base64.urlsafe_b64encode(self.head).rstrip(b"=").decode()
        return f"~{self.node}.{self.position}.{self.size}.{self.digest}.{head}"

    def is_of(self, key: bytes) -> bool:
        return len(key) == self.size and hashlib.sha256(key).hexdigest() == self.digest


def has(request: HttpRequest, permission: str) -> bool:
    return bool(request.user.has_perm(f"{APP}.{permission}"))


def require(request: HttpRequest, permission: str) -> None:
    if not has(request, permission):
        raise PermissionDenied(f"needs the {APP}.{permission} permission")


def key_ref(key: bytes, origin: tuple[int, int] | None = None) -> str:
    """A URL-safe reference to a key: its bytes (base64url without padding), or for a name
    longer than ``INLINE_LIMIT`` found by a scan at ``origin`` (node, cursor), a ``LongRef``."""
    if len(key) > INLINE_LIMIT and origin is not None:
        digest = hashlib.sha256(key).hexdigest()
        return LongRef(origin[0], origin[1], len(key), digest, key[:HEAD_BYTES]).encode()
    return base64.urlsafe_b64encode(key).rstrip(b"=").decode()


def parse_ref(ref: str | None) -> bytes | LongRef:
    """The key an inline reference names, or the ``LongRef`` to look a long name up with."""
    if not ref:
        raise BadKeyReference("missing key reference")
    if ref.startswith("~"):
        match = _LONG_REF.fullmatch(ref)
        if match is None:
            raise BadKeyReference("malformed long-name reference")
        node, position, size, digest, head = match.groups()
        try:
            head_bytes = base64.urlsafe_b64decode(head + "=" * (-len(head) % 4))
        except (binascii.Error, ValueError):
            raise BadKeyReference("malformed long-name reference") from None
        return LongRef(int(node), int(position), int(size), digest, head_bytes)
    if len(ref) > _MAX_INLINE_REF:
        raise BadKeyReference("oversized key reference")
    try:
        return base64.urlsafe_b64decode(ref + "=" * (-len(ref) % 4))
    except (binascii.Error, ValueError):
        raise BadKeyReference("malformed key reference") from None


def key_from_ref(ref: str | None) -> bytes:
    """The key an inline reference names (a ``LongRef`` needs ``Target.resolve``)."""
    parsed = parse_ref(ref)
    if isinstance(parsed, LongRef):
        raise BadKeyReference("a long-name reference needs its alias to be resolved")
    return parsed


def _glob_escape_bytes(data: bytes) -> bytes:
    return re.sub(rb"([*?\[\]\\])", rb"\\\1", data)


@dataclass
class Target:
    alias: str
    prefix: str
    client: Redis
    nodes: list[Redis]
    codec: Codec | None
    #: The alias's ``RedisCache.tag_key``: where a tag's version lives.
    tag_key: Callable[[str], str]
    #: ``SCOPE``: "prefix" (only ``<prefix>:...`` keys) or "database".
    scope: str = "prefix"

    @property
    def base(self) -> bytes:
        """What every key in scope starts with (nothing for the database scope)."""
        return (self.prefix + ":").encode() if self.scope == "prefix" else b""

    @property
    def alias_base(self) -> bytes:
        """What every key of this alias starts with, whatever the scope."""
        return (self.prefix + ":").encode()

    def in_scope(self, key: bytes) -> bool:
        return key.startswith(self.base)

    def require_in_scope(self, key: bytes) -> None:
        """Refuse any read or write of a key outside the scope (e.g. another application's
        key on a shared Redis): a reference can be typed by hand, the list is not the guard."""
        if not self.in_scope(key):
            raise PermissionDenied(
                f"this key is outside the inspector's scope ({self.scope_text}); "
                'REDISKIT["INSPECTOR"]["SCOPE"] = "database" widens it'
            )

    @property
    def scope_text(self) -> str:
        if self.scope == "prefix":
            return f"keys of this alias, {escape_text(self.prefix)}:*"
        return "every key of the database, other applications' included"

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
            # The topology's own list (each primary of a cluster, sorted so a cursor's node
            # index means the same node on the next request; the one server otherwise).
            backend.topology.primaries(),
            backend.client.codec,
            backend.tag_key,
            config.scope,
        )

    def resolve(self, ref: str | None, count: int = 1000, max_calls: int = 20) -> bytes:
        """The key ``ref`` names. A ``LongRef`` is looked up by a bounded SCAN from its cursor
        (``max_calls`` calls of ``count``); ``KeyGone`` if the key is not found there."""
        parsed = parse_ref(ref)
        if not isinstance(parsed, LongRef):
            return parsed
        if parsed.node >= len(self.nodes):
            raise BadKeyReference("long-name reference does not fit this server layout")
        node = self.nodes[parsed.node]
        match = _glob_escape_bytes(parsed.head) + b"*"
        cursor = parsed.position
        for _ in range(max_calls):
            cursor, batch = cast(
                "tuple[int, list[bytes]]", node.scan(cursor, match=match, count=count)
            )
            for key in batch:
                if parsed.is_of(key):
                    return key
            if cursor == 0:
                break
        raise KeyGone(
            f"the key of {parsed.size:,} bytes starting “{escape_bytes(parsed.head)}…” is no "
            "longer where the list found it (deleted, or moved); find it in the list again"
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
        whole = [("", "All keys in the database")] if self.scope == "database" else []
        return [
            *whole,
            ("alias", f"This alias ({self.prefix}:*)"),
            ("cache", "Cache entries"),
            *(
                (name, f"{name} ({self.prefix}:{token}:*)")
                for name, token in conf.NAMESPACES.items()
            ),
        ]

    def pattern(self, preset: str, query: str, literal: bool) -> str:
        """The SCAN MATCH pattern for a namespace preset and a user's glob (or literal text).

        Under the "prefix" scope the empty preset means the alias, and the user's glob is
        appended to the escaped prefix, so the pattern cannot match a key outside it.
        """
        escaped_prefix = glob_escape(self.prefix)
        if preset == "" and self.scope == "prefix":
            preset = "alias"
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
            pattern = base + glob_escape(query) if query else base + "*"
        else:
            pattern = base + (query or "*")
        if not confined(pattern, self.base):
            raise BadKeyReference("the pattern reaches outside the inspector's scope")
        return pattern


def confined(pattern: str, base: bytes) -> bool:
    """Whether every key ``pattern`` matches starts with ``base``: its first tokens, read the
    way Redis reads them, are exactly the bytes of ``base`` (no wildcard, class or escape
    trick can widen them)."""
    tokens = globs.tokens(pattern)
    if len(tokens) < len(base):
        return False
    return all(
        isinstance(token, globs.One) and token.allowed == {byte}
        for token, byte in zip(tokens, base, strict=False)
    )


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

    def display(self, key: bytes, limit: int | None = None) -> str:
        """The key as text, or its namespace and a keyed 8-hex-digit hash when hidden.

        Non-printable bytes are escaped (``display.escape_bytes``), so the text is injective:
        two different keys never read the same, and a NUL, CR or ESC cannot hide in a name.
        A name longer than ``limit`` bytes is cut, saying how many bytes are left out.
        """
        if self.name_hidden(key):
            return self._redacted(key)
        if limit is not None and len(key) > limit:
            return f"{escape_bytes(key[:limit])}… ({len(key) - limit:,} more bytes)"
        return escape_bytes(key)

    def label(self, key: bytes) -> str:
        """``display`` cut for lists, titles, messages and the audit log (``display.label``)."""
        if not self.name_hidden(key):
            return label(key)
        return self._redacted(key)

    def _redacted(self, key: bytes) -> str:
        digest = salted_hmac(_REDACT_SALT, key, algorithm="sha256").hexdigest()[:8]
        namespace = self.target.namespace_of(key)
        if namespace is not None:
            head = escape_text(f"{self.target.prefix}:{conf.NAMESPACES[namespace]}:")
            return f"{head}<{digest}>"
        return f"<redacted {digest}>"

    def redact_text(self, text: bytes) -> str:
        """A SLOWLOG argument, escaped and cut, hidden if it names something sensitive."""
        return self.label(text)
