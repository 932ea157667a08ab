"""The per-user index layout: compact listpack entries, and the lazy upgrade of the first layout
(a ZSET of sids by expiry + a HASH of JSON meta) that sessions written before it still carry."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest

from django_rediskit.sessions import count_devices, list_devices, revoke, revoke_all, useragent
from django_rediskit.sessions.backend import SessionStore
from django_rediskit.sessions.index import session_backend, user_keys
from django_rediskit.sessions.useragent import client_field
from tests.sessions.conftest import index_fields
from tests.sessions.test_devices import FIREFOX, SAFARI_IOS, login, sid, whoami

pytestmark = pytest.mark.django_db

IPV4 = "198.51.100.203"


def test_index_stays_listpack_encoded_with_clients(make_user: Any, rclient: Any) -> None:
    """Every stored value fits ``hash-max-listpack-value`` (64 B), so Redis keeps the compact
    encoding whatever the user agent: the memory figure in docs/sessions.md depends on it."""
    user = make_user()
    long_agent = FIREFOX + " " + "x" * 300
    for agent in (FIREFOX, SAFARI_IOS, long_agent, "Ünïcode|Agent"):
        login(user, agent, IPV4)
    _, m = user_keys(session_backend(), str(user.pk))
    assert rclient.object("encoding", m) == b"listpack"
    values = rclient.hgetall(m)
    assert len(values) == 8 and max(len(v) for v in values.values()) <= 61
    devices = list_devices(user)
    assert len(devices) == 4 and all(device.ip == IPV4 for device in devices)
    agents = {device.user_agent: device.browser for device in devices}
    assert agents[client_field(IPV4, FIREFOX).split("|", 3)[3]] == "Firefox"
    assert "?n?code/Agent" in agents
    long_short = client_field(IPV4, long_agent).split("|", 3)[3]
    # A last token longer than half the room is not kept: the agent is simply cut.
    assert long_short == "(Windows NT 10.0; Win64; x64;"
    assert len(f"{IPV4}|Firefox|Windows|{long_short}") <= useragent.CLIENT_FIELD_MAX
    assert agents[long_short] == "Firefox"


def _write_first_layout(
    rclient: Any, uid: str, entries: dict[str, tuple[int, dict[str, Any]]]
) -> None:
    """The index exactly as the first layout stored it: sid -> expiry ms, sid -> JSON meta."""
    z, m = user_keys(session_backend(), uid)
    rclient.delete(z, m)
    rclient.zadd(z, {sid_: expiry for sid_, (expiry, _) in entries.items()})
    rclient.hset(m, mapping={sid_: json.dumps(meta) for sid_, (_, meta) in entries.items()})
    rclient.pexpireat(z, max(expiry for expiry, _ in entries.values()))
    rclient.pexpireat(m, max(expiry for expiry, _ in entries.values()))


def _first_layout_of(rclient: Any, user: Any, clients: list[Any]) -> dict[str, str]:
    """Rewrite the users's live index in the first layout; returns sid -> device id."""
    now = int(time.time() * 1000)
    ids = {}
    for client in clients:
        store = SessionStore(sid(client))
        store.load()
        assert store.device_id
        ids[sid(client)] = store.device_id
    entries: dict[str, tuple[int, dict[str, Any]]] = {}
    for (key, device_id), agent in zip(ids.items(), (FIREFOX, SAFARI_IOS), strict=False):
        meta = {
            "did": device_id,
            "ct": now - 60_000,
            "la": now - 5_000,
            "ip": "10.9.8.7",
            "ua": agent,
        }
        entries[key] = (now + 3_600_000, meta)
    entries["0" * 32] = (now - 1_000, {"did": "A" * 22, "ct": 1, "la": 1})  # expired member
    _write_first_layout(rclient, str(user.pk), entries)
    return ids


