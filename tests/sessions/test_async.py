"""The engine's and the device API's async twins run natively on redis.asyncio.

Each twin drives the same operation as its sync method (``sessions/flow.py``), so these tests
check three things: the twin never leaves the event loop's thread (no ``sync_to_async`` wrapper
is even built, the sync driver is never called), it gives what the sync method gives, and an
outage follows the same policy (reads fall back to anonymous, writes raise
``SessionStoreUnavailable``).
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth import SESSION_KEY
from django.test import override_settings

from django_rediskit.connection.policy import RedisUnavailable
from django_rediskit.sessions import (
    acount_devices,
    alist_devices,
    arevoke,
    arevoke_all,
    arevoke_others,
    count_devices,
    flow,
    list_devices,
    signals,
)
from django_rediskit.sessions import devices as devices_module
from django_rediskit.sessions.backend import DeviceLimitExceeded, SessionStore
from django_rediskit.sessions.index import SessionStoreUnavailable, session_backend
from tests.helpers import on_the_loop_only as loop_only
from tests.servers import RedisServer

pytestmark = pytest.mark.django_db


def on_the_loop_only() -> Any:
    """No thread hop and no sync driver inside the block (setup outside may use the sync API)."""
    return loop_only(((flow, "run"), (flow, "execute"), (devices_module, "run")))


def signed_in(user: Any, **data: Any) -> SessionStore:
    """A saved session of ``user`` (sync), as a login leaves it."""
    store = SessionStore()
    store[SESSION_KEY] = str(user.pk)
    for name, value in data.items():
        store[name] = value
    store.save()
    return store


class FakeRequest:
    """What arevoke_others reads: the session, and the user through ``auser()`` (the auth
    middleware's async accessor), never the lazy ``request.user``."""

    def __init__(self, session: SessionStore, user: Any) -> None:
        self.session = session
        self._user = user

    async def auser(self) -> Any:
        return self._user

    @property
    def user(self) -> Any:
        raise AssertionError("request.user read on the event loop")


def test_store_twins_run_on_the_loop_and_match_the_sync_methods(make_user: Any) -> None:
    user = make_user()
    sync_made = signed_in(user, cart=[1, 2])
    loaded = SessionStore(sync_made.session_key).load()

    async def scenario() -> None:
        loop_thread = threading.get_ident()
        # aload reads what save wrote, and what it reads is what load reads.
        reader = SessionStore(sync_made.session_key)
        assert await reader.aload() == loaded
        assert reader.device_id == sync_made.device_id
        assert await reader.aexists(sync_made.session_key) is True
        assert await reader.aexists("no-such-session-key") is False
        assert await reader.aexists(None) is False
        # asave creates an anonymous session (SET NX), then updates it (SET XX).
        anon = SessionStore()
        await anon.aset("n", 1)
        await anon.asave()
        assert anon.session_key is not None and anon.device_id is None
        await anon.aset("n", 2)
        await anon.asave()
        assert await SessionStore(anon.session_key).aget("n") == 2
        # acreate: a fresh empty key.
        created = SessionStore()
        await created.acreate()
        assert await created.aexists(created.session_key) is True
        # An authenticated asave registers a device; acycle_key keeps it under a new key.
        member = SessionStore()
        await member.aset(SESSION_KEY, str(user.pk))
        await member.asave()
        device = member.device_id
        assert device is not None
        old = member.session_key
        await member.acycle_key()
        assert member.session_key != old and member.device_id == device
        assert await member.aexists(old) is False
        assert await member.aget(SESSION_KEY) == str(user.pk)
        # adelete ends the session and its index entry.
        await member.adelete()
        assert await member.aexists(member.session_key) is False
        await SessionStore.aclear_expired()
        assert threading.get_ident() == loop_thread

    with on_the_loop_only():
        asyncio.run(scenario())
    # After the loop: the sync API sees what the async one left.
    assert SessionStore(sync_made.session_key).load()["cart"] == [1, 2]
    assert count_devices(user) == 1  # sync_made; the cycled-then-deleted one is gone


def test_device_api_twins_give_the_sync_results(make_user: Any) -> None:
    user = make_user()
    stores = [signed_in(user) for _ in range(4)]
    expected = [device.as_dict() for device in list_devices(user, request=None)]
    revoked: list[tuple[str, int]] = []

    async def on_revoked(sender: Any, reason: str, **kwargs: Any) -> None:
        revoked.append((reason, threading.get_ident()))

    signals.session_revoked.connect(on_revoked)
    try:

        async def scenario() -> None:
            loop_thread = threading.get_ident()
            listed = await alist_devices(user)
            assert [device.as_dict() for device in listed] == expected
            assert await acount_devices(user) == 4
            current = FakeRequest(stores[0], user)
            marked = await alist_devices(user, request=current)  # type: ignore[arg-type]
            assert [device.is_current for device in marked].count(True) == 1
            assert await arevoke(user, listed[-1].device_id) is True
            assert await arevoke(user, listed[-1].device_id) is False  # already gone
            assert await arevoke(user, "not-a-device-id") is False
            assert await arevoke_others(current, reason="others") == 2  # type: ignore[arg-type]
            assert await acount_devices(user) == 1
            assert await arevoke_all(user) == 1
            assert await alist_devices(user) == []
            assert {thread for _, thread in revoked} == {loop_thread}

        with on_the_loop_only():
            asyncio.run(scenario())
    finally:
        signals.session_revoked.disconnect(on_revoked)
    assert [reason for reason, _ in revoked] == ["user", "others", "others", "all"]
    assert count_devices(user) == 0
    assert SessionStore(stores[0].session_key).load() == {}


def test_anonymous_user_and_bad_input_cost_nothing() -> None:
    from django.contrib.auth.models import AnonymousUser

    async def scenario() -> None:
        nobody = AnonymousUser()
        assert await alist_devices(nobody) == []
        assert await acount_devices(nobody) == 0
        assert await arevoke(nobody, "a" * 22) is False
        assert await arevoke_all(nobody) == 0
        store = SessionStore("short")  # not a session key: nothing to load, nothing to delete
        assert await store.aload() == {}
        await store.adelete("short")

    with on_the_loop_only():
        asyncio.run(scenario())


def test_a_sync_signal_receiver_is_the_one_thread_hop(make_user: Any) -> None:
    """Django's ``asend`` runs *sync* receivers through sync_to_async (they may use the ORM):
    the only wrapper an async revoke builds, and only when such a receiver is connected."""
    user = make_user()
    signed_in(user)
    threads: list[int] = []

    def sync_receiver(sender: Any, **kwargs: Any) -> None:
        threads.append(threading.get_ident())

    signals.session_revoked.connect(sync_receiver)
    try:

        async def scenario() -> int:
            assert await arevoke_all(user) == 1
            return threading.get_ident()

        loop_thread = asyncio.run(scenario())
    finally:
        signals.session_revoked.disconnect(sync_receiver)
    assert len(threads) == 1 and threads[0] != loop_thread


def test_concurrent_async_logins_respect_the_device_cap(make_user: Any) -> None:
    """20 tasks log the same user in at once with a cap of 5 (deny): exactly 5 get in."""
    user = make_user()
    options = {"SESSIONS": {"DEVICE_LIMIT": 5, "DEVICE_LIMIT_POLICY": "deny"}}

    async def login() -> bool:
        store = SessionStore()
        await store.aset(SESSION_KEY, str(user.pk))
        try:
            await store.asave()
        except DeviceLimitExceeded:
            return False
        return True

    async def scenario() -> list[bool]:
        # One call first: redis.asyncio's RedisCluster can fail the first commands of tasks
        # that race its very first connections ("'NoneType' object has no attribute
        # 'writelines'", redis-py 8.1); see docs/async.md.
        assert await acount_devices(user) == 0
        return await asyncio.gather(*(login() for _ in range(20)))

    with override_settings(REDISKIT=options, CACHES=settings.CACHES), on_the_loop_only():
        admitted = asyncio.run(scenario())
    assert admitted.count(True) == 5
    assert count_devices(user) == 5


@pytest.fixture
def own_redis(private_redis: RedisServer) -> Iterator[RedisServer]:
    """Sessions on a server of this test's own, under a fresh alias (so a fresh breaker)."""
    alias = f"sessions-{uuid.uuid4().hex[:8]}"
    caches = {
        **settings.CACHES,
        alias: {
            "BACKEND": "django_rediskit.cache.RedisCache",
            "LOCATION": private_redis.url,
            "KEY_PREFIX": "aoutage",
            "OPTIONS": {
                "SOCKET_CONNECT_TIMEOUT": 0.5,
                "SOCKET_TIMEOUT": 0.5,
                "CIRCUIT_BREAKER": {"FAILURE_THRESHOLD": 2, "RECOVERY_TIME": 1.0},
            },
        },
    }
    with override_settings(CACHES=caches, REDISKIT={"SESSIONS": {"CACHE_ALIAS": alias}}):
        yield private_redis
    private_redis.restart()


def test_outage_follows_the_sync_policy(own_redis: RedisServer, make_user: Any) -> None:
    user = make_user()
    store = signed_in(user, cart=[1])
    own_redis.stop()
    breaker = session_backend().breaker

    async def scenario() -> None:
        # A read is anonymous and marks the store: it will not be written back.
        reader = SessionStore(store.session_key)
        assert await reader.aload() == {}
        assert breaker.failures == 1  # one outage counted for the one read
        with pytest.raises(SessionStoreUnavailable):
            await reader.asave()
        with pytest.raises(SessionStoreUnavailable):
            await SessionStore().aexists(store.session_key)
        with pytest.raises(SessionStoreUnavailable):
            await SessionStore().asave()  # a new session cannot be created
        with pytest.raises(SessionStoreUnavailable):
            await SessionStore().adelete(store.session_key)
        with pytest.raises(RedisUnavailable):  # as list_devices: the caller decides
            await alist_devices(user)
        with pytest.raises(RedisUnavailable):
            await arevoke_all(user)

    with on_the_loop_only():
        asyncio.run(scenario())
    # The sync methods decide the same way during the same outage.
    assert SessionStore(store.session_key).load() == {}
    with pytest.raises(SessionStoreUnavailable):
        SessionStore().exists(store.session_key)
    with pytest.raises(RedisUnavailable):
        list_devices(user)


def test_async_legacy_migration_uses_the_legacy_alias_async_api() -> None:
    """A Django ``cache``-engine session is converted by ``aload`` too; the legacy alias here is
    a rediskit cache, whose ``aget`` / ``adelete`` are native."""
    from django.contrib.sessions.backends.cache import KEY_PREFIX
    from django.core.cache import caches

    key = "legacy" + uuid.uuid4().hex
    caches["other"].set(KEY_PREFIX + key, {"i": 7}, 60)

    async def scenario() -> dict[str, Any]:
        return await SessionStore(key).aload()

    with override_settings(
        REDISKIT={"SESSIONS": {"LEGACY_CACHE_ALIAS": "other"}}, CACHES=settings.CACHES
    ):
        with on_the_loop_only():
            assert asyncio.run(scenario()) == {"i": 7}
        assert SessionStore(key).load() == {"i": 7}  # now in our format
    assert caches["other"].get(KEY_PREFIX + key) is None
