"""``SESSION_ENGINE = "django_rediskit.sessions.backend"``: Django's session contract on Redis.

Compared with Django's ``cache`` engine: the payload is Django's signed serializer output (never
pickle), a create is one ``SET NX``, a save one ``SET XX`` (so a revoked session cannot be written
back by a request already in flight: ``UpdateError`` -> ``SessionInterrupted``), every session key
Django accepts is accepted and escaped before it becomes part of a key (``envelope.session_name``),
and authenticated sessions are listed in a per-user index (see ``index.py``) that the device API
reads.

Round trips: an anonymous request costs one GET and, unless modified, nothing else. A save of an
authenticated session is one pipelined trip (index script + SET XX).

Redis down: a read behaves as an anonymous, empty session (logged, and the cookie is kept, so
nobody is logged out by a blip); a write raises ``SessionStoreUnavailable``, which the kit's
middleware turns into a 503. A session read during an outage is never written back, so partial
data cannot overwrite the real session when Redis returns.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, ClassVar

from django.contrib.auth import SESSION_KEY
from django.contrib.sessions.backends.base import (
    VALID_KEY_CHARS,
    CreateError,
    SessionBase,
    UpdateError,
)
from django.contrib.sessions.exceptions import SessionInterrupted
from django.core import signing
from django.core.exceptions import PermissionDenied
from django.utils.crypto import get_random_string

from django_rediskit.cache.steps import Call, Lua, Op, Pipe
from django_rediskit.lua import script
from django_rediskit.sessions import signals
from django_rediskit.sessions.envelope import (
    NO_FINGERPRINT,
    Envelope,
    fingerprint,
    is_session_key,
    new_device_id,
    now_ms,
    user_token,
)
from django_rediskit.sessions.flow import Emit, Hop, Io, SessionOp, adrive, call, drive
from django_rediskit.sessions.index import (
    ABSENT,
    DENIED,
    OUTAGES,
    ROTATION_REVOKED,
    SessionStoreUnavailable,
    data_key,
    decode_pairs,
    getdel_and_unindex,
    index_args,
    log_outage,
    revoke_sids_args,
    session_backend,
    unlink_and_unindex,
    unlink_names,
    user_keys,
    user_script,
)
from django_rediskit.sessions.options import SessionOptions, check_serializer, get_options

if TYPE_CHECKING:
    from django_rediskit.cache.backend import RedisCache

__all__ = ["DeviceLimitExceeded", "SessionStore", "SessionStoreUnavailable"]

logger = logging.getLogger("django_rediskit.sessions")
security_logger = logging.getLogger("django.security.SuspiciousSession")
LEGACY_PREFIX = "django.contrib.sessions.cache"
CREATE_ATTEMPTS = 10


class DeviceLimitExceeded(PermissionDenied):
    """The user already has ``DEVICE_LIMIT`` live sessions and the policy is ``deny``."""


class SessionStore(SessionBase):
    """One session, loaded lazily; see the module docstring for the storage contract."""

    legacy_prefix: ClassVar[str] = LEGACY_PREFIX

    def __init__(self, session_key: str | None = None) -> None:
        super().__init__(session_key)
        check_serializer(self.serializer)
        #: What the last load or save saw in Redis (None: nothing, or an anonymous write).
        self._envelope: Envelope | None = None
        #: (ip, user agent) of the current request, when a middleware or login receiver set it.
        self._client: tuple[str, str] | None = None
        #: True after a read failed on an outage: this instance must never write.
        self._unavailable = False
        self._rotated_from: str | None = None
        self._pending_revocations: list[tuple[str, str]] = []

    # --- identity ---------------------------------------------------------------------------------

    def _validate_session_key(self, key: Any) -> bool:
        """Django's rule (a string of 8+ characters, whatever they are): keys set by a site or a
        test work as with Django's engines; safety comes from escaping (``session_name``)."""
        return is_session_key(key)

    def _get_new_session_key(self) -> str:
        # No EXISTS probe (Django's default): SET NX already refuses a collision.
        return get_random_string(32, VALID_KEY_CHARS)

    async def _aget_new_session_key(self) -> str:
        return self._get_new_session_key()

    @property
    def device_id(self) -> str | None:
        """The opaque id of this session's device, once the session is authenticated and stored."""
        return self._envelope.device_id if self._envelope and self._envelope.uid else None

    @property
    def user_token(self) -> str:
        return self._envelope.uid if self._envelope else ""

    def set_client(self, ip: str, user_agent: str) -> None:
        """Tell the store who is talking (from the request); written with the device meta."""
        self._client = (ip[:64], user_agent[:256])

    def _backend(self) -> RedisCache:
        return session_backend()

    # --- load -----------------------------------------------------------------------------------

    def load(self) -> dict[str, Any]:
        return drive(self._load())

    async def aload(self) -> dict[str, Any]:
        return await adrive(self._load())

    def _load(self) -> SessionOp[dict[str, Any]]:
        self._envelope = None
        key = self.session_key
        if key is None:
            return {}
        backend = self._backend()
        try:
            raw = yield Io(backend, call("get", data_key(backend, key)))
        except OUTAGES as exc:
            # Fail open as anonymous, keep the cookie (is_empty() stays False), never write back.
            log_outage("session load", exc)
            self._unavailable = True
            return {}
        if raw is None:
            migrated = yield from self._migrate_legacy(key)
            if migrated is not None:
                return migrated
            self._session_key = None
            return {}
        envelope = Envelope.parse(bytes(raw) if isinstance(raw, bytes) else b"")
        data = self._decode_payload(envelope)
        if envelope is None or data is None:
            self._session_key = None
            return {}
        uid = user_token(data.get(SESSION_KEY))
        if envelope.uid != uid:
            security_logger.warning("Session envelope owner does not match its signed payload.")
            self._session_key = None
            return {}
        options = get_options()
        if (
            uid
            and options.absolute_timeout is not None
            and now_ms() - envelope.created_ms > options.absolute_timeout * 1000
        ):
            yield from self._end_expired(backend, key, envelope)
            self._session_key = None
            return {}
        self._envelope = envelope
        return data

    def _session_data(self, no_load: bool = False) -> SessionOp[dict[str, Any]]:
        """``SessionBase._get_session`` / ``_aget_session`` as an operation (their load is
        the only difference)."""
        self.accessed = True
        if "_session_cache" in self.__dict__:
            cached: dict[str, Any] = self.__dict__["_session_cache"]
            return cached
        if self.session_key is None or no_load:
            self._session_cache = {}
        else:
            self._session_cache = yield from self._load()
        return self._session_cache

    def _decode_payload(self, envelope: Envelope | None) -> dict[str, Any] | None:
        if envelope is None:
            security_logger.warning("Session value in Redis is not a django_rediskit envelope.")
            return None
        try:
            data = signing.loads(
                envelope.payload.decode("ascii"), salt=self.key_salt, serializer=self.serializer
            )
        except (signing.BadSignature, UnicodeDecodeError):
            security_logger.warning("Session data corrupted")
            return None
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    def _end_expired(self, backend: RedisCache, key: str, envelope: Envelope) -> SessionOp[None]:
        try:
            yield Io(backend, unlink_and_unindex(backend, key, envelope.uid))
        except OUTAGES as exc:
            log_outage("session absolute timeout", exc)
            return
        yield Emit(
            signals.session_revoked,
            sender=type(self),
            user_token=envelope.uid,
            device_id=envelope.device_id,
            reason="absolute_timeout",
        )

    def _migrate_legacy(self, key: str) -> SessionOp[dict[str, Any] | None]:
        """A session of Django's ``cache`` engine under the same key: re-save it in our format
        (SET NX, so two racing requests migrate it once) and delete the legacy entry. The legacy
        alias is called through its own ``get`` / ``aget`` (whatever its backend does there)."""
        alias = get_options().legacy_cache_alias
        if not alias:
            return None
        from django.core.cache import caches

        legacy = caches[alias]
        name = self.legacy_prefix + key
        try:
            data = yield Hop(legacy.get, legacy.aget, name)
        except Exception as exc:  # the legacy store is best effort, whatever its backend raises
            logger.warning("Legacy session lookup failed: %s", type(exc).__name__)
            return None
        if not isinstance(data, dict):
            return None
        self._session_cache = data
        try:
            yield from self._save(must_create=True)
        except CreateError:
            pass  # a concurrent request migrated it first; its copy is identical
        except (DeviceLimitExceeded, SessionStoreUnavailable):
            del self._session_cache
            return None  # not migrated now; the legacy entry stays for a later request
        try:
            yield Hop(legacy.delete, legacy.adelete, name)
        except Exception as exc:  # it expires on its own; never fail the request for it
            logger.warning("Legacy session cleanup failed: %s", type(exc).__name__)
        return data

    # --- save -----------------------------------------------------------------------------------

    def exists(self, session_key: str | None) -> bool:
        return drive(self._exists(session_key))

    async def aexists(self, session_key: str | None) -> bool:
        return await adrive(self._exists(session_key))

    def _exists(self, session_key: str | None) -> SessionOp[bool]:
        if not is_session_key(session_key):
            return False
        backend = self._backend()
        try:
            found = yield Io(backend, call("exists", data_key(backend, str(session_key))))
        except OUTAGES as exc:
            raise SessionStoreUnavailable("Redis is unreachable; session lookup failed.") from exc
        return bool(found)

    def create(self) -> None:
        drive(self._create())

    async def acreate(self) -> None:
        await adrive(self._create())

    def _create(self) -> SessionOp[None]:
        for _ in range(CREATE_ATTEMPTS):  # 165-bit keys: repeated collisions mean a broken RNG
            self._session_key = self._get_new_session_key()
            try:
                yield from self._save(must_create=True)
            except CreateError:
                continue
            self.modified = True
            return
        raise RuntimeError("Unable to create a new session key.")

    def save(self, must_create: bool = False) -> None:
        drive(self._save(must_create))

    async def asave(self, must_create: bool = False) -> None:
        await adrive(self._save(must_create))

    def _save(self, must_create: bool = False) -> SessionOp[None]:
        if self.session_key is None:
            return (yield from self._create())
        if self._unavailable:
            raise SessionStoreUnavailable(
                "This session could not be read (Redis was unreachable), so it is not saved."
            )
        key = self.session_key
        data = yield from self._session_data(no_load=must_create)
        age = self.get_expiry_age()
        if age <= 0:
            # Expiry set in the past (set_expiry(-timedelta(...))): the session is already over,
            # so the save ends it -- data key and index entry -- instead of writing it.
            yield from self._delete_key(key)
            self._envelope = None
            self._rotated_from = None
            return None
        ttl_ms = max(1, int(age * 1000))
        uid = user_token(data.get(SESSION_KEY))
        previous = self._envelope
        now = now_ms()
        if uid and previous is not None and previous.uid == uid:
            device_id, created_ms = previous.device_id, previous.created_ms
        else:
            device_id, created_ms = (new_device_id(), now) if uid else ("", now)
        if self._client is not None:
            client_fp = fingerprint(*self._client)
        else:
            client_fp = previous.fingerprint if previous is not None else NO_FINGERPRINT
        envelope = Envelope(uid, device_id, created_ms, now, client_fp, self.encode(data).encode())
        backend = self._backend()
        options = get_options()
        if not uid:
            work = self._save_anonymous(backend, key, envelope, ttl_ms, must_create)
        elif must_create or previous is None or previous.uid != uid:
            work = self._save_new_member(backend, key, envelope, ttl_ms, must_create, options)
        else:
            work = self._save_known_member(backend, key, envelope, ttl_ms)
        try:
            yield Io(backend, work)
        except OUTAGES as exc:
            raise SessionStoreUnavailable(
                "Redis is unreachable; the session was not saved."
            ) from exc
        self._envelope = envelope
        self._rotated_from = None
        yield from self._pending_revocation_signals()
        return None

    def _set(self, backend: RedisCache, key: str, value: bytes, ttl_ms: int, create: bool) -> Call:
        return call("set", data_key(backend, key), value, px=ttl_ms, nx=create, xx=not create)

    def _save_anonymous(
        self,
        backend: RedisCache,
        key: str,
        envelope: Envelope,
        ttl_ms: int,
        must_create: bool,
    ) -> Op[None]:
        previous = self._envelope
        steps: list[Call | Lua] = [self._set(backend, key, envelope.dump(), ttl_ms, must_create)]
        if previous is not None and previous.uid:
            # The user key was removed from the data without a flush: leave the index too.
            steps.append(user_script(user_keys(backend, previous.uid), revoke_sids_args([key])))
        replies = yield Pipe(tuple(steps))
        if not replies[0]:
            raise CreateError if must_create else UpdateError

    def _save_new_member(
        self,
        backend: RedisCache,
        key: str,
        envelope: Envelope,
        ttl_ms: int,
        must_create: bool,
        options: SessionOptions,
    ) -> Op[None]:
        """Login, rotation or creation of an authenticated session: two ordered round trips.

        A created key is written first (so a collision never lands in this user's index); an
        existing one is indexed first (so the device cap can refuse it before it gains a user).
        A rotation (``cycle_key``) moves the device meta from the old key only if that key is
        still indexed: if it was revoked meanwhile, the new key is removed and the request sees
        ``SessionInterrupted`` -- a rotation cannot bring a revoked session back.
        """
        keys = user_keys(backend, envelope.uid)
        argv = index_args(
            key,
            ttl_ms,
            envelope.device_id,
            envelope.created_ms,
            self._client,
            cap=options.device_limit,
            policy=options.device_limit_policy,
            rotated_from=self._rotated_from,
        )
        if must_create and not (yield self._set(backend, key, envelope.dump(), ttl_ms, True)):
            raise CreateError
        status, _changed, *evicted = yield user_script(keys, argv)
        if status == DENIED:
            if must_create:
                yield call("unlink", data_key(backend, key))
            raise DeviceLimitExceeded(
                f"This account is already signed in on {options.device_limit} devices."
            )
        if status == ROTATION_REVOKED:
            yield call("unlink", data_key(backend, key))
            self._session_cache = {}
            self._session_key = None
            self._envelope = None
            raise SessionInterrupted("The session was revoked while its key was being rotated.")
        if evicted:
            pairs = decode_pairs(evicted)
            yield from unlink_names(backend, [sid for sid, _ in pairs])
            self._pending_revocations.extend((envelope.uid, device) for _, device in pairs)
        if not must_create and not (yield self._set(backend, key, envelope.dump(), ttl_ms, False)):
            raise UpdateError

    def _save_known_member(
        self, backend: RedisCache, key: str, envelope: Envelope, ttl_ms: int
    ) -> Op[None]:
        """The common case: one pipelined trip (refresh the index entry, SET XX the data)."""
        keys = user_keys(backend, envelope.uid)
        argv = index_args(
            key, ttl_ms, envelope.device_id, envelope.created_ms, self._client, existing_only=True
        )
        steps = (user_script(keys, argv), self._set(backend, key, envelope.dump(), ttl_ms, False))
        (status, *_), written = yield Pipe(steps)
        if not written:
            raise UpdateError
        if status == ABSENT:
            # Live session missing from its index (evicted under memory pressure): re-add it.
            argv = index_args(key, ttl_ms, envelope.device_id, envelope.created_ms, self._client)
            yield user_script(keys, argv)

    def _pending_revocation_signals(self) -> SessionOp[None]:
        """``session_revoked`` for sessions the device cap evicted, once the save succeeded."""
        pending, self._pending_revocations = self._pending_revocations, []
        for uid, device_id in pending:
            yield Emit(
                signals.session_revoked,
                sender=type(self),
                user_token=uid,
                device_id=device_id or None,
                reason="device_limit",
            )

    # --- rotation, deletion ---------------------------------------------------------------------

    def cycle_key(self) -> None:
        """New key, same data and -- for an authenticated session -- the same device identity."""
        drive(self._cycle_key())

    async def acycle_key(self) -> None:
        await adrive(self._cycle_key())

    def _cycle_key(self) -> SessionOp[None]:
        data = yield from self._session_data()
        old = self.session_key
        envelope = self._envelope
        same_user = (
            envelope is not None
            and bool(envelope.uid)
            and envelope.uid == user_token(data.get(SESSION_KEY))
        )
        self._rotated_from = old if same_user else None
        try:
            yield from self._create()
        finally:
            self._rotated_from = None
        self._session_cache = data
        if old is None:
            return
        if same_user:
            # Its index entry was moved by the create above; only the data key is left.
            backend = self._backend()
            try:
                yield Io(backend, call("unlink", data_key(backend, old)))
            except OUTAGES as exc:
                raise SessionStoreUnavailable("Redis is unreachable during rotation.") from exc
        else:
            yield from self._delete_key(old)

    def end(self, session_key: str) -> Envelope | None:
        """Delete a session by key and say whose it was (for admin / internal revocation)."""
        return drive(self._delete_key(session_key))

    def delete(self, session_key: str | None = None) -> None:
        drive(self._delete(session_key))

    async def adelete(self, session_key: str | None = None) -> None:
        await adrive(self._delete(session_key))

    def _delete(self, session_key: str | None) -> SessionOp[None]:
        if session_key is None:
            if self.session_key is None:
                return
            session_key = self.session_key
        yield from self._delete_key(session_key)
        if session_key == self.session_key:
            self._envelope = None

    def _delete_key(self, session_key: str) -> SessionOp[Envelope | None]:
        """GETDEL the session, then drop it from its owner's index; returns what was deleted
        (None if nothing was there)."""
        if not is_session_key(session_key):
            return None
        backend = self._backend()
        try:
            deleted: Envelope | None = yield Io(backend, getdel_and_unindex(backend, session_key))
        except OUTAGES as exc:
            raise SessionStoreUnavailable(
                "Redis is unreachable; the session was not deleted."
            ) from exc
        return deleted

    # --- activity -------------------------------------------------------------------------------

    def record_activity(self, ip: str, user_agent: str) -> bool:
        """Slide the TTL and write last activity / IP / user agent, at most once per
        ``ACTIVITY_RESOLUTION`` (or at once when the client changed). One pipelined trip; the
        payload is not rewritten. Returns whether it wrote (so the cookie can slide too)."""
        return drive(self._record_activity(ip, user_agent))

    async def arecord_activity(self, ip: str, user_agent: str) -> bool:
        return await adrive(self._record_activity(ip, user_agent))

    def _record_activity(self, ip: str, user_agent: str) -> SessionOp[bool]:
        if self.session_key is None or self._unavailable:
            return False
        # One GET if the request did not read the session already.
        data = yield from self._session_data()
        envelope = self._envelope
        key = self.session_key
        if envelope is None or key is None or not envelope.uid:
            return False
        if envelope.uid != user_token(data.get(SESSION_KEY)):
            return False
        self.set_client(ip, user_agent)
        assert self._client is not None
        client_fp = fingerprint(*self._client)
        now = now_ms()
        resolution_ms = get_options().activity_resolution * 1000
        if now - envelope.activity_ms < resolution_ms and client_fp == envelope.fingerprint:
            return False
        ttl_ms = max(1, int(self.get_expiry_age() * 1000))
        backend = self._backend()
        keys = user_keys(backend, envelope.uid)
        argv = index_args(
            key, ttl_ms, envelope.device_id, envelope.created_ms, self._client, existing_only=True
        )
        activity = (f"{now:013d}", client_fp, ttl_ms)
        trip = Pipe(
            (
                user_script(keys, argv),
                Lua(script("session_activity"), (data_key(backend, key),), activity),
            )
        )
        try:
            (status, changed, *_), alive = yield Io(backend, trip)
            if alive and status == ABSENT:
                argv = index_args(
                    key, ttl_ms, envelope.device_id, envelope.created_ms, self._client
                )
                yield Io(backend, user_script(keys, argv))
        except OUTAGES as exc:
            log_outage("session activity", exc)
            return False
        if not alive:
            return False
        self._envelope = envelope.touched(now, client_fp)
        if changed:
            yield Emit(
                signals.session_client_changed,
                sender=type(self),
                user_token=envelope.uid,
                device_id=envelope.device_id,
            )
        return True

    # --- housekeeping ---------------------------------------------------------------------------

    @classmethod
    def clear_expired(cls) -> None:
        """Prune every user index (bounded SCAN; entries are also pruned on every touch, and
        index keys expire on their own, so this is optional hygiene for ``clearsessions``)."""
        from django_rediskit.sessions.devices import prune_indexes

        prune_indexes()

    @classmethod
    async def aclear_expired(cls) -> None:
        from django_rediskit.sessions.devices import aprune_indexes

        await aprune_indexes()
