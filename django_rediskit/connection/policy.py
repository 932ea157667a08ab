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
import functools
import inspect
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from django_redis.exceptions import ConnectionInterrupted
from redis.exceptions import AuthenticationError, ReadOnlyError, RedisError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

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

    def __init__(self, failure_threshold: int = 2, recovery_time: float = 5.0) -> None:
        if failure_threshold < 1 or recovery_time <= 0:
            raise ValueError("failure_threshold must be >= 1 and recovery_time > 0")
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


def record_outage(breaker: CircuitBreaker, cause: BaseException) -> None:
    """Count ``cause`` against ``breaker`` once per outermost guarded call."""
    if isinstance(cause, CircuitOpen) or (_calls.depth and _calls.failed):
        return
    breaker.record_failure()
    if _calls.depth:
        _calls.failed = True


def record_answer(breaker: CircuitBreaker, exc: BaseException | None = None) -> None:
    """The server answered (maybe with an error): reachable. A non-Redis exception says
    nothing about reachability and only releases a half-open probe."""
    if exc is None or isinstance(exc, RedisError):
        breaker.record_success()
    else:
        breaker.release_probe()


@contextlib.contextmanager
def shielded(breaker: CircuitBreaker) -> Iterator[None]:
    """Run a block of Redis I/O under ``breaker``: refused at once while it is open (CircuitOpen);
    outages recorded (once per outer call) and re-raised as :class:`RedisUnavailable`; answers
    recorded; bugs (``AuthenticationError`` included) raised unchanged. Callers choose the
    fallback with ``except RedisUnavailable``; the cache uses :func:`guarded` instead."""
    breaker.before_call()
    if _calls.depth == 0:
        _calls.failed = False
    _calls.depth += 1
    try:
        yield
    except BaseException as exc:
        cause = outage_of(exc)
        if cause is None:
            record_answer(breaker, exc)
            raise
        record_outage(breaker, cause)
        if isinstance(exc, RedisUnavailable):
            raise
        raise RedisUnavailable(f"Redis unavailable: {type(cause).__name__}: {cause}") from exc
    else:
        if not _calls.failed:
            record_answer(breaker)
    finally:
        _calls.depth -= 1


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
        breaker = CircuitBreaker(failure_threshold=2**31, recovery_time=1.0)
    else:
        breaker = CircuitBreaker(
            failure_threshold=int(breaker_conf.get("FAILURE_THRESHOLD", 2)),
            recovery_time=float(breaker_conf.get("RECOVERY_TIME", 5.0)),
        )
    fresh = AliasPolicy(breaker, ThrottledLog(float(options.get("LOG_INTERVAL", 10.0))))
    with _policies_lock:
        return _policies.setdefault(scope, fresh)


def forget_policies() -> None:
    """Drop every alias's breaker and log (tests that repoint aliases)."""
    with _policies_lock:
        _policies.clear()


class _Guarded:
    """Marker so tests can prove that every public method is wrapped."""


def guarded(miss: Any = None) -> Callable[[F], F]:
    """Apply the owning cache's exception policy to a method; ``miss`` is returned when muted.

    ``miss`` may be a callable taking the call's bound arguments (e.g. ``set_many`` returns the
    list of keys it failed to write). Generator methods are guarded while they are iterated.
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

        def handle(self: Any, exc: BaseException, args: tuple[Any, ...], kw: dict[str, Any]) -> Any:
            cause = outage_of(exc)
            if cause is None:
                record_answer(self._breaker, exc)
                raise exc
            record_outage(self._breaker, cause)
            self._stats.errors += 1
            if self._mute_outages:
                self._log_ignored(f"cache.{name}", cause)
                return muted_value((self, *args), kw)
            if cause is exc:
                raise exc
            raise cause from exc

        if inspect.isgeneratorfunction(method):

            @functools.wraps(method)
            def generator_wrapper(self: Any, *args: Any, **kwargs: Any) -> Iterator[Any]:
                try:
                    self._breaker.before_call()
                    yield from method(self, *args, **kwargs)
                    self._breaker.record_success()
                except Exception as exc:
                    handle(self, exc, args, kwargs)
                finally:
                    # An abandoned generator must not keep the half-open probe forever.
                    self._breaker.release_probe()

            wrapper: Any = generator_wrapper
        else:

            @functools.wraps(method)
            def call_wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
                if _calls.depth == 0:
                    _calls.failed = False
                _calls.depth += 1
                try:
                    self._breaker.before_call()
                    result = method(self, *args, **kwargs)
                except Exception as exc:
                    return handle(self, exc, args, kwargs)
                finally:
                    _calls.depth -= 1
                if not _calls.failed:  # a muted nested outage is not undone by the outer return
                    self._breaker.record_success()
                return result

            wrapper = call_wrapper
        wrapper.__rediskit_guarded__ = _Guarded
        return cast(F, wrapper)

    return decorate


def is_guarded(method: Any) -> bool:
    return getattr(method, "__rediskit_guarded__", None) is _Guarded
