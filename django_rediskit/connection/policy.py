"""The one failure policy of the kit: what counts as an outage, the breaker, the log.

Every feature (cache, sessions, throttles, inspector, queues) classifies errors with
:func:`outage_of`, shares the alias's :class:`CircuitBreaker` and its rate-limited log
(:func:`alias_policy`), and reports calls through :func:`shielded` or :func:`guarded`:

- **Outages** are connection errors and timeouts (and READONLY from a demoted primary after a
  failover): they count towards the breaker, and the caller's documented fallback applies
  (muted cache miss, anonymous session, throttle fail-open / fail-closed).
- **Bugs** always raise: ``AuthenticationError`` (a wrong password is configuration, and redis-py
  makes it a ``ConnectionError`` subclass, hence the explicit check), WRONGTYPE, script and other
  response errors. The server answered, so they count as a success for the breaker.
- **Nesting is counted once**: a guarded call that makes other guarded calls (``get_or_set`` calls
  ``get``, ``decr`` calls ``incr``) records at most one breaker failure, whatever fails inside.

django-redis mutes errors only in the methods that happen to convert them (half of them), mutes
WRONGTYPE errors along with outages, and lets a dead server cost a full connect timeout on every
call. Here one guard wraps every public method (generators included); while the breaker is open
calls fail in microseconds without touching the network.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import inspect
import logging
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from django_redis.exceptions import ConnectionInterrupted
from redis.exceptions import AuthenticationError, ReadOnlyError, RedisError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from django_rediskit.metrics import events as _metrics

logger = logging.getLogger("django_rediskit")

#: Failures that mean "Redis is unreachable or too slow", never "your command was wrong".
OUTAGE_ERRORS: tuple[type[BaseException], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    socket.timeout,
    ConnectionRefusedError,
    ReadOnlyError,
)

F = TypeVar("F", bound=Callable[..., Any])


class RedisUnavailable(RedisConnectionError):
    """An outage, as :func:`shielded` re-raises it (the original error is its ``__cause__``).

    A ``ConnectionError`` like the outage itself, so code that catches redis-py's errors keeps
    working; but ``except RedisUnavailable`` cannot catch ``AuthenticationError``, which redis-py
    also derives from ``ConnectionError`` and which is a configuration bug, never an outage.
    """


class CircuitOpen(RedisUnavailable):
    """Raised without any I/O while the breaker is open after repeated connection failures."""


class CircuitBreaker:
    """Consecutive-failure breaker with a half-open probe.

    After ``failure_threshold`` outage errors in a row the circuit opens: calls fail at once for
    ``recovery_time`` seconds. Then one caller is let through as a probe; its success closes the
    circuit, its failure re-opens it. State is per connection pool, shared by every thread.
    """

    def __init__(
        self, failure_threshold: int = 2, recovery_time: float = 5.0, alias: str = ""
    ) -> None:
        if failure_threshold < 1 or recovery_time <= 0:
            raise ValueError("failure_threshold must be >= 1 and recovery_time > 0")
        self.alias = alias  # the metrics label of its state changes
        self.failure_threshold = failure_threshold
        self.recovery_time = recovery_time
        self._failures = 0
        self._open_until = 0.0
        self._prober: int | None = None  # thread id of the half-open probe, if one is running
        self._lock = threading.Lock()

    @property
    def is_open(self) -> bool:
        return self._failures >= self.failure_threshold

    @property
    def failures(self) -> int:
        """Consecutive outage failures recorded so far (0 after any success)."""
        return self._failures

    def before_call(self) -> None:
        """Raise CircuitOpen unless this call may reach Redis.

        The probe's own thread may make nested calls (``get_or_set`` calls ``get``...): they
        are part of the probe, not competitors for it.
        """
        if self._failures < self.failure_threshold:
            return
        now = time.monotonic()
        me = threading.get_ident()
        with self._lock:
            if self._prober == me:
                return
            if now < self._open_until or self._prober is not None:
                raise CircuitOpen("Redis circuit breaker is open after repeated connection errors.")
            self._prober = me

    def record_success(self) -> None:
        if self._failures:
            with self._lock:
                if self.is_open:
                    _metrics.breaker_changed(self.alias, False)
                self._failures = 0
                self._prober = None

    def release_probe(self) -> None:
        """This thread's call ended for a reason that says nothing about reachability."""
        if self._prober == threading.get_ident():
            with self._lock:
                self._prober = None

    def record_failure(self) -> None:
        with self._lock:
            self._failures += 1
            self._prober = None
            if self._failures >= self.failure_threshold:
                self._open_until = time.monotonic() + self.recovery_time
                if self._failures == self.failure_threshold:
                    _metrics.breaker_changed(self.alias, True)


