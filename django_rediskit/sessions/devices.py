"""The device API: list and revoke a user's sessions through the per-user index.

Devices are named by opaque ids (128 random bits, kept across key rotation); a device id is only
ever looked up *inside the requesting user's own index*, so knowing another user's id gives
nothing (no IDOR). Session keys never leave this module.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from django.http import HttpRequest

from django_rediskit.cache.aio import arun
from django_rediskit.cache.steps import Op, Pipe, run
from django_rediskit.connection.aio import async_topology
from django_rediskit.connection.policy import ashielded, shielded
from django_rediskit.patterns import glob_escape
from django_rediskit.sessions import signals
from django_rediskit.sessions.envelope import (
    DEVICE_ID_RE,
    is_session_key,
    session_name,
    user_token,
)
from django_rediskit.sessions.flow import Emit, Io, SessionOp, adrive, call, drive
from django_rediskit.sessions.index import (
    decode_pairs,
    name_key,
    session_backend,
    unlink_names,
    user_keys,
    user_script,
)
from django_rediskit.sessions.useragent import read_client_field

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser
    from django.contrib.auth.models import AnonymousUser

    from django_rediskit.cache.backend import RedisCache

    AnyUser = AbstractBaseUser | AnonymousUser

#: revoke_all repeats while logins race it; each pass is one script call + UNLINKs.
REVOKE_ALL_PASSES = 3
PRUNE_SCAN_COUNT = 500
PRUNE_TIME_BUDGET = 5.0


@dataclass(frozen=True)
class Device:
    """One live session of a user, as shown to that user (no session key in here)."""

    device_id: str
    created_at: datetime
    last_activity: datetime
    expires_at: datetime
    ip: str
    user_agent: str
    browser: str
    os: str
    is_current: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "device_id": self.device_id,
            "created_at": self.created_at.isoformat(),
            "last_activity": self.last_activity.isoformat(),
            "expires_at": self.expires_at.isoformat(),
            "ip": self.ip,
            "user_agent": self.user_agent,
            "browser": self.browser,
            "os": self.os,
            "is_current": self.is_current,
        }


def user_token_of(user: Any) -> str:
    """The index token of a saved, authenticated user ('' for anonymous or unsaved users)."""
    if user is None or not getattr(user, "is_authenticated", False) or user.pk is None:
        return ""
    return user_token(user._meta.pk.value_to_string(user))


def _when(seconds: float) -> datetime:
    return datetime.fromtimestamp(min(max(seconds, 0.0), 253402300799.0), tz=timezone.utc)


def _current_name(request: HttpRequest | None) -> str | None:
    """The index name of the request's session (what the index holds), if it has one."""
    session = getattr(request, "session", None)
    key = getattr(session, "session_key", None)
    return session_name(key) if is_session_key(key) else None


def _device(entry: bytes, client: bytes, current: bool) -> Device | None:
    """A Device from one index entry (format in lua/session_user.lua); None if malformed."""
    try:
        expiry, device_id, created, active = entry.decode("ascii").split("|")
        times = [int(value, 36) for value in (expiry, created, active)]
    except (UnicodeDecodeError, ValueError):
        return None
    if not DEVICE_ID_RE.match(device_id):
        return None
    ip, browser, system, agent = read_client_field(client.decode("ascii", "replace"))
    return Device(
        device_id=device_id,
        created_at=_when(times[1]),
        last_activity=_when(times[2]),
        expires_at=_when(times[0] / 1000),
        ip=ip,
        user_agent=agent,
        browser=browser,
        os=system,
        is_current=current,
    )


def _live_entries(backend: RedisCache, token: str) -> Op[list[tuple[str, bytes, bytes]]]:
    """(name, entry, client entry) of the user's sessions whose data key still exists; entries
    whose data vanished early (eviction, a manual DEL) are pruned on the way. Two round trips
    (three with dead entries)."""
    keys = user_keys(backend, token)
    raw = yield user_script(keys, ["list"])
    entries = [(raw[i].decode(), raw[i + 1], raw[i + 2]) for i in range(0, len(raw), 3)]
    if not entries:
        return []
    alive = yield Pipe(tuple(call("exists", name_key(backend, sid)) for sid, _, _ in entries))
    dead = [sid for (sid, _, _), ok in zip(entries, alive, strict=True) if not ok]
    if dead:
        yield user_script(keys, ["revoke", "sids", *dead])
    return [entry for entry, ok in zip(entries, alive, strict=True) if ok]


def _list_devices(user: AnyUser, request: HttpRequest | None) -> SessionOp[list[Device]]:
    token = user_token_of(user)
    if not token:
        return []
    current = _current_name(request)
    backend = session_backend()
    entries = yield Io(backend, _live_entries(backend, token))
    devices = [_device(entry, client, sid == current) for sid, entry, client in entries]
    found = [device for device in devices if device is not None]
    return sorted(found, key=lambda device: device.last_activity, reverse=True)


def _count_devices(user: AnyUser) -> SessionOp[int]:
    token = user_token_of(user)
    if not token:
        return 0
    backend = session_backend()
    return len((yield Io(backend, _live_entries(backend, token))))


def _revoke_entries(backend: RedisCache, token: str, argv: list[Any]) -> Op[list[tuple[str, str]]]:
    pairs = decode_pairs((yield user_script(user_keys(backend, token), ["revoke", *argv])))
    yield from unlink_names(backend, [sid for sid, _ in pairs])
    return pairs


