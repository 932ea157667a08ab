"""Panels that act through the kit's features' public APIs, installed from ``AppConfig.ready``.

They live on the inspector side: the inspector depends on the tags, sessions and throttle
features (their public APIs: ``RedisCache.tag_key`` / ``invalidate_tags``,
``django_rediskit.sessions.revoke_session`` / ``list_devices``, the documented settings), never
the other way round, so a site without the admin loads none of this and no feature imports the
inspector. A key is only handed to a feature's API after the API's own key builder rebuilds
exactly that key on the same alias; anything else (a forged or foreign key) gets the generic
UNLINK.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import unquote

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from redis.exceptions import ConnectionError as RedisConnectionError

from django_rediskit import conf
from django_rediskit.aliases import backend_for_alias
from django_rediskit.inspector.panels import KeySpace, Panel, panel_for, register_panel
from django_rediskit.sessions import list_devices, revoke_session, session_key_of_name
from django_rediskit.sessions.backend import SessionStoreUnavailable

if TYPE_CHECKING:
    from django_rediskit.inspector.meta import KeyMeta

#: Devices listed on a device-index key page at most (the API returns them all).
MAX_DEVICES_SHOWN = 20
#: Above this many index entries the devices are not read: ``list_devices`` checks every one.
MAX_INDEX_READ = 500


def _suffix(space: KeySpace, key: bytes, namespace: str) -> str | None:
    """The text after ``<prefix>:<ns>:`` of a key of this alias, or None."""
    head = backend_for_alias(space.alias).feature_key(namespace, "")
    try:
        text = key.decode()
    except UnicodeDecodeError:
        return None
    return text[len(head) :] if text.startswith(head) else None


def tag_name(space: KeySpace, key: bytes) -> str | None:
    """The readable tag behind a version key, or None when it cannot be recovered (a long
    name is stored as a hash) or the key is not one ``tag_key`` would build."""
    rest = _suffix(space, key, "tags")
    if rest is None or not (rest.startswith("{") and rest.endswith("}")):
        return None
    try:
        name = unquote(rest[1:-1], errors="strict")
    except UnicodeDecodeError:
        return None
    if not name or backend_for_alias(space.alias).tag_key(name) != key.decode():
        return None
    return name


class TagPanel(Panel):
    """A tag version key: its readable name; the action is ``cache.invalidate_tags``."""

    def describe(self, space: KeySpace, key: bytes, meta: KeyMeta) -> list[tuple[str, str]]:
        name = tag_name(space, key)
        shown = name if name is not None else "(not recoverable: a long name is stored hashed)"
        return [*self.about(), ("Tag", shown)]

    def delete(self, space: KeySpace, key: bytes) -> int:
        name = tag_name(space, key)
        if name is None:
            # Dropping the version key is what invalidation is; no name to hand the API.
            return super().delete(space, key)
        return int(backend_for_alias(space.alias).invalidate_tags(name))


def sessions_alias() -> str:
    """The alias of the session store, as documented for ``REDISKIT["SESSIONS"]``."""
    return str(conf.get_section("SESSIONS")["CACHE_ALIAS"] or conf.get_setting("CACHE_ALIAS"))


def session_key_of(space: KeySpace, key: bytes) -> str | None:
    """The session key a data key of the session store's alias holds, else None."""
    if space.alias != sessions_alias():
        return None
    name = _suffix(space, key, "sessions")
    return None if name is None else session_key_of_name(name)


class SessionPanel(Panel):
    """A session: revoked through the sessions API, so the owner's device index and the
    ``session_revoked`` signal stay consistent with the deletion."""

    def describe(self, space: KeySpace, key: bytes, meta: KeyMeta) -> list[tuple[str, str]]:
        if session_key_of(space, key) is None:
            how = f"not the session store (alias {sessions_alias()!r}): plain UNLINK"
        else:
            how = "django_rediskit.sessions.revoke_session (updates the owner's device index)"
        return [*self.about(), ("Revoke goes through", how)]

    def delete(self, space: KeySpace, key: bytes) -> int:
        session_key = session_key_of(space, key)
        if session_key is None:
            return super().delete(space, key)
        try:
            return int(revoke_session(session_key, reason="admin"))
        except SessionStoreUnavailable as exc:
            # The inspector answers every outage with its 503 page.
            raise RedisConnectionError(str(exc)) from exc


class DeviceIndexPanel(Panel):
    """A user's device index: that user's devices, read with ``sessions.list_devices``."""

    def describe(self, space: KeySpace, key: bytes, meta: KeyMeta) -> list[tuple[str, str]]:
        rows = self.about()
        rest = _suffix(space, key, "users") if space.alias == sessions_alias() else None
        if rest is None or not rest.startswith("{") or "}" not in rest:
            return rows
        token = rest[1 : rest.index("}")]
        if meta.length > MAX_INDEX_READ:
            return [*rows, ("Devices", f"{meta.length} index entries: too many to read here")]
        if token.startswith("~"):
            return [*rows, ("User", "(a non-plain primary key, stored hashed)")]
        model = get_user_model()
        try:
            user = model._default_manager.filter(pk=token).first()
        except (ValueError, TypeError, ValidationError):
            user = None
        if user is None:
            return [*rows, ("User", f"no user with primary key {token!r}")]
        devices = list_devices(user)
        rows = [*rows, ("User", f"{user} (pk {token}): {len(devices)} live device(s)")]
        for device in devices[:MAX_DEVICES_SHOWN]:
            rows.append(
                (
                    f"Device {device.device_id}",
                    f"{device.browser} on {device.os}, {device.ip or 'no IP'}; "
                    f"last active {device.last_activity:%Y-%m-%d %H:%M:%S} UTC, "
                    f"expires {device.expires_at:%Y-%m-%d %H:%M:%S} UTC",
                )
            )
        if len(devices) > MAX_DEVICES_SHOWN:
            rows.append(("…", f"{len(devices) - MAX_DEVICES_SHOWN} more"))
        return rows


class ThrottlePanel(Panel):
    """A rate-limit window: its scope and window length, read from the key's layout
    (``{<scope>:<identity digest>}:<algorithm>:<window s>``). The identity is a keyed hash, so
    the inspector's throttle page, which takes the identity, reads the window with
    ``RateLimiter.peek``; resetting stays an UNLINK of this one window."""

    def describe(self, space: KeySpace, key: bytes, meta: KeyMeta) -> list[tuple[str, str]]:
        rows = self.about()
        rest = _suffix(space, key, "throttle")
        if rest is None or not rest.startswith("{") or "}:" not in rest:
            return rows
        tag, _, tail = rest[1:].partition("}:")
        scope, _, digest = tag.rpartition(":")
        letter, _, window = tail.partition(":")
        return [
            *rows,
            ("Scope", scope),
            ("Identity (keyed hash)", digest),
            ("Algorithm letter", letter),
            ("Window", f"{window} s"),
        ]


def install() -> None:
    """Replace the generic panels of these namespaces, keeping their titles and flags."""
    for namespace, cls in (
        ("tags", TagPanel),
        ("sessions", SessionPanel),
        ("users", DeviceIndexPanel),
        ("throttle", ThrottlePanel),
    ):
        generic = panel_for(namespace)
        if generic is not None and type(generic) is Panel:
            register_panel(
                cls(
                    namespace,
                    generic.title,
                    generic.help,
                    sensitive_names=generic.sensitive_names,
                    sensitive_values=generic.sensitive_values,
                    delete_label=generic.delete_label,
                )
            )