class ThrottledLog:
    """Logs an outage at most once per interval, so an outage cannot flood the logs.

    ``outcome`` says what the caller did about it ("ignored", "admitted (fail open)"...).
    """

    def __init__(
        self, interval: float = 10.0, log: logging.Logger = logger, outcome: str = "ignored"
    ) -> None:
        self.interval = interval
        self.log = log
        self.outcome = outcome
        self._next = 0.0
        self.suppressed = 0

    def __call__(self, where: str, exc: BaseException, outcome: str | None = None) -> None:
        now = time.monotonic()
        if now < self._next:
            self.suppressed += 1
            return
        self._next = now + self.interval
        self.log.warning(
            "Redis unavailable in %s (%s: %s); %s%s.",
            where,
            type(exc).__name__,
            exc,
            outcome or self.outcome,
            f", {self.suppressed} more since last report" if self.suppressed else "",
        )
        self.suppressed = 0


class ComputedDuringOutage(RedisUnavailable):
    """An outage after a value was computed (``get_or_set`` storing it): a muted cache returns
    :attr:`value` rather than computing it a second time; the outage is the ``__cause__``."""

    def __init__(self, value: Any) -> None:
        super().__init__("Redis unavailable after the value was computed")
        self.value = value


def outage_of(exc: BaseException) -> BaseException | None:
    """The outage behind ``exc`` (unwrapping django-redis's ConnectionInterrupted), or None
    when ``exc`` is a bug to raise. The one classification every feature uses."""
    if isinstance(exc, ConnectionInterrupted):
        exc = exc.__cause__ or exc
    if isinstance(exc, AuthenticationError):
        return None  # a configuration error, never muted (redis-py: a ConnectionError subclass)
    return exc if isinstance(exc, OUTAGE_ERRORS) else None


class _CallState(threading.local):
    """Per thread: how deep in guarded calls we are, and whether the outermost one has
    already recorded a breaker failure (so nesting counts one failure per outer call)."""

    depth = 0
    failed = False


_calls = _CallState()


def record_outage(
    breaker: CircuitBreaker, cause: BaseException, state: _CallState | _TaskState | None = None
) -> None:
    """Count ``cause`` against ``breaker`` once per outermost guarded call."""
    calls = _calls if state is None else state
    if isinstance(cause, CircuitOpen) or (calls.depth and calls.failed):
        return
    breaker.record_failure()
    if calls.depth:
        calls.failed = True


class _TaskState:
    """The same bookkeeping for coroutines: asyncio tasks interleave on one thread, so their
    nesting lives in a context variable (each task runs in its own copy of the context)."""

    __slots__ = ("depth", "failed")

    def __init__(self) -> None:
        self.depth = 0
        self.failed = False


_task_calls: contextvars.ContextVar[_TaskState | None] = contextvars.ContextVar(
    "rediskit_guarded_calls", default=None
)


def record_answer(breaker: CircuitBreaker, exc: BaseException | None = None) -> None:
    """The server answered (maybe with an error): reachable. A non-Redis exception says
    nothing about reachability and only releases a half-open probe."""
    if exc is None or isinstance(exc, RedisError):
        breaker.record_success()
    else:
        breaker.release_probe()


class _Shield:
    """What :func:`shielded` and :func:`ashielded` share: the whole enter/exit logic. They only
    differ in where the nesting state lives (the thread, or the asyncio task)."""

    __slots__ = ("_breaker", "_state", "_token")

    def __init__(self, breaker: CircuitBreaker) -> None:
        self._breaker = breaker
        self._state: _CallState | _TaskState = _calls
        self._token: contextvars.Token[_TaskState | None] | None = None

    def _enter(self) -> None:
        self._breaker.before_call()
        state = self._state
        if state.depth == 0:
            state.failed = False
        state.depth += 1

    def _exit(self, exc: BaseException | None) -> None:
        """Record the block's outcome; raise the RedisUnavailable that replaces an outage
        (returning lets the protocol re-raise ``exc`` unchanged)."""
        state, breaker = self._state, self._breaker
        try:
            if exc is None:
                if not state.failed:
                    record_answer(breaker)
                return
            cause = outage_of(exc)
            if cause is None:
                record_answer(breaker, exc)
                return
            record_outage(breaker, cause, state)
            if not isinstance(exc, RedisUnavailable):
                raise RedisUnavailable(
                    f"Redis unavailable: {type(cause).__name__}: {cause}"
                ) from exc
        finally:
            state.depth -= 1


