"""Every Lua script call's KEYS share one cluster slot, whichever feature sends it.

Redis Cluster refuses a script whose keys live in different slots (CROSSSLOT). This records the
KEYS of every script call that a workload touching every script makes (cache, tags, stampede
lock, sessions with devices, every throttle algorithm, the inspector's row metadata) and maps
them to slots with the cluster's own hash function. It runs on any topology; the cluster run of
the suite is the end-to-end proof.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.core.cache import cache
from redis.crc import key_slot

from django_rediskit import lua
from django_rediskit.sessions import list_devices, revoke_all
from django_rediskit.throttling import limiter as limiter_module
from django_rediskit.throttling.limiter import ALGORITHMS, RateLimiter
from tests.sessions.test_devices import login, whoami

pytestmark = pytest.mark.django_db


@pytest.fixture
def script_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, list[Any]]]:
    calls: list[tuple[str, list[Any]]] = []
    call, queue, run = lua.LuaScript.__call__, lua.LuaScript.queue, limiter_module._run

    def record_call(self: lua.LuaScript, keys: Any = (), args: Any = (), client: Any = None) -> Any:
        calls.append((self.name, list(keys)))
        return call(self, keys, args, client)

    def record_queue(self: lua.LuaScript, pipe: Any, keys: Any = (), args: Any = ()) -> None:
        calls.append((self.name, list(keys)))
        queue(self, pipe, keys, args)

    def record_run(script: lua.LuaScript, channel: Any, keys: list[str], args: Any) -> Any:
        calls.append((script.name, list(keys)))
        return run(script, channel, keys, args)

    monkeypatch.setattr(lua.LuaScript, "__call__", record_call)
    monkeypatch.setattr(lua.LuaScript, "queue", record_queue)
    monkeypatch.setattr(limiter_module, "_run", record_run)
    return calls


def test_every_script_call_keeps_its_keys_in_one_slot(
    script_calls: list[tuple[str, list[Any]]], make_user: Any
) -> None:
    # cache: incr, stale-tag replacement on add, the stampede lock
    cache.set("n", 1)
    cache.incr("n")
    cache.set("tagged", "old", tags=["t1", "t2"])
    cache.invalidate_tags("t1")
    assert cache.add("tagged", "new", tags=["t1", "t2"])
    assert cache.get_or_set("computed", lambda: 42, tags=["t3"]) == 42
    # sessions: create, index, activity, revoke
    user = make_user()
    client = login(user)
    assert whoami(client) == user.get_username()
    assert list_devices(user)
    revoke_all(user)
    # throttles: every algorithm, several rates in one decision
    for algorithm in ALGORITHMS:
        RateLimiter("5/min;100/day", algorithm=algorithm).hit("slots", f"id-{algorithm}")

    names = {name for name, _keys in script_calls}
    assert {"incr", "tags_replace_stale", "lock_release", "session_user"} <= names
    assert {"throttle_exact", "throttle_window", "throttle_gcra"} <= names
    for name, keys in script_calls:
        slots = {key_slot(key.encode() if isinstance(key, str) else key) for key in keys}
        assert len(slots) <= 1, f"{name} touches keys in {len(slots)} slots: {keys}"
