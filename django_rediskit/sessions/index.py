"""Redis access shared by the engine and the device API: keys, the outage guard, index calls.

Key layout (``P`` = the alias's KEY_PREFIX; the namespace tokens come from ``conf.NAMESPACES``):
``P:s:<name>`` session envelope, ``<name>`` being ``envelope.session_name(<session key>)`` (the
key itself for keys Django generates, an escaped form for any other); ``P:u:{<user>}:m`` one HASH
of compact device entries (expiry, device id, times, IP, client), one per session name, that stays
listpack-encoded, see ``lua/session_user.lua``.
``P:u:{<user>}:z`` is the first layout's ZSET, only read to convert it (lazy upgrade). Both user
keys share a hash tag, so the ``session_user`` script is atomic on a cluster too; the session keys
live in other slots and are only ever touched by single-key commands.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Final

from django_rediskit.aliases import backend_for_alias
from django_rediskit.cache.steps import Lua, Op, Pipe
from django_rediskit.connection.policy import RedisUnavailable, shielded
from django_rediskit.lua import script
from django_rediskit.sessions.envelope import Envelope, session_name
from django_rediskit.sessions.flow import call
from django_rediskit.sessions.options import get_options
from django_rediskit.sessions.useragent import client_field

if TYPE_CHECKING:
    from redis import Redis

    from django_rediskit.cache.backend import RedisCache

logger = logging.getLogger("django_rediskit.sessions")

#: What :func:`redis_io` raises when Redis is unreachable or too slow (the one policy's outages,
#: never a wrong password or a wrong command, which propagate unchanged).
OUTAGES: Final = (RedisUnavailable,)
UNLINK_BATCH: Final = 500

# Results of the ``index`` operation of lua/session_user.lua.
INDEXED, ABSENT, DENIED, ROTATION_REVOKED = 1, 0, -1, -2


def log_outage(operation: str, exc: BaseException) -> None:
    """Warn through the alias's one rate-limited outage log (shared with the cache and throttles),
    so an outage cannot flood the logs whichever feature meets it first."""
    session_backend().outage_log(operation, exc, "failing open")


class SessionStoreUnavailable(Exception):
    """Redis could not be reached to write or delete a session (reads fall back to anonymous)."""


def session_backend() -> RedisCache:
    return backend_for_alias(get_options().cache_alias)


def data_key(backend: RedisCache, session_key: str) -> str:
    """The data key of a session key (always escaped through ``session_name``: a name handed
    in as if it were a key is escaped again, so it never reaches the session it names)."""
    return name_key(backend, session_name(session_key))


def name_key(backend: RedisCache, name: str) -> str:
    """The data key of a session *name*, as the user index holds it (never a client's input)."""
    return backend.feature_key("sessions", name)


def user_keys(backend: RedisCache, token: str) -> list[str]:
    tag = "{" + token + "}"
    return [backend.feature_key("users", tag, "z"), backend.feature_key("users", tag, "m")]


@contextmanager
def redis_io(backend: RedisCache) -> Iterator[Redis]:
    """The alias's client under the alias's failure policy (``connection.policy.shielded``): a
    dead Redis costs one connect timeout, then calls fail in microseconds (the breaker raises a
    ConnectionError subclass) until it recovers. Outages propagate; callers decide between
    falling back and failing. A wrong password is a bug, never an outage: it is raised as
    ``AuthenticationError`` and never counted against the breaker."""
    with shielded(backend.breaker):
        yield backend.topology.client(write=True)


def index_args(
    session_key: str,
    ttl_ms: int,
    device_id: str,
    created_ms: int,
    client: tuple[str, str] | None,
    *,
    cap: int | None = None,
    policy: str = "",
    existing_only: bool = False,
    rotated_from: str | None = None,
) -> list[Any]:
    """ARGV of the ``index`` operation, naming sessions by ``session_name``; the client is
    stored compactly (``client_field``)."""
    ip, agent = client or ("", "")
    return [
        "index",
        session_name(session_key),
        max(1, ttl_ms),
        device_id,
        created_ms,
        client_field(ip, agent) if client else "",
        "1" if client else "0",
        cap or 0,
        policy,
        "1" if existing_only else "0",
        session_name(rotated_from) if rotated_from else "",
    ]


def revoke_sids_args(session_keys: Sequence[str]) -> list[str]:
    """ARGV of the ``revoke sids`` operation for these session keys."""
    return ["revoke", "sids", *(session_name(key) for key in session_keys)]


def user_script(keys: list[str], argv: Sequence[Any]) -> Lua:
    """lua/session_user.lua on one user's keys, as a step (``flow.Io``)."""
    return Lua(script("session_user"), tuple(keys), tuple(argv))


def decode_pairs(raw: Iterable[Any]) -> list[tuple[str, str]]:
    """``[name, did, name, did...]`` from the revoke operation as text pairs."""
    items = [item.decode() if isinstance(item, bytes) else str(item) for item in raw]
    return list(zip(items[0::2], items[1::2], strict=True))


def unlink_names(backend: RedisCache, names: Sequence[str]) -> Op[None]:
    """UNLINK sessions by the names the index returned, in bounded pipelines (each key its own
    slot on a cluster)."""
    for start in range(0, len(names), UNLINK_BATCH):
        batch = names[start : start + UNLINK_BATCH]
        yield Pipe(tuple(call("unlink", name_key(backend, name)) for name in batch))


def unlink_and_unindex(backend: RedisCache, key: str, uid: str) -> Op[None]:
    """Drop a session's data key, then its entry in the user's index."""
    yield call("unlink", data_key(backend, key))
    yield user_script(user_keys(backend, uid), revoke_sids_args([key]))


def getdel_and_unindex(backend: RedisCache, session_key: str) -> Op[Envelope | None]:
    """End a session by key (GETDEL) and unindex it from the user its envelope names."""
    raw = yield call("getdel", data_key(backend, session_key))
    envelope = Envelope.parse(raw) if isinstance(raw, bytes) else None
    if envelope is not None and envelope.uid:
        yield user_script(user_keys(backend, envelope.uid), revoke_sids_args([session_key]))
    return envelope
