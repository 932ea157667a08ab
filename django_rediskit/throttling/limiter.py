"""The rate limiter core: one Lua script per decision, whatever the number of rates.

A decision is one EVALSHA (one round trip; EVAL once more after a ``SCRIPT FLUSH`` or failover).
The script reads the Redis server's clock, checks every rate of the throttle and consumes all of
them or none, so concurrent requests can never slip past a limit and a request rejected by one
rate leaves the others untouched.

Throttle calls use their own connection pools, a sibling of the alias's topology
(``Topology.with_timeouts``) with short socket timeouts and no retries: a slow Redis must cost a
request a few hundred milliseconds at worst, not the cache's 5 s. The alias's one circuit breaker
(``connection.policy``, shared with the cache and sessions) then answers from the fail-open /
fail-closed policy in microseconds until Redis is back. Outages give a decision, never an
exception; bugs (a wrong password, a wrong command, a malformed reply) raise, as everywhere else.

On a standalone server or behind Sentinel a decision is sent on a pooled connection directly (see
``_run``); on a cluster through redis-py's ``RedisCluster``, which routes by the identity's hash
tag (all of one identity's keys share it, so the script runs on one node).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import os
import re
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, cast

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver
from redis.exceptions import AuthenticationError, NoScriptError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from django_rediskit import lua
from django_rediskit.conf import get_section, get_setting
from django_rediskit.connection.aio import async_topology
from django_rediskit.connection.policy import (
    CircuitBreaker,
    ThrottledLog,
    outage_of,
    record_answer,
    record_outage,
)
from django_rediskit.metrics import events as metrics
from django_rediskit.throttling.rates import Rate, parse_rates
from django_rediskit.throttling.signals import throttle_backend_failure

if TYPE_CHECKING:
    from redis import Redis
    from redis.connection import Connection

    from django_rediskit.cache.backend import RedisCache
    from django_rediskit.connection.topology import Topology

#: Algorithm name -> (Lua script, option passed as ARGV[4], key token). The token keeps the
#: state of different algorithms apart (their layouts differ); one letter keeps keys short.
ALGORITHMS: Final[dict[str, tuple[str, str, str]]] = {
    "exact": ("throttle_exact", "", "e"),
    "approx": ("throttle_window", "1", "a"),
    "fixed": ("throttle_window", "0", "f"),
    "gcra": ("throttle_gcra", "", "g"),
}
_SCOPE = re.compile(r"^[^{}\s]{1,100}$")  # braces would break the hash tag
_US: Final = 1_000_000
#: Answers that are not an outage but still leave no decision: a command error (foreign data in a
#: key) or a reply of the wrong shape (never trust Redis).
_ANSWERED_WRONGLY: Final = (ResponseError, ValueError, TypeError, IndexError)


@functools.cache
def throttle_settings() -> dict[str, Any]:
    """``REDISKIT["THROTTLE"]`` merged over its defaults (a partial dict is fine).

    Cached (read on every request by the views and middleware; DRF builds its throttles anew per
    request) and forgotten when ``setting_changed`` fires. Callers must not mutate the dict.
    """
    return get_section("THROTTLE")


def throttle_alias() -> str:
    alias = throttle_settings()["CACHE_ALIAS"] or get_setting("CACHE_ALIAS")
    return str(alias)


@functools.lru_cache(maxsize=8)
def _digest_key(secret: str) -> bytes:
    return hashlib.sha256(b"django-rediskit.throttle.ident:" + secret.encode()).digest()


def ident_digest(ident: str) -> str:
    """The identity as it appears in keys: a keyed hash, so no IP or user name is ever stored.

    Keyed with a secret derived from SECRET_KEY: an unkeyed hash of an IPv4 address is reversed
    by trying all 2**32 of them. (Rotating SECRET_KEY therefore starts every window afresh.)
    """
    return _ident_digest(str(settings.SECRET_KEY), ident)


@functools.lru_cache(maxsize=4096)
def _ident_digest(secret: str, ident: str) -> str:
    """Cached: the same users and addresses come back request after request (bounded, so
    identities that never return only cost a hash each)."""
    digest = hashlib.blake2b(ident.encode(), digest_size=9, key=_digest_key(secret)).digest()
    return base64.urlsafe_b64encode(digest).decode()  # 12 characters, 72 bits


def _run(script: lua.LuaScript, channel: _Channel, keys: list[str], args: Sequence[Any]) -> Any:
    """``script(keys, args, client)`` on a connection directly: one EVALSHA, one EVAL more if
    the server lost the script, as the loader does. On a cluster, through the routing client.

    redis-py's ``execute_command`` wraps every command in retry, observability and reply-callback
    layers worth about 7 us, a tenth of a whole decision. Throttle clients have no retries and
    EVALSHA has no reply callback, so skipping them changes nothing else. The connection itself
    closes on any error while sending or reading (a timed-out reply can never be read by the
    next decision), so it always goes back clean.
    """
    if channel.routed:
        return script(keys, args, client=channel.client)
    conn = channel.checkout()
    try:
        try:
            conn.send_command(  # type: ignore[no-untyped-call]
                "EVALSHA", script.sha, len(keys), *keys, *args
            )
            return conn.read_response()
        except NoScriptError:  # SCRIPT FLUSH, restart or failover: EVAL caches it again
            command = ("EVAL", script.text, len(keys), *keys, *args)
            conn.send_command(*command)  # type: ignore[no-untyped-call]
            return conn.read_response()
    finally:
        channel.idle.append(conn)


@functools.lru_cache(maxsize=4096)
def _jitter(key: str, window_us: int) -> int:
    """Where a key's windows start (approx / fixed): spread so resets do not all fall at once."""
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % window_us


