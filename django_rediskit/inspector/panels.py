"""App panels: what the inspector knows about the key namespaces of the kit's features.

A panel belongs to one namespace token of ``conf.NAMESPACES`` (``tv`` for tags, ``s`` for
sessions...). It adds rows to the key page, says whether names and values are secrets, and owns
the key page's destructive action, so a feature can make "delete" mean "invalidate this tag" or
"revoke this session through the sessions API". The generic panels below know only the key
layouts of DESIGN.md; ``feature_panels`` replaces them (from ``AppConfig.ready``) with panels
that go through the tags / sessions / throttle features' public APIs. A panel gets the key's
``KeySpace`` (alias, prefix, client), so it can reach the right alias's API.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from redis import Redis

    from django_rediskit.inspector.meta import KeyMeta


class KeySpace(Protocol):
    """Where a key lives: the inspector's ``access.Target`` is one."""

    @property
    def alias(self) -> str: ...

    @property
    def prefix(self) -> str: ...

    @property
    def client(self) -> Redis: ...


@dataclass(frozen=True)
class Panel:
    """Generic knowledge of one namespace; subclass and override ``describe`` / ``delete``."""

    namespace: str
    title: str
    help: str = ""
    #: Key names are secrets (session ids): shown hashed without "view sensitive".
    sensitive_names: bool = False
    #: Values are personal data or secrets: hidden without "view sensitive".
    sensitive_values: bool = False
    delete_label: str = "Delete"

    def about(self) -> list[tuple[str, str]]:
        """Rows that need no read and show nothing sensitive: shown to every key viewer."""
        return [("Namespace", self.title), ("Meaning", self.help)] if self.help else []

    def describe(self, space: KeySpace, key: bytes, meta: KeyMeta) -> list[tuple[str, str]]:
        """Extra ``(label, text)`` rows for the key page, shown only to users who may see the
        value (they may hold what the value holds); one bounded read at most."""
        return self.about()

    def delete(self, space: KeySpace, key: bytes) -> int:
        """Carry out the key page's destructive action; returns how many keys went."""
        return int(space.client.unlink(key))


_GENERIC = (
    Panel(
        "tags",
        "Cache tag version",
        "The random version token of one tag. Deleting it invalidates every cache entry stored "
        "with the tag: their recorded checksum no longer matches.",
        delete_label="Invalidate tag",
    ),
    Panel(
        "sessions",
        "Session",
        "One session's data. Deleting it logs that device out; the user's device index drops "
        "the stale entry on its next touch.",
        sensitive_names=True,
        sensitive_values=True,
        delete_label="Revoke session",
    ),
    Panel(
        "users",
        "User device index",
        "A user's session index: one compact hash entry per session (expiry, device, times, IP, "
        "client); a sorted set here is the first layout, converted on the user's next request.",
        sensitive_values=True,
    ),
    Panel(
        "throttle",
        "Rate-limit window",
        "One identity's throttle state; deleting it resets that identity's quota.",
        delete_label="Reset throttle",
    ),
    Panel("queue", "Queue stream", "A Redis Streams queue of the messaging feature."),
    Panel("lock", "Lock", "A short-lived lock (stampede protection); it expires by itself."),
)

_panels: dict[str, Panel] = {panel.namespace: panel for panel in _GENERIC}


def register_panel(panel: Panel) -> None:
    """Install a feature's panel for its namespace, replacing the generic one."""
    _panels[panel.namespace] = panel


def panel_for(namespace: str | None) -> Panel | None:
    return _panels.get(namespace) if namespace else None