class _SyncShield(_Shield):
    __slots__ = ()

    def __enter__(self) -> None:
        self._enter()

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> None:
        self._exit(exc)


class _AsyncShield(_Shield):
    __slots__ = ()

    async def __aenter__(self) -> None:
        state = _task_calls.get()
        if state is None:
            state = _TaskState()
            self._token = _task_calls.set(state)
        self._state = state
        try:
            self._enter()
        except BaseException:
            self._reset()
            raise

    async def __aexit__(self, kind: object, exc: BaseException | None, tb: object) -> None:
        try:
            self._exit(exc)
        finally:
            self._reset()

    def _reset(self) -> None:
        if self._token is not None:
            _task_calls.reset(self._token)
            self._token = None


def shielded(breaker: CircuitBreaker) -> contextlib.AbstractContextManager[None]:
    """Run a block of Redis I/O under ``breaker``: refused at once while it is open (CircuitOpen);
    outages recorded (once per outer call) and re-raised as :class:`RedisUnavailable`; answers
    recorded; bugs (``AuthenticationError`` included) raised unchanged. Callers choose the
    fallback with ``except RedisUnavailable``; the cache uses :func:`guarded` instead."""
    return _SyncShield(breaker)


def ashielded(breaker: CircuitBreaker) -> contextlib.AbstractAsyncContextManager[None]:
    """:func:`shielded` for a block of ``redis.asyncio`` I/O (``async with``): the same policy,
    its nesting counted per asyncio task (tasks interleave on one thread)."""
    return _AsyncShield(breaker)


@dataclass(frozen=True)
class AliasPolicy:
    """What every feature of one alias shares in a process: the breaker and the outage log."""

    breaker: CircuitBreaker
    log: ThrottledLog


_policies: dict[str, AliasPolicy] = {}
_policies_lock = threading.Lock()


def alias_policy(scope: str, options: Mapping[str, Any] | None = None) -> AliasPolicy:
    """The policy of a cache scope (alias), built from its OPTIONS on first use.

    ``CIRCUIT_BREAKER``: ``{"FAILURE_THRESHOLD": 2, "RECOVERY_TIME": 5.0}`` or False;
    ``LOG_INTERVAL``: seconds between two outage log lines.
    """
    policy = _policies.get(scope)
    if policy is not None:
        return policy
    options = options or {}
    breaker_conf = options.get("CIRCUIT_BREAKER", {})
    if breaker_conf is False:
        breaker = CircuitBreaker(failure_threshold=2**31, recovery_time=1.0, alias=scope)
    else:
        breaker = CircuitBreaker(
            failure_threshold=int(breaker_conf.get("FAILURE_THRESHOLD", 2)),
            recovery_time=float(breaker_conf.get("RECOVERY_TIME", 5.0)),
            alias=scope,
        )
    fresh = AliasPolicy(breaker, ThrottledLog(float(options.get("LOG_INTERVAL", 10.0))))
    with _policies_lock:
        return _policies.setdefault(scope, fresh)


def forget_policies() -> None:
    """Drop every alias's breaker and log (tests that repoint aliases)."""
    with _policies_lock:
        _policies.clear()


def close_breakers() -> None:
    """Close every alias's breaker now (after an outage known to be over: a test's restarted
    server, an operator's repair), instead of waiting for the next probe."""
    with _policies_lock:
        policies = list(_policies.values())
    for policy in policies:
        policy.breaker.record_success()


class _Guarded:
    """Marker so tests can prove that every public method is wrapped."""


