"""Helpers for the local-cache tests: build a LocalCache on a private server, fill, poll."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from redis import Redis

from django_rediskit.cache.local import CLIENT_NAME, NOT_HELD, LocalCache
from django_rediskit.connection.topology import Topology, topology_for

#: Fast failure detection for tests; the defaults are for production.
FAST = {
    "health_interval": 0.2,
    "health_timeout": 0.5,
    "check_interval": 0.2,
    "backoff": (0.02, 0.2),
}


def topology(url: str, **options: Any) -> Topology:
    opts = {"SOCKET_TIMEOUT": 2.0, "SOCKET_CONNECT_TIMEOUT": 0.5, **options}
    return topology_for(url, opts, scope=f"local-{uuid.uuid4().hex[:8]}")


def local_cache(url: str, prefixes: list[str], wait: bool = True, **kwargs: Any) -> LocalCache:
    cache = LocalCache(topology(url), prefixes, **{**FAST, **kwargs})
    if wait:
        assert cache.wait_live(10), "tracking never came up"
    return cache


def fill_once(cache: LocalCache, client: Redis, key: str) -> bool:
    """Read ``key`` through the local cache's protocol: begin, GET, put. Returns stored?"""
    ticket = cache.begin(key)
    raw = client.get(key)
    return cache.put(key, raw, ticket)


def fill(cache: LocalCache, client: Redis, key: str, deadline: float = 1.0) -> bool:
    """``fill_once`` until stored: a write made just before is announced just after ``begin``
    and (correctly: the ticket cannot tell it from a later write) cancels the first attempt."""
    end = time.monotonic() + deadline
    while True:
        if fill_once(cache, client, key):
            return True
        if time.monotonic() > end:
            return False
        time.sleep(0.001)


def poll(predicate: Callable[[], object], deadline: float = 5.0) -> bool:
    """Whether ``predicate`` became true within ``deadline`` seconds (checked every 1 ms)."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.001)
    return bool(predicate())


def not_held(cache: LocalCache, key: str) -> Callable[[], bool]:
    return lambda: cache.get(key) is NOT_HELD


def kill_tracking(client: Redis) -> int:
    """CLIENT KILL every local-cache tracking connection on ``client``'s server."""
    killed = 0
    for info in client.client_list():
        if info.get("name") == CLIENT_NAME:
            client.client_kill_filter(_id=int(info["id"]))
            killed += 1
    return killed


def settle(cache: LocalCache, client: Redis, marker: str = "p:__settle__") -> None:
    """Return once every write ``client`` made so far has been announced to ``cache``:
    announcements arrive in order, so once a write of ``marker`` (held first) is in, so are
    the ones before it."""
    assert fill(cache, client, marker)
    client.set(marker, b"x")
    assert poll(not_held(cache, marker))