@dataclass(frozen=True, slots=True)
class RateStatus:
    """One rate's state after a decision. Times are in seconds."""

    rate: Rate
    remaining: int
    #: until this rate's window holds nothing that limits the identity any more
    reset: float
    #: until a request of the same cost would pass this rate (0 if it passes now)
    retry_after: float


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    statuses: tuple[RateStatus, ...]
    #: seconds until the same request would be admitted (0 when allowed)
    retry_after: float
    #: True when Redis could not decide and the failure policy did
    degraded: bool = False


@dataclass
class _Channel:
    """What the throttles of one alias share in a process: client, breaker, log, key prefix."""

    backend: RedisCache
    #: the throttles' sibling of the alias's topology (short timeouts, no retries)
    topology: Topology
    client: Redis
    breaker: CircuitBreaker
    log: ThrottledLog
    retry_after: float
    #: True on a cluster: decisions go through the routing client, not a pooled connection
    routed: bool
    #: ``<prefix>:<throttle namespace>:``, the start of every throttle key of the alias
    key_stem: str
    #: idle connections for decisions (see ``checkout``) and the process they belong to
    idle: deque[Connection] = field(default_factory=deque)
    pid: int = field(default_factory=os.getpid)

    def checkout(self) -> Connection:
        """A connection for one decision, checked as redis-py's pool checks it.

        ``ConnectionPool.get_connection`` + ``release`` cost about 7 us (locks, metrics), a
        tenth of a decision; a deque's ``pop``/``append`` are atomic, so each thread still gets
        a connection of its own. The connections come from the alias's pool (its settings) and
        are as many as decisions ever ran at once. Put the connection back with ``idle.append``.
        """
        if self.pid != os.getpid():  # forked: the parent's sockets are not this process's
            self.idle, self.pid = deque(), os.getpid()
        try:
            conn = self.idle.pop()
        except IndexError:
            conn = cast("Connection", self.client.connection_pool.make_connection())
        try:
            try:
                conn.connect()  # type: ignore[no-untyped-call]
                if conn.can_read():  # type: ignore[no-untyped-call]
                    raise RedisConnectionError("Connection has data")
            except (RedisConnectionError, RedisTimeoutError, OSError):
                # A reply nobody read, or EOF after a server restart: start afresh.
                conn.disconnect()  # type: ignore[no-untyped-call]
                conn.connect()  # type: ignore[no-untyped-call]
        except BaseException:
            self.idle.append(conn)
            raise
        return conn