def guarded(miss: Any = None) -> Callable[[F], F]:
    """Apply the owning cache's exception policy to a method; ``miss`` is returned when muted.

    ``miss`` may be a callable taking the call's bound arguments (e.g. ``set_many`` returns the
    list of keys it failed to write). Generator methods (sync and async) are guarded while they
    are iterated; coroutine methods (the async twins) while they are awaited, with their nesting
    tracked per asyncio task.
    """

    def decorate(method: F) -> F:
        name = method.__name__
        signature = inspect.signature(method)

        def muted_value(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            if isinstance(miss, type):  # dict, list: a fresh empty value, not dict(arguments)
                return miss()
            if callable(miss):
                bound = signature.bind(*args, **kwargs)
                bound.apply_defaults()
                return miss(bound.arguments)
            return miss

        def handle(
            self: Any,
            exc: BaseException,
            args: tuple[Any, ...],
            kw: dict[str, Any],
            state: _TaskState | None = None,
        ) -> Any:
            computed = exc if isinstance(exc, ComputedDuringOutage) else None
            if computed is not None and computed.__cause__ is not None:
                exc = computed.__cause__
            cause = outage_of(exc)
            if cause is None:
                record_answer(self.breaker, exc)
                raise exc
            record_outage(self.breaker, cause, state)
            self.stats.errors += 1
            _metrics.cache_error(self, name, cause)
            if self.mute_outages:
                self.outage_log(f"cache.{name}", cause)
                if computed is not None:
                    return computed.value
                return muted_value((self, *args), kw)
            if cause is exc:
                raise exc
            raise cause from exc

        if inspect.isgeneratorfunction(method):

            @functools.wraps(method)
            def generator_wrapper(self: Any, *args: Any, **kwargs: Any) -> Iterator[Any]:
                try:
                    self.breaker.before_call()
                    yield from method(self, *args, **kwargs)
                    self.breaker.record_success()
                except Exception as exc:
                    handle(self, exc, args, kwargs)
                finally:
                    # An abandoned generator must not keep the half-open probe forever.
                    self.breaker.release_probe()

            wrapper: Any = generator_wrapper
        elif inspect.isasyncgenfunction(method):

            @functools.wraps(method)
            async def async_generator_wrapper(
                self: Any, *args: Any, **kwargs: Any
            ) -> AsyncIterator[Any]:
                # An async iteration is not nested in the task's other calls: its own state.
                try:
                    self.breaker.before_call()
                    async for item in method(self, *args, **kwargs):
                        yield item
                    self.breaker.record_success()
                except Exception as exc:
                    handle(self, exc, args, kwargs, _TaskState())
                finally:
                    self.breaker.release_probe()

            wrapper = async_generator_wrapper
        elif inspect.iscoroutinefunction(method):

            @functools.wraps(method)
            async def coroutine_wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
                state = _task_calls.get()
                token = None
                if state is None:
                    state = _TaskState()
                    token = _task_calls.set(state)
                state.depth += 1
                breaker = self.breaker
                started = _metrics.cache_started() if _metrics.ENABLED else None
                try:
                    breaker.before_call()
                    result = await method(self, *args, **kwargs)
                except Exception as exc:
                    return handle(self, exc, args, kwargs, state)
                finally:
                    state.depth -= 1
                    if started is not None:
                        _metrics.cache_finished(self, name, started, args, kwargs)
                    if token is not None:
                        _task_calls.reset(token)
                if not state.failed:
                    breaker.record_success()
                return result

            wrapper = coroutine_wrapper
        else:

            @functools.wraps(method)
            def call_wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
                # On every cache call: the thread-local state is read once per field.
                state = _calls
                depth = state.depth
                if depth == 0:
                    state.failed = False
                state.depth = depth + 1
                breaker = self.breaker
                started = _metrics.cache_started() if _metrics.ENABLED else None
                try:
                    breaker.before_call()
                    result = method(self, *args, **kwargs)
                except Exception as exc:
                    return handle(self, exc, args, kwargs)
                finally:
                    state.depth = depth
                    if started is not None:
                        _metrics.cache_finished(self, name, started, args, kwargs)
                if not state.failed:  # a muted nested outage is not undone by the outer return
                    breaker.record_success()
                return result

            wrapper = call_wrapper
        wrapper.__rediskit_guarded__ = _Guarded
        return cast(F, wrapper)

    return decorate


def is_guarded(method: Any) -> bool:
    return getattr(method, "__rediskit_guarded__", None) is _Guarded
