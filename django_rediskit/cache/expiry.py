"""Expiry commands and ``lock()`` with django-redis's signatures, on our client layer and policy.

Three mends over django-redis, where its behaviour is an error or a wrong duration:

- ``expire(key, None)`` (or the default timeout when it is None) makes the key persistent, as
  ``timeout=None`` means everywhere else in Django; django-redis sends None and redis-py refuses.
- ``expire(key, 1.5)`` expires in 1.5 s (PEXPIRE); django-redis sends "1.5" to EXPIRE, an error.
- ``pexpire(key, DEFAULT_TIMEOUT)`` uses the cache's default timeout *in milliseconds*;
  django-redis passes the seconds as milliseconds (300 s becomes 0.3 s).

Each command has its async twin (``aexpire``..., ``alock`` for ``async with``), written once with
it (``cache/twins.py``).
"""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING, Any

from django.core.cache.backends.base import DEFAULT_TIMEOUT

from django_rediskit.cache.base import CacheCore
from django_rediskit.cache.policy import guarded
from django_rediskit.cache.steps import Call, Op
from django_rediskit.cache.twins import twin
from django_rediskit.connection.aio import async_topology

if TYPE_CHECKING:
    from redis import Redis
    from redis.asyncio.lock import Lock as AsyncLock
    from redis.lock import Lock

#: What redis-py accepts for a relative expiry: seconds (or ms) as an int, or a timedelta.
Expiry = int | datetime.timedelta
#: ... and for an absolute one: a Unix time as an int, or a datetime.
AbsoluteExpiry = int | datetime.datetime


def _muted_lock(arguments: dict[str, Any], asynchronous: bool) -> Any:
    """``lock()`` / ``alock()`` when an outage is muted (the breaker is open): the Lock itself,
    because building it sends nothing. Its ``acquire()`` then meets the outage and raises it as
    redis-py does, so a muted cache never hands out a lock that pretends to be held."""
    backend: KeyCommands = arguments["self"]
    given = {name: value for name, value in arguments.items() if name != "self"}
    if given["client"] is None:
        given["client"] = backend._lock_client(asynchronous)
    return backend._new_lock(**given)


def _unguarded_lock(arguments: dict[str, Any]) -> Lock:
    lock: Lock = _muted_lock(arguments, asynchronous=False)
    return lock


def _unguarded_alock(arguments: dict[str, Any]) -> AsyncLock:
    lock: AsyncLock = _muted_lock(arguments, asynchronous=True)
    return lock


class KeyCommands(CacheCore):
    if TYPE_CHECKING:
        default_timeout: float | None

    @twin(miss=False)
    def persist(self, key: Any, version: int | None = None, client: Any = None) -> Op[bool]:
        full = self.make_and_validate_key(key, version)
        return bool((yield Call("persist", (full,), write=True)))

    apersist = persist.asynchronous

    @twin(miss=False)
    def expire(
        self,
        key: Any,
        timeout: Expiry | None,
        version: int | None = None,
        client: Any = None,
    ) -> Op[bool]:
        """Seconds from now (``DEFAULT_TIMEOUT``: the cache's); None makes the key persistent, and
        a fractional number of seconds is kept to the millisecond (EXPIRE takes whole seconds)."""
        seconds: Expiry | float | None = (
            self.default_timeout if timeout is DEFAULT_TIMEOUT else timeout
        )
        full = self.make_and_validate_key(key, version)
        if seconds is None:
            return bool((yield Call("persist", (full,), write=True)))
        if isinstance(seconds, float):
            return bool((yield Call("pexpire", (full, round(seconds * 1000)), write=True)))
        return bool((yield Call("expire", (full, seconds), write=True)))

    aexpire = expire.asynchronous

    @twin(miss=False)
    def pexpire(
        self,
        key: Any,
        timeout: Expiry | None,
        version: int | None = None,
        client: Any = None,
    ) -> Op[bool]:
        """Milliseconds from now (``DEFAULT_TIMEOUT``: the cache's, converted from seconds)."""
        if timeout is DEFAULT_TIMEOUT:
            seconds = self.default_timeout
            timeout = None if seconds is None else round(seconds * 1000)
        full = self.make_and_validate_key(key, version)
        if timeout is None:
            return bool((yield Call("persist", (full,), write=True)))
        return bool((yield Call("pexpire", (full, timeout), write=True)))

    apexpire = pexpire.asynchronous

    @twin(miss=False)
    def expire_at(
        self,
        key: Any,
        when: AbsoluteExpiry,
        version: int | None = None,
        client: Any = None,
    ) -> Op[bool]:
        """Expire at ``when``: a Unix time in seconds, or a datetime."""
        full = self.make_and_validate_key(key, version)
        return bool((yield Call("expireat", (full, when), write=True)))

    aexpire_at = expire_at.asynchronous

    @twin(miss=False)
    def pexpire_at(
        self,
        key: Any,
        when: AbsoluteExpiry,
        version: int | None = None,
        client: Any = None,
    ) -> Op[bool]:
        """Expire at ``when``: a Unix time in milliseconds, or a datetime."""
        full = self.make_and_validate_key(key, version)
        return bool((yield Call("pexpireat", (full, when), write=True)))

    apexpire_at = pexpire_at.asynchronous

    @guarded(miss=_unguarded_lock)
    def lock(
        self,
        key: Any,
        version: int | None = None,
        timeout: float | None = None,
        sleep: float = 0.1,
        blocking: bool = True,
        blocking_timeout: float | None = None,
        client: Redis | None = None,
        thread_local: bool = True,
    ) -> Lock:
        """redis-py's Lock on the cache key (``<prefix>:<version>:<key>``), as django-redis's."""
        target = client or self._lock_client(asynchronous=False)
        lock: Lock = self._new_lock(
            key, version, timeout, sleep, blocking, blocking_timeout, target, thread_local
        )
        return lock

    @guarded(miss=_unguarded_alock)
    def alock(
        self,
        key: Any,
        version: int | None = None,
        timeout: float | None = None,
        sleep: float = 0.1,
        blocking: bool = True,
        blocking_timeout: float | None = None,
        client: Any = None,
        thread_local: bool = True,
    ) -> AsyncLock:
        """:meth:`lock` for ``async with``: redis-py's asyncio Lock on the running loop's client.

        Called, not awaited, on the loop; as with :meth:`lock`, building it sends nothing."""
        target = client if client is not None else self._lock_client(asynchronous=True)
        lock: AsyncLock = self._new_lock(
            key, version, timeout, sleep, blocking, blocking_timeout, target, thread_local
        )
        return lock

    def _new_lock(
        self,
        key: Any,
        version: int | None,
        timeout: float | None,
        sleep: float,
        blocking: bool,
        blocking_timeout: float | None,
        client: Any,
        thread_local: bool,
    ) -> Any:
        """A Lock of ``client``'s kind: redis-py's, or its asyncio one."""
        return client.lock(
            self.make_and_validate_key(key, version),
            timeout=timeout,
            sleep=sleep,
            blocking=blocking,
            blocking_timeout=blocking_timeout,
            thread_local=thread_local,
        )

    def _lock_client(self, asynchronous: bool) -> Any:
        if asynchronous:
            return async_topology(self.topology).client(True)
        return self._write()