_channels: dict[str, _Channel] = {}
_channels_lock = threading.Lock()


@receiver(setting_changed)
def _forget_channels(*, setting: str, **kwargs: Any) -> None:
    """Tests (override_settings) may repoint an alias: rebuild its client on next use."""
    if setting in ("CACHES", "REDISKIT", "SECRET_KEY"):
        with _channels_lock:
            _channels.clear()
        throttle_settings.cache_clear()
        shared_limiter.cache_clear()


def _channel(alias: str) -> _Channel:
    channel = _channels.get(alias)
    if channel is None:
        with _channels_lock:
            channel = _channels.get(alias)
            if channel is None:
                channel = _channels[alias] = _build_channel(alias)
    return channel


@functools.cache
def _fast_topology(base: Topology, socket_timeout: float, connect_timeout: float) -> Topology:
    """The throttles' sibling of an alias's topology, one per process and configuration: the
    async pools (``connection/aio.py``) are keyed by the sync topology's identity, which must
    therefore live as long as the process, as the alias's own topology does."""
    return base.with_timeouts(socket_timeout, connect_timeout)


def _build_channel(alias: str) -> _Channel:
    from django_rediskit.aliases import backend_for_alias

    conf = throttle_settings()
    backend = backend_for_alias(alias)
    # Its own pools (short timeouts, no retries); the alias's breaker and log.
    topology = _fast_topology(
        backend.topology, float(conf["SOCKET_TIMEOUT"]), float(conf["SOCKET_CONNECT_TIMEOUT"])
    )
    return _Channel(
        backend=backend,
        topology=topology,
        client=topology.client(write=True),
        breaker=backend.breaker,
        log=backend.outage_log,
        retry_after=float(conf["FAILURE_RETRY_AFTER"]),
        routed=topology.kind != "standalone",
        key_stem=backend.feature_key("throttle", ""),
    )


