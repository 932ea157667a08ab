"""The one stampede protocol: a short Redis lock per key, and computing a value under it.

``get_or_set`` and ``@cached`` (including its XFetch early refresh) take the same lock, so one
computer per key runs at a time whichever entry point the callers use. The lock is a plain
``SET NX PX`` of a random token on ``<prefix>:lk:<full key>`` (the entry's hash tag, if it has
one, stays inside the name, so on Cluster the lock lives with the entry), released by the
``lock_release`` script only while it still holds our token: a lock that expired and was taken
by another computer is never released by the first.

Waiters poll with exponential backoff (2 ms to 50 ms). If the computer dies, the lock's TTL
(``STAMPEDE_LOCK_TIMEOUT``) frees the key; a waiter that has waited a whole lock timeout computes
the value itself (stored with NX) rather than fail.

The protocol is written as commands of :mod:`~django_rediskit.cache.client` (generators of
Redis steps), so ``get_or_set`` and ``aget_or_set`` run the very same code on the sync and the
async driver. An outage after the value was computed raises
:class:`~django_rediskit.connection.policy.ComputedDuringOutage`, so a muted cache returns that
value instead of computing it again.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from django_rediskit.cache.base import MISSING
from django_rediskit.cache.stats import OpStats
from django_rediskit.connection.policy import OUTAGE_ERRORS, ComputedDuringOutage

if TYPE_CHECKING:
    from django_rediskit.cache.backend import RedisCache
    from django_rediskit.cache.client import CacheClient
    from django_rediskit.cache.steps import Op

#: How a command learns the PX of the value it computed (timeouts may be callables of it).
Timeout = Callable[[Any], "int | None"]


class StampedeLock:
    """The lock of one cache entry; ``acquire``/``release`` keep redis-py ``Lock``'s names."""

    __slots__ = ("_cache", "key", "token")

    def __init__(self, cache: RedisCache, full_key: str) -> None:
        self._cache = cache
        self.key = lock_key(cache, full_key)
        self.token = new_token()

    def acquire(self, blocking: bool = False) -> bool:
        """Take the lock if it is free. Never blocks: a stampede waiter polls the entry, not
        the lock (``blocking`` exists for redis-py ``Lock`` compatibility; True is refused)."""
        if blocking:
            raise ValueError("a stampede lock is only ever tried, never waited for")
        return self._cache._run(self._cache.commands.try_lock(self.key, self.token))

    def release(self) -> bool:
        """Release the lock if it still holds our token; True if it did."""
        return self._cache._run(self._cache.commands.release_lock(self.key, self.token))


#: Where re-reads count: nowhere anyone reads.
UNCOUNTED = OpStats()


def lock_key(cache: RedisCache, full_key: str) -> str:
    return cache.feature_key("lock", full_key)


def new_token() -> bytes:
    return uuid.uuid4().hex.encode()


def get_or_set(
    commands: CacheClient,
    full: str,
    lock: str,
    default: Any,
    ms_for: Timeout,
    tags: Sequence[str],
) -> Op[Any]:
    """The value of ``full``, computing ``default()`` under the entry's lock on a miss.

    One lookup is counted (under ``get_or_set``): the first read. The re-reads while another
    process computes are waits, not lookups."""
    value = yield from commands.get(full, tags, counted=commands.counter("get_or_set"))
    if value is not MISSING:
        return value
    if not callable(default):
        yield from commands.add(full, default, ms_for(default), tags or None)
        value = yield from commands.get(full, tags, counted=UNCOUNTED)
        return default if value is MISSING else value
    token = new_token()
    deadline = time.monotonic() + commands.options.stampede_lock_ms / 1000
    pause = 0.002
    while True:
        acquired, value = yield from commands.lock_or_read(full, lock, token, tags)
        if value is not MISSING:
            if acquired:  # someone stored it between our miss and now
                yield from commands.release_lock(lock, token)
            return value
        if acquired:
            try:
                return (
                    yield from compute_and_store(
                        commands, full, default, ms_for, tags, release=(lock, token)
                    )
                )
            except BaseException:
                # The producer's error is what the caller must see; if Redis is gone too,
                # the lock simply expires after STAMPEDE_LOCK_TIMEOUT.
                with contextlib.suppress(*OUTAGE_ERRORS):
                    yield from commands.release_lock(lock, token)
                raise
        yield from commands.pause(pause)
        pause = min(pause * 2, 0.05)
        value = yield from commands.get(full, tags, counted=UNCOUNTED)
        if value is not MISSING:
            return value
        if time.monotonic() > deadline:
            return (yield from compute_and_store(commands, full, default, ms_for, tags, nx=True))


def compute_and_store(
    commands: CacheClient,
    full: str,
    default: Callable[[], Any],
    ms_for: Timeout,
    tags: Sequence[str],
    *,
    nx: bool = False,
    release: tuple[str, bytes] | None = None,
) -> Op[Any]:
    """Run ``default()`` and store its result with tag versions captured *before* it ran.

    ``release`` (lock key, token): the stampede lock is released in the same round trip as the
    write.
    """
    captured = (yield from commands.tag_versions(tags)) if tags else None
    value = default()
    try:
        ms = ms_for(value)
        if release is not None:
            yield from commands.store_and_release(full, value, ms, captured, *release)
        elif nx:
            yield from commands.add(full, value, ms, tags or None, captured)
        else:
            yield from commands.set(full, value, ms, tags=tags or None, versions=captured)
    except OUTAGE_ERRORS as exc:
        raise ComputedDuringOutage(value) from exc
    return value
