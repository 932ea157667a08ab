"""Django's SessionBase contract on the rediskit engine, sync and async, on a real Redis."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.sessions.backends.base import CreateError, UpdateError
from django.core import signing
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings
from django.utils import timezone

from django_rediskit.sessions.backend import SessionStore
from django_rediskit.sessions.envelope import Envelope, user_token
from django_rediskit.sessions.index import data_key, session_backend, user_keys
from django_rediskit.sessions.options import check_serializer
from tests.sessions.conftest import index_fields


def key_of(session_key: str) -> str:
    return data_key(session_backend(), session_key)


def stored(rclient: Any, session_key: str) -> Envelope | None:
    raw = rclient.get(key_of(session_key))
    return None if raw is None else Envelope.parse(raw)


def test_create_save_load_exists_delete(rclient: Any) -> None:
    store = SessionStore()
    store["cart"] = [1, 2]
    store.save()
    key = store.session_key
    assert key is not None and len(key) == 32
    assert store.exists(key)
    assert SessionStore(key).load() == {"cart": [1, 2]}
    assert stored(rclient, key) is not None
    store.delete()
    assert not store.exists(key)
    assert SessionStore(key).load() == {}


def test_load_of_missing_key_gives_fresh_session() -> None:
    store = SessionStore("a" * 32)
    assert store.load() == {}
    assert store.session_key is None


def test_must_create_on_existing_key_raises_create_error() -> None:
    store = SessionStore()
    store.save()
    clash = SessionStore(store.session_key)
    clash._session_cache = {"x": 1}
    with pytest.raises(CreateError):
        clash.save(must_create=True)
    assert SessionStore(store.session_key).load() == {}


def test_save_after_delete_raises_update_error() -> None:
    store = SessionStore()
    store["a"] = 1
    store.save()
    in_flight = SessionStore(store.session_key)
    assert in_flight.get("a") == 1
    SessionStore(store.session_key).delete()
    in_flight["a"] = 2
    with pytest.raises(UpdateError):
        in_flight.save()
    assert not store.exists(store.session_key)


def test_cycle_key_keeps_data_and_drops_old_key(rclient: Any) -> None:
    store = SessionStore()
    store["a"] = 1
    store.save()
    old = store.session_key
    store.cycle_key()
    assert store.session_key != old
    assert not rclient.exists(key_of(old))
    assert SessionStore(store.session_key).load() == {"a": 1}


def test_cycle_key_of_authenticated_session_keeps_device_identity(rclient: Any) -> None:
    store = SessionStore()
    store["_auth_user_id"] = "7"
    store.save()
    device = store.device_id
    old = store.session_key
    store.cycle_key()
    assert store.device_id == device
    assert index_fields(rclient, "7") == [store.session_key.encode()]
    assert not rclient.exists(key_of(old))
    again = SessionStore(store.session_key)
    again.load()
    assert again.device_id == device


def test_flush_clears_data_and_key(rclient: Any) -> None:
    store = SessionStore()
    store["_auth_user_id"] = "8"
    store.save()
    old = store.session_key
    store.flush()
    assert store.session_key is None
    assert dict(store.items()) == {}
    assert not rclient.exists(key_of(old))
    assert not any(rclient.exists(k) for k in user_keys(session_backend(), "8"))


@pytest.mark.parametrize("age", [30, 3600])
def test_set_expiry_int_sets_ttl(rclient: Any, age: int) -> None:
    store = SessionStore()
    store.set_expiry(age)
    store.save()
    assert store.get_expiry_age() == age
    assert age * 1000 - 2000 < rclient.pttl(key_of(store.session_key)) <= age * 1000


def test_set_expiry_datetime_sets_ttl(rclient: Any) -> None:
    store = SessionStore()
    store.set_expiry(timezone.now() + timedelta(seconds=100))
    store.save()
    assert 97_000 < rclient.pttl(key_of(store.session_key)) <= 100_000
    assert 98 <= store.get_expiry_age() <= 100


@override_settings(SESSION_COOKIE_AGE=500)
def test_set_expiry_zero_and_none(rclient: Any) -> None:
    store = SessionStore()
    store.set_expiry(0)
    assert store.get_expire_at_browser_close()
    store.save()
    assert 498_000 < rclient.pttl(key_of(store.session_key)) <= 500_000
    store.set_expiry(None)
    assert store.get_expiry_age() == 500
    assert not store.get_expire_at_browser_close()


@override_settings(SESSION_COOKIE_AGE=1)
def test_expired_session_is_gone(rclient: Any) -> None:
    import time

    store = SessionStore()
    store["a"] = 1
    store.save()
    time.sleep(1.2)
    assert SessionStore(store.session_key).load() == {}


@pytest.mark.parametrize(
    "bad", ["", "1234567", "*" * 7, "é" * 7, 12345678, b"12345678", ["a" * 8], None]
)
def test_invalid_session_key_never_reaches_redis(bad: Any, command_log: Any) -> None:
    """What Django's ``_validate_session_key`` refuses (under 8 characters), and non-strings;
    any other key is accepted (tests/sessions/test_session_keys.py)."""
    store = SessionStore(bad)
    assert store.session_key is None
    assert store.load() == {}
    assert not store.exists(bad)
    store.delete(bad)
    assert command_log.commands == []


def test_tampered_payload_gives_empty_session_and_warning(
    rclient: Any, caplog: pytest.LogCaptureFixture
) -> None:
    store = SessionStore()
    store["role"] = "user"
    store.save()
    key = store.session_key
    envelope = stored(rclient, key)
    assert envelope is not None
    forged = signing.dumps({"role": "admin"}, salt="wrong", compress=True).encode()
    rclient.set(key_of(key), Envelope(**{**envelope.__dict__, "payload": forged}).dump())
    with caplog.at_level(logging.WARNING, logger="django.security.SuspiciousSession"):
        loaded = SessionStore(key)
        assert loaded.load() == {}
    assert loaded.session_key is None
    assert "corrupted" in caplog.text
    assert key not in caplog.text


@pytest.mark.parametrize(
    "raw", [b"", b"garbage", b"R1" + b"x" * 40, b"\x80\x04\x95pickle", b"R1" + b"9" * 21 + b"|"]
)
def test_foreign_value_in_redis_is_refused(rclient: Any, raw: bytes) -> None:
    store = SessionStore()
    store.save()
    rclient.set(key_of(store.session_key), raw)
    loaded = SessionStore(store.session_key)
    assert loaded.load() == {}
    assert loaded.session_key is None


def test_envelope_owner_must_match_signed_payload(rclient: Any) -> None:
    store = SessionStore()
    store["_auth_user_id"] = "1"
    store.save()
    envelope = stored(rclient, store.session_key)
    assert envelope is not None
    rclient.set(key_of(store.session_key), Envelope(**{**envelope.__dict__, "uid": "2"}).dump())
    assert SessionStore(store.session_key).load() == {}


class PickleLike:
    """A serializer that accepts any object, as pickle does."""

    def dumps(self, obj: Any) -> bytes:
        import pickle

        return pickle.dumps(obj)

    def loads(self, data: bytes) -> Any:
        raise AssertionError("never called")


def test_pickle_serializer_is_refused() -> None:
    with pytest.raises(ImproperlyConfigured, match="pickle"):
        check_serializer(PickleLike)
    with override_settings(SESSION_SERIALIZER="tests.sessions.test_contract.PickleLike"):
        with pytest.raises(ImproperlyConfigured):
            SessionStore()
        from django_rediskit.sessions.checks import check_sessions

        assert [m.id for m in check_sessions() if m.level >= 40] == ["django_rediskit.E101"]


def test_no_pickle_on_the_session_path(rclient: Any) -> None:
    store = SessionStore()
    store["when"] = "now"
    store.save()
    raw = rclient.get(key_of(store.session_key))
    assert raw.startswith(b"R1") and b"\x80" not in raw
    payload = Envelope.parse(raw).payload.decode()
    assert signing.loads(payload, salt=store.key_salt) == {"when": "now"}


def test_user_token_escapes_hash_tag_characters() -> None:
    assert user_token("42") == "42"
    for hostile in ("{a}", "a:b", "x" * 65, "a b", ""):
        token = user_token(hostile)
        assert "{" not in token and "}" not in token and ":" not in token and " " not in token


# --- async twins ---------------------------------------------------------------------------------


def test_async_contract() -> None:
    asyncio.run(_async_contract())


async def _async_contract() -> None:
    store = SessionStore()
    await store.aset("a", 1)
    await store.asave()
    key = store.session_key
    assert await store.aexists(key)
    other = SessionStore(key)
    assert await other.aload() == {"a": 1}
    await store.aset("_auth_user_id", "9")
    await store.asave()
    device = store.device_id
    await store.acycle_key()
    assert store.session_key != key and store.device_id == device
    assert not await store.aexists(key)
    in_flight = SessionStore(store.session_key)
    assert await in_flight.aget("_auth_user_id") == "9"
    await store.aflush()
    assert store.session_key is None
    await in_flight.aset("a", 2)
    with pytest.raises(UpdateError):
        await in_flight.asave()
    clash = SessionStore()
    await clash.acreate()
    dup = SessionStore(clash.session_key)
    with pytest.raises(CreateError):
        await dup.asave(must_create=True)
    await clash.adelete()
    assert not await clash.aexists(clash.session_key)
    await SessionStore.aclear_expired()


# --- behaviour 2: an expiry in the past ends the session on save ------------------------------


def test_save_with_expiry_in_the_past_deletes_the_session(rclient: Any) -> None:
    store = SessionStore()
    store["foo"] = "bar"
    store.save()
    key = store.session_key
    assert key is not None
    store.set_expiry(-timedelta(seconds=10))
    store.save()
    assert stored(rclient, key) is None
    assert not SessionStore().exists(key)
    assert SessionStore(key).load() == {}


def test_save_with_expiry_in_the_past_drops_the_index_entry(rclient: Any) -> None:
    store = SessionStore()
    store["_auth_user_id"] = "8"
    store.save()
    key = store.session_key
    assert index_fields(rclient, "8") == [key.encode()]
    store.set_expiry(-timedelta(seconds=10))
    store.save()
    assert stored(rclient, key) is None
    assert index_fields(rclient, "8") == []


def test_asave_with_expiry_in_the_past_deletes_the_session(rclient: Any) -> None:
    async def scenario() -> str | None:
        store = SessionStore()
        await store.aset("foo", "bar")
        await store.asave()
        key = store.session_key
        await store.aset_expiry(-timedelta(seconds=10))
        await store.asave()
        assert not await SessionStore().aexists(key)
        assert await SessionStore(key).aload() == {}
        return key

    key = asyncio.run(scenario())
    assert key is not None and stored(rclient, key) is None