def _revoke(token: str, argv: list[Any], reason: str) -> SessionOp[list[str]]:
    backend = session_backend()
    pairs = yield Io(backend, _revoke_entries(backend, token, argv))
    for _, device_id in pairs:
        yield Emit(
            signals.session_revoked,
            sender=Device,
            user_token=token,
            device_id=device_id or None,
            reason=reason,
        )
    return [device_id for _, device_id in pairs]


def _revoke_device(user: AnyUser, device_id: str, reason: str) -> SessionOp[bool]:
    token = user_token_of(user)
    if not token or not isinstance(device_id, str) or not DEVICE_ID_RE.match(device_id):
        return False
    return bool((yield from _revoke(token, ["device", device_id], reason)))


def _revoke_others(user: Any, request: HttpRequest, reason: str) -> SessionOp[int]:
    token = user_token_of(user)
    current = _current_name(request)
    if not token:
        return 0
    return len((yield from _revoke(token, ["others", current or ""], reason)))


def _revoke_all(user: AnyUser, reason: str, keep: str | None) -> SessionOp[int]:
    token = user_token_of(user)
    if not token:
        return 0
    kept = session_name(keep) if is_session_key(keep) else ""
    total = 0
    for _ in range(REVOKE_ALL_PASSES):
        removed = yield from _revoke(token, ["others" if kept else "all", kept], reason)
        total += len(removed)
        if not removed:
            break
    return total


def list_devices(user: AnyUser, *, request: HttpRequest | None = None) -> list[Device]:
    """The user's live devices, most recently active first; ``request`` marks the current one."""
    return drive(_list_devices(user, request))


def count_devices(user: AnyUser) -> int:
    return drive(_count_devices(user))


def revoke(user: AnyUser, device_id: str, *, reason: str = "user") -> bool:
    """End one of ``user``'s devices; False if ``device_id`` is not one of *theirs*."""
    return drive(_revoke_device(user, device_id, reason))


def revoke_others(request: HttpRequest, *, reason: str = "others") -> int:
    """End every session of the request's user except the request's own; returns how many."""
    return drive(_revoke_others(getattr(request, "user", None), request, reason))


def revoke_all(user: AnyUser, *, reason: str = "all", keep: str | None = None) -> int:
    """End every session of ``user`` (except session key ``keep``, for internal callers).

    Each pass atomically empties the index and then UNLINKs the sessions it held; passes repeat
    while a concurrent login keeps adding (at most ``REVOKE_ALL_PASSES``). A save racing this
    cannot bring a session back: saves are ``SET XX`` and rotations re-check the index.
    """
    return drive(_revoke_all(user, reason, keep))


def revoke_session(session_key: str, *, reason: str = "admin") -> bool:
    """End one session by key (admin and internal use; keys never come from users)."""
    if not is_session_key(session_key):
        return False
    from django_rediskit.sessions.backend import SessionStore

    ended = SessionStore().end(session_key)
    if ended is None:
        return False
    signals.session_revoked.send(
        sender=Device, user_token=ended.uid, device_id=ended.device_id or None, reason=reason
    )
    return True


def _index_token(key: bytes | str) -> str:
    text = key.decode() if isinstance(key, bytes) else str(key)
    return text[text.index("{") + 1 : text.rindex("}")]


def _index_pattern(backend: RedisCache) -> str:
    return f"{glob_escape(backend.feature_key('users'))}:*:m"


def prune_indexes(time_budget: float = PRUNE_TIME_BUDGET) -> int:
    """Prune every user index with a bounded SCAN; returns how many indexes were visited."""
    backend = session_backend()
    deadline = time.monotonic() + time_budget
    visited = 0
    with shielded(backend.breaker):
        client = backend.topology.client(write=True)
        for key in client.scan_iter(match=_index_pattern(backend), count=PRUNE_SCAN_COUNT):
            run(_live_entries(backend, _index_token(key)), backend.topology)
            visited += 1
            if time.monotonic() > deadline:
                break
    return visited


# --- async twins: the same operations, driven on the running loop's redis.asyncio clients ------


async def alist_devices(user: AnyUser, *, request: HttpRequest | None = None) -> list[Device]:
    return await adrive(_list_devices(user, request))


async def acount_devices(user: AnyUser) -> int:
    return await adrive(_count_devices(user))


async def arevoke(user: AnyUser, device_id: str, *, reason: str = "user") -> bool:
    return await adrive(_revoke_device(user, device_id, reason))


async def arevoke_others(request: HttpRequest, *, reason: str = "others") -> int:
    """As :func:`revoke_others`; the user comes from ``request.auser()`` when the auth middleware
    set it (``request.user`` would query the database on the event loop)."""
    auser = getattr(request, "auser", None)
    user = await auser() if auser is not None else getattr(request, "user", None)
    return await adrive(_revoke_others(user, request, reason))


async def arevoke_all(user: AnyUser, *, reason: str = "all", keep: str | None = None) -> int:
    return await adrive(_revoke_all(user, reason, keep))


async def aprune_indexes(time_budget: float = PRUNE_TIME_BUDGET) -> int:
    """:func:`prune_indexes` on the running loop (SCAN on every primary)."""
    backend = session_backend()
    topology = async_topology(backend.topology)
    deadline = time.monotonic() + time_budget
    visited = 0
    async with ashielded(backend.breaker):
        async for key in topology.scan_iter(_index_pattern(backend), PRUNE_SCAN_COUNT):
            await arun(_live_entries(backend, _index_token(key)), topology)
            visited += 1
            if time.monotonic() > deadline:
                break
    return visited
