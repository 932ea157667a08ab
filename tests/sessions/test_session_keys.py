"""Issue 10, behaviour 3: every session key Django accepts works, escaped where it meets Redis.

Django's ``SessionBase._validate_session_key`` accepts any string of 8+ characters. Such a key
round-trips through the engine (sync and async) and the device API; its Redis name is an
injective function of the key (``envelope.session_name``), keys Django generates keep the names
they always had, and no character of a key can reshape a key name, a glob or an index field.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from django.contrib.sessions.backends.base import CreateError, UpdateError
from django.test import RequestFactory
from hypothesis import given, settings
from hypothesis import strategies as st

from django_rediskit.patterns import glob_escape
from django_rediskit.sessions import list_devices, revoke, revoke_all, revoke_others, revoke_session
from django_rediskit.sessions.backend import SessionStore
from django_rediskit.sessions.envelope import session_key_of_name, session_name
from django_rediskit.sessions.index import (
    SessionStoreUnavailable,
    data_key,
    session_backend,
    user_keys,
)
from tests.servers import RedisServer
from tests.sessions.conftest import index_fields
from tests.sessions.test_outage import own_redis  # noqa: F401 - a fixture used below

#: Keys Django accepts that Django's generator never makes.
ODD_KEYS = [
    "12345678",
    "has spaces in it",
    "********",
    "????????",
    "[abc]def[ghi]",
    "{hash}tag{key}",
    "a:b:c:d:e:f",
    "#abcdefgh",
    "#abcdef" + "x" * 26,
    "~" + "0" * 5 + "12345678",  # looks like an escaped name
    "A" * 32,
    "a" * 31 + "/",
    "a" * 33,
    "é" * 32,
    "日本語のセッションキー",
    "\x00\x01\x02\x03\r\n\t\x7f",
    "\ud800 lone surrogate",
    "x" * 10_000,
    "back\\slash\\key",
    "100%25percent",
]

#: The characters a name may contain: none is a glob metacharacter, ``{``/``}``, ``:`` or space.
NAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~%")

django_keys = st.text(st.characters(exclude_categories=[]), min_size=8)


def sessions_in_redis(rclient: Any) -> list[bytes]:
    pattern = glob_escape(session_backend().feature_key("sessions")) + ":*"
    return sorted(rclient.scan_iter(match=pattern, count=1000))


# --- the name ------------------------------------------------------------------------------------


def test_generated_keys_keep_their_names() -> None:
    """No data migration: a key Django generates names its Redis key exactly as before."""
    store = SessionStore()
    key = store._get_new_session_key()
    backend = session_backend()
    assert session_name(key) == key
    assert data_key(backend, key) == f"{backend.key_prefix}:s:{key}"


def test_escaped_names_are_stable() -> None:
    """Names are stored data: the spelling (as docs/sessions.md shows it) must never drift, or
    live sessions with odd keys would be orphaned by an upgrade."""
    assert session_name("has space*") == "~01b0ehas%20space%2A"
    assert session_name("12345678") == "~3711012345678"


@pytest.mark.parametrize("key", ODD_KEYS, ids=range(len(ODD_KEYS)))
def test_odd_key_names_are_escaped(key: str) -> None:
    name = session_name(key)
    assert set(name) <= NAME_CHARS
    assert name.startswith("~") and not name.startswith("#")
    assert glob_escape(name) == name
    assert session_key_of_name(name) == key


@settings(max_examples=300, deadline=None)
@given(django_keys)
def test_name_round_trips_so_it_is_injective(key: str) -> None:
    """``session_key_of_name`` inverts ``session_name``: distinct keys get distinct names."""
    name = session_name(key)
    assert session_key_of_name(name) == key
    assert set(name) <= NAME_CHARS


@settings(max_examples=300, deadline=None)
@given(django_keys, django_keys)
def test_distinct_keys_never_share_a_name(one: str, other: str) -> None:
    if one != other:
        assert session_name(one) != session_name(other)


@pytest.mark.parametrize(
    "name", ["~abcde%41BCDEFGH", "~abcde" + "12345678", "#abcdefgh", "~12", "~abcde%zz12345678"]
)
def test_non_canonical_names_name_no_session(name: str) -> None:
    """Only the one spelling ``session_name`` makes maps back to a key (a wrong digest or an
    escaped letter names nothing)."""
    assert session_key_of_name(name) is None


def test_an_escaped_name_given_as_key_is_a_different_session(rclient: Any) -> None:
    """data_key never takes a pre-escaped form: a name handed in as a key is escaped again."""
    key = "odd key: *{tag}*"
    SessionStore(key).save(must_create=True)
    store = SessionStore(key)
    store["secret"] = 1
    store.save()
    name = session_name(key)
    backend = session_backend()
    assert data_key(backend, name) != data_key(backend, key)
    impostor = SessionStore(name)
    assert not impostor.exists(name)
    assert impostor.load() == {}
    assert SessionStore(key).load() == {"secret": 1}


# --- the engine ----------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ODD_KEYS, ids=range(len(ODD_KEYS)))
def test_odd_key_round_trips(rclient: Any, key: str) -> None:
    store = SessionStore(key)
    assert store.session_key == key
    store.save(must_create=True)  # created under this key, as Django's cache engine does
    assert store.exists(key)
    assert sessions_in_redis(rclient) == [data_key(session_backend(), key).encode()]
    writer = SessionStore(key)
    writer["cart"] = [1, 2]
    writer.save()
    again = SessionStore(key)
    assert again.load() == {"cart": [1, 2]}
    again["cart"] = [3]
    again.save()
    assert SessionStore(key).load() == {"cart": [3]}
    again.cycle_key()
    new = again.session_key
    assert new != key and session_name(new) == new  # a generated key from now on
    assert not store.exists(key)
    assert SessionStore(new).load() == {"cart": [3]}
    again.delete()
    assert not store.exists(new)
    assert sessions_in_redis(rclient) == []


def test_setter_accepts_what_django_accepts() -> None:
    store = SessionStore()
    store._session_key = "12345678"
    assert store.session_key == "12345678"
    store._session_key = "1234567"
    assert store.session_key is None


def test_odd_key_keeps_the_create_and_update_contract() -> None:
    key = "* same odd key *"
    first = SessionStore(key)
    first.save(must_create=True)
    clash = SessionStore(key)
    clash._session_cache = {"x": 1}
    with pytest.raises(CreateError):
        clash.save(must_create=True)
    in_flight = SessionStore(key)
    in_flight["a"] = 1
    SessionStore(key).delete()
    with pytest.raises(UpdateError):
        in_flight.save()
    assert not first.exists(key)


def test_odd_keys_of_a_glob_shape_touch_only_themselves(rclient: Any) -> None:
    """A key made of glob metacharacters, used as a SCAN pattern, matches itself alone."""
    backend = session_backend()
    for key in ("********", "????????", "[a-z]*[a-z]*", "abcdefgh"):
        SessionStore(key).save(must_create=True)
    for key in ("********", "????????", "[a-z]*[a-z]*"):
        matched = list(rclient.scan_iter(match=data_key(backend, key), count=1000))
        assert matched == [data_key(backend, key).encode()]
    SessionStore("********").delete()
    assert SessionStore("abcdefgh").exists("abcdefgh")
    assert SessionStore("????????").exists("????????")


def test_racing_creates_of_one_odd_key_have_one_winner() -> None:
    key = "racing {odd} key"
    barrier = threading.Barrier(8)
    outcomes: list[str] = []

    def create(n: int) -> None:
        store = SessionStore(key)
        store._session_cache = {"n": n}
        barrier.wait()
        try:
            store.save(must_create=True)
        except CreateError:
            outcomes.append("clash")
        else:
            outcomes.append(f"won {n}")

    threads = [threading.Thread(target=create, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [o for o in outcomes if o.startswith("won")]
    assert len(winners) == 1 and outcomes.count("clash") == 7
    assert SessionStore(key).load() == {"n": int(winners[0].split()[1])}


def test_async_round_trip_of_an_odd_key(rclient: Any) -> None:
    key = "async *odd* {key} é"

    async def scenario() -> str | None:
        await SessionStore(key).asave(must_create=True)
        store = SessionStore(key)
        await store.aset("a", 1)
        await store.asave()
        assert await store.aexists(key)
        assert await SessionStore(key).aload() == {"a": 1}
        await store.aset("_auth_user_id", "9")
        await store.asave()
        device = store.device_id
        await store.acycle_key()
        assert store.session_key != key and store.device_id == device
        assert not await store.aexists(key)
        new = store.session_key
        await store.adelete()
        assert not await store.aexists(new)
        return new

    asyncio.run(scenario())
    assert sessions_in_redis(rclient) == []
    assert not any(rclient.exists(k) for k in user_keys(session_backend(), "9"))


def test_odd_key_in_an_outage(own_redis: RedisServer) -> None:  # noqa: F811 - the fixture
    key = "outage {odd} key*"
    SessionStore(key).save(must_create=True)
    store = SessionStore(key)
    store["a"] = 1
    store.save()
    assert SessionStore(key).load() == {"a": 1}
    own_redis.stop()
    reader = SessionStore(key)
    assert reader.load() == {}
    with pytest.raises(SessionStoreUnavailable):
        reader.save()
    with pytest.raises(SessionStoreUnavailable):
        SessionStore(key).save(must_create=True)


# --- the device API ------------------------------------------------------------------------------


def signed_in(user: Any, key: str, ip: str) -> SessionStore:
    SessionStore(key).save(must_create=True)
    store = SessionStore(key)
    store["_auth_user_id"] = str(user.pk)
    store.set_client(ip, "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0")
    store.save()
    assert store.session_key == key
    return store


def request_for(user: Any, store: SessionStore) -> Any:
    request = RequestFactory().get("/")
    request.session = store
    request.user = user
    return request


@pytest.mark.django_db
def test_device_api_with_odd_keys(rclient: Any, make_user: Any) -> None:
    """Keys starting with ``#`` never pass for client fields; keys sharing a prefix keep their
    own clients; list / revoke / revoke_others / revoke_session all find odd-key sessions."""
    user = make_user()
    keys = ["#abcdefgh", "session-0001", "session-0002", "x" * 2000]
    stores = [signed_in(user, key, f"10.0.0.{n}") for n, key in enumerate(keys)]
    uid = str(user.pk)
    assert index_fields(rclient, uid) == sorted(session_name(k).encode() for k in keys)
    _, m = user_keys(session_backend(), uid)
    fields = set(rclient.hkeys(m))
    assert not fields & {key.encode() for key in keys}
    devices = list_devices(user, request=request_for(user, stores[1]))
    assert sorted(d.ip for d in devices) == [f"10.0.0.{n}" for n in range(4)]
    assert [d.ip for d in devices if d.is_current] == ["10.0.0.1"]
    [first] = [d for d in devices if d.ip == "10.0.0.0"]
    assert revoke(user, first.device_id)
    assert not stores[0].exists(keys[0])
    assert revoke_session(keys[3])
    assert not stores[3].exists(keys[3])
    assert revoke_others(request_for(user, stores[1])) == 1
    assert not stores[2].exists(keys[2])
    [kept] = list_devices(user)
    assert kept.ip == "10.0.0.1" and stores[1].exists(keys[1])
    assert revoke_all(user, keep=keys[1]) == 0
    assert revoke_all(user) == 1
    assert not stores[1].exists(keys[1])
    assert sessions_in_redis(rclient) == []


@pytest.mark.django_db
def test_rotation_of_an_odd_signed_in_key_keeps_the_device(rclient: Any, make_user: Any) -> None:
    user = make_user()
    store = signed_in(user, "{odd} signed-in key", "10.0.0.9")
    [device] = list_devices(user)
    store.cycle_key()
    assert index_fields(rclient, str(user.pk)) == [store.session_key.encode()]
    [after] = list_devices(user)
    assert (after.device_id, after.ip) == (device.device_id, "10.0.0.9")


class UrlsafeKeys(SessionStore):
    """A site's own key generator (mixed case, ``-`` and ``_``), as Django allows."""

    def _get_new_session_key(self) -> str:
        import secrets

        return secrets.token_urlsafe(30)


@pytest.mark.django_db
def test_a_subclass_generating_its_own_keys_works_end_to_end(rclient: Any, make_user: Any) -> None:
    user = make_user()
    store = UrlsafeKeys()
    store["_auth_user_id"] = str(user.pk)
    store.save()
    key = store.session_key
    assert key is not None and session_name(key) != key
    assert UrlsafeKeys(key).load() == {"_auth_user_id": str(user.pk)}
    [device] = list_devices(user)
    store.cycle_key()
    assert store.session_key != key and not store.exists(key)
    assert [d.device_id for d in list_devices(user)] == [device.device_id]
    assert revoke(user, device.device_id)
    assert sessions_in_redis(rclient) == []