def test_first_layout_is_upgraded_on_first_use(make_user: Any, rclient: Any) -> None:
    user = make_user()
    laptop, phone = login(user, FIREFOX), login(user, SAFARI_IOS)
    ids = _first_layout_of(rclient, user, [laptop, phone])
    z, m = user_keys(session_backend(), str(user.pk))
    assert rclient.type(z) == b"zset"

    devices = {device.device_id: device for device in list_devices(user)}
    assert set(devices) == set(ids.values())  # same opaque ids: links and audits stay valid
    laptop_device = devices[ids[sid(laptop)]]
    assert laptop_device.ip == "10.9.8.7"
    assert (laptop_device.browser, laptop_device.os) == ("Firefox", "Windows")
    assert laptop_device.user_agent == "(Windows NT 10.0; Win64; x64; rv:12~ Firefox/128.0"
    phone_agent = devices[ids[sid(phone)]].user_agent
    assert phone_agent.startswith("(iPhone; CPU iPhone OS 17_5") and phone_agent.endswith(
        "~ Safari/604.1"
    )
    assert len("10.9.8.7|||" + phone_agent) == 61  # the IP kept whole, the agent cut to fit
    assert (devices[ids[sid(phone)]].browser, devices[ids[sid(phone)]].os) == ("Safari", "iOS")
    assert 54 <= (laptop_device.last_activity - laptop_device.created_at).total_seconds() <= 56
    assert not rclient.exists(z)
    assert index_fields(rclient, str(user.pk)) == sorted(
        [sid(laptop).encode(), sid(phone).encode()]
    )
    assert rclient.object("encoding", m) == b"listpack"
    assert rclient.pttl(m) > 3_000_000

    # Sessions written before the upgrade keep working, and the device API acts on them.
    assert whoami(laptop) == user.get_username() and whoami(phone) == user.get_username()
    assert revoke(user, ids[sid(phone)])
    assert whoami(phone) == "anonymous" and whoami(laptop) == user.get_username()
    assert count_devices(user) == 1


def test_first_layout_upgraded_by_a_save_or_a_revoke(make_user: Any, rclient: Any) -> None:
    """Every operation of the index script upgrades first, not only the listing."""
    user = make_user()
    laptop, phone = login(user, FIREFOX), login(user, SAFARI_IOS)
    _first_layout_of(rclient, user, [laptop, phone])
    z, _ = user_keys(session_backend(), str(user.pk))
    laptop.get("/touch/")  # a save of a known member
    assert not rclient.exists(z)
    assert len(list_devices(user)) == 2

    _first_layout_of(rclient, user, [laptop, phone])
    assert revoke_all(user) == 2
    assert not rclient.exists(z) and index_fields(rclient, str(user.pk)) == []
    assert whoami(laptop) == "anonymous" and whoami(phone) == "anonymous"


def test_malformed_first_layout_meta_is_dropped_not_fatal(make_user: Any, rclient: Any) -> None:
    user = make_user()
    laptop = login(user, FIREFOX)
    now = int(time.time() * 1000)
    _write_first_layout(
        rclient,
        str(user.pk),
        {
            sid(laptop): (now + 60_000, {"did": "bad|id", "ip": 5}),
            "1" * 32: (now + 60_000, {"did": ["x"]}),
        },
    )
    z, m = user_keys(session_backend(), str(user.pk))
    rclient.hset(m, "2" * 32, "{not json")
    assert list_devices(user) == []  # unreadable entries are dropped, never shown
    assert not rclient.exists(z) and not rclient.exists(m)


def test_concurrent_first_use_upgrades_once(make_user: Any, rclient: Any) -> None:
    """Threads racing to read an old index all see the same devices (the upgrade is one
    script call), and nothing is lost or duplicated."""
    user = make_user()
    clients = [login(user, FIREFOX), login(user, SAFARI_IOS)]
    ids = _first_layout_of(rclient, user, clients)
    seen: list[set[str]] = []
    lock = threading.Lock()

    def reader() -> None:
        found = {device.device_id for device in list_devices(user)}
        with lock:
            seen.append(found)

    threads = [threading.Thread(target=reader) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen == [set(ids.values())] * 8
    assert index_fields(rclient, str(user.pk)) == sorted(key.encode() for key in ids)


def test_ipv6_clients_keep_the_compact_encoding(make_user: Any, rclient: Any) -> None:
    user = make_user()
    ip = "2001:db8:85a3:8d3:1319:8a2e:370:7348"
    login(user, SAFARI_IOS, ip)
    _, m = user_keys(session_backend(), str(user.pk))
    assert rclient.object("encoding", m) == b"listpack"
    [device] = list_devices(user)
    assert (device.ip, device.browser, device.os) == (ip, "Safari", "iOS")