class RateLimiter:
    """Admit or reject requests of an identity against one or several rates, atomically.

    ``rates`` is a rate string (``"100/min;1000/day"``) or parsed ``Rate`` objects. ``algorithm``,
    ``alias`` and ``fail_open`` default to ``REDISKIT["THROTTLE"]``. ``burst`` (gcra only) is
    how many requests may arrive at once; it defaults to each rate's limit.
    """

    def __init__(
        self,
        rates: str | Sequence[Rate],
        *,
        algorithm: str | None = None,
        alias: str | None = None,
        fail_open: bool | None = None,
        burst: int | None = None,
    ) -> None:
        parsed = parse_rates(rates) if isinstance(rates, str) else tuple(rates)
        self.rates: tuple[Rate, ...] = parsed
        if not self.rates:
            raise ImproperlyConfigured("A RateLimiter needs at least one rate.")
        conf = throttle_settings()
        self.algorithm: str = algorithm or conf["ALGORITHM"]
        if self.algorithm not in ALGORITHMS:
            raise ImproperlyConfigured(
                f"Unknown throttle algorithm {self.algorithm!r}; use one of "
                f"{', '.join(ALGORITHMS)}."
            )
        if burst is not None and (self.algorithm != "gcra" or burst < 1):
            raise ImproperlyConfigured("burst applies to the gcra algorithm and must be >= 1.")
        self.burst = burst
        self.alias: str = alias or throttle_alias()
        self.fail_open: bool = bool(conf["FAIL_OPEN"] if fail_open is None else fail_open)
        # A larger cost could never pass: reject it as a bug rather than throttle forever.
        self._max_cost = min(burst or rate.limit for rate in self.rates)
        # What every decision of this limiter sends the same, computed once.
        script, self._option, token = ALGORITHMS[self.algorithm]
        self._script = lua.script(script, prelude="throttle_prelude")
        self._suffixes = tuple(f":{token}:{rate.window}" for rate in self.rates)
        self._jittered = self.algorithm in ("approx", "fixed")
        self._static_args: tuple[int, ...] = tuple(
            arg
            for rate in self.rates
            for arg in (
                (rate.limit, rate.window_us, burst or rate.limit)
                if self.algorithm == "gcra"
                else (rate.limit, rate.window_us)
            )
        )
        self._reply_len = 1 + 3 * len(self.rates)
        #: (reply index of the rate's first value, rate)
        self._reply_slots = tuple(zip(range(1, self._reply_len, 3), self.rates, strict=True))

    def __repr__(self) -> str:
        rates = ";".join(map(str, self.rates))
        return f"<RateLimiter {rates} {self.algorithm} alias={self.alias!r}>"

    # --- public API ------------------------------------------------------------------------------

    def hit(self, scope: str, ident: str, *, cost: int = 1, now: float | None = None) -> Decision:
        """Decide on one request of ``cost`` units and, if every rate admits it, consume them.

        ``now`` (seconds) replaces the Redis server's clock; leave it None in production.
        """
        return metrics.throttle_decision(scope, self._decide(scope, ident, cost, now, consume=True))

    async def ahit(
        self, scope: str, ident: str, *, cost: int = 1, now: float | None = None
    ) -> Decision:
        """:meth:`hit` on the running event loop (``redis.asyncio``, no thread)."""
        return await self._adecide(scope, ident, cost, now, consume=True)

    def peek(self, scope: str, ident: str, *, cost: int = 1, now: float | None = None) -> Decision:
        """What ``hit`` would decide, without consuming anything."""
        return self._decide(scope, ident, cost, now, consume=False)

    async def apeek(
        self, scope: str, ident: str, *, cost: int = 1, now: float | None = None
    ) -> Decision:
        """:meth:`peek` on the running event loop."""
        return await self._adecide(scope, ident, cost, now, consume=False)

    def reset(self, scope: str, ident: str) -> int:
        """Forget the identity's history for this limiter's rates; returns the keys deleted.

        Unlike decisions this raises on a Redis failure: it is an administrative action.
        """
        channel = _channel(self.alias)
        return int(channel.client.delete(*self._keys(channel, scope, ident)))

    def keys(self, scope: str, ident: str) -> list[str]:
        """The Redis keys of an identity, one per rate, all in one cluster slot.

        ``<prefix>:rl:{<scope>:<ident digest>}:<algorithm letter>:<window seconds>``
        """
        return self._keys(_channel(self.alias), scope, ident)

    # --- internals -------------------------------------------------------------------------------

    def _keys(self, channel: _Channel, scope: str, ident: str) -> list[str]:
        if not isinstance(scope, str) or not _SCOPE.match(scope):
            raise ValueError(f"Throttle scope {scope!r} must match {_SCOPE.pattern}.")
        if not isinstance(ident, str):
            raise TypeError(f"Throttle identity must be a string, not {type(ident).__name__}.")
        stem = f"{channel.key_stem}{{{scope}:{ident_digest(ident)}}}"
        return [stem + suffix for suffix in self._suffixes]

    def _rate_args(self, keys: list[str]) -> Sequence[int]:
        if not self._jittered:
            return self._static_args
        args: list[int] = []
        for key, rate in zip(keys, self.rates, strict=True):
            args += (rate.limit, rate.window_us, _jitter(key, rate.window_us))
        return args

    def _request(
        self, scope: str, ident: str, cost: int, now: float | None, consume: bool
    ) -> tuple[_Channel, list[str], tuple[Any, ...]]:
        """What one decision sends (the same for the sync and the async call)."""
        if isinstance(cost, bool) or not isinstance(cost, int) or not 1 <= cost <= self._max_cost:
            raise ValueError(f"cost must be an integer from 1 to {self._max_cost}, not {cost!r}.")
        channel = _channel(self.alias)
        keys = self._keys(channel, scope, ident)
        args = (
            "1" if consume else "0",
            cost,
            "" if now is None else int(now * _US),
            self._option,
            *self._rate_args(keys),
        )
        return channel, keys, args

    def _decide(
        self, scope: str, ident: str, cost: int, now: float | None, *, consume: bool
    ) -> Decision:
        channel, keys, args = self._request(scope, ident, cost, now, consume)
        try:
            channel.breaker.before_call()
            reply = _run(self._script, channel, keys, args)
        except Exception as exc:
            return self._failed(channel, scope, exc)
        return self._decided(channel, scope, reply)

    async def _adecide(
        self, scope: str, ident: str, cost: int, now: float | None, *, consume: bool
    ) -> Decision:
        channel, keys, args = self._request(scope, ident, cost, now, consume)
        try:
            channel.breaker.before_call()
            client = async_topology(channel.topology).client(write=True)
            reply = await self._script.acall(keys, args, client)
        except Exception as exc:
            return self._failed(channel, scope, exc)
        return self._decided(channel, scope, reply)

    def _decided(self, channel: _Channel, scope: str, reply: Any) -> Decision:
        """The script's reply as a Decision (a malformed one gets the failure policy)."""
        try:
            decision = self._parse(reply)
        except _ANSWERED_WRONGLY as exc:
            return self._failed(channel, scope, exc)
        channel.breaker.record_success()
        return decision

    def _failed(self, channel: _Channel, scope: str, exc: Exception) -> Decision:
        """Classify a decision's error: raise bugs, give outages the fail-open/closed decision."""
        if isinstance(exc, AuthenticationError):
            record_answer(channel.breaker)
            raise exc  # configuration, not data: every feature raises it
        if isinstance(exc, _ANSWERED_WRONGLY):
            # Foreign data in a throttle key (WRONGTYPE), a malformed reply: Redis answered, so
            # the breaker is not involved; the request still gets the fail policy, not a 500.
            record_answer(channel.breaker, exc)
            return self._on_failure(channel, scope, exc)
        cause = outage_of(exc)
        if cause is None:
            record_answer(channel.breaker, exc)
            raise exc
        record_outage(channel.breaker, cause)
        return self._on_failure(channel, scope, cause)

    def _parse(self, reply: Any) -> Decision:
        """Turn the script's integers into a Decision, checking their shape (never trust Redis)."""
        if not isinstance(reply, list) or len(reply) != self._reply_len:
            raise ValueError(f"unexpected throttle script reply {reply!r:.200}")
        allowed = int(reply[0]) == 1
        statuses = tuple(
            [
                RateStatus(rate, int(reply[i]), int(reply[i + 1]) / _US, int(reply[i + 2]) / _US)
                for i, rate in self._reply_slots
            ]
        )
        if allowed:
            return Decision(True, statuses, 0.0)
        return Decision(False, statuses, max(status.retry_after for status in statuses))

    def _on_failure(self, channel: _Channel, scope: str, exc: BaseException) -> Decision:
        """The fail-open / fail-closed decision for an outage (already counted by the breaker)."""
        channel.log(
            f"throttle[{scope}]",
            exc,
            "request admitted (fail open)" if self.fail_open else "request refused (fail closed)",
        )
        throttle_backend_failure.send(
            sender=type(self),
            alias=self.alias,
            scope=scope,
            exception=exc,
            fail_open=self.fail_open,
        )
        return Decision(
            allowed=self.fail_open,
            statuses=(),
            retry_after=0.0 if self.fail_open else channel.retry_after,
            degraded=True,
        )


@functools.lru_cache(maxsize=256)
def shared_limiter(
    rates: str | tuple[Rate, ...],
    algorithm: str | None = None,
    alias: str | None = None,
    fail_open: bool | None = None,
) -> RateLimiter:
    """The limiter of a configuration, built once per process (until settings change).

    DRF builds its throttles anew for every request, and ``@ratelimit`` and the middleware
    decide per request too: building a ``RateLimiter`` (settings, validation, constant script
    arguments) on each would cost more than deciding. Do not mutate the limiter returned. Pass
    the arguments by position: keywords make every cache look-up slower.
    """
    return RateLimiter(rates, algorithm=algorithm, alias=alias, fail_open=fail_open)
