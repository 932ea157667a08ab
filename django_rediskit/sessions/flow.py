"""Session operations written once, as generators, and driven on either side of ``await``.

The engine and the device API are written as generators (``SessionOp``) that *yield* what they
need done and receive the result, as the cache client's commands do (``cache/client.py``):

- :class:`Io` -- one block of Redis I/O: a cache-client command (a generator of ``Call`` /
  ``Lua`` / ``Pipe`` steps, each step one round trip) or a single step, run under the alias's
  failure policy (``shielded`` / ``ashielded``). Its result is sent back; an outage is thrown in
  as ``RedisUnavailable``, any other error as itself, so the operation decides the fallback at
  the point where the sync code used to catch it.
- :class:`Emit` -- a signal: ``send`` on the sync side; ``asend`` on the async side (async
  receivers are awaited on the loop; Django runs *sync* receivers in a thread there).
- :class:`Hop` -- a call into another library that has both colours (the legacy cache alias's
  ``get`` / ``aget``).

:func:`drive` runs an operation on redis-py, :func:`adrive` on ``redis.asyncio`` (the running
loop's clients, ``connection/aio.py``). Nothing else differs, so the two can never drift.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator
from typing import TYPE_CHECKING, Any, TypeVar

from django.dispatch import Signal

from django_rediskit.cache.aio import aexecute, arun
from django_rediskit.cache.steps import Call, Lua, Op, Pipe, execute, run
from django_rediskit.connection.aio import async_topology
from django_rediskit.connection.policy import ashielded, shielded

if TYPE_CHECKING:
    from django_rediskit.cache.backend import RedisCache

T = TypeVar("T")


class Io:
    """A block of Redis I/O on ``backend``'s topology: a command generator or one step."""

    __slots__ = ("backend", "work")

    def __init__(self, backend: RedisCache, work: Op[Any] | Call | Lua | Pipe) -> None:
        self.backend = backend
        self.work = work


class Emit:
    """A signal to send, with its keyword arguments (``sender`` included)."""

    __slots__ = ("kwargs", "signal")

    def __init__(self, signal: Signal, **kwargs: Any) -> None:
        self.signal = signal
        self.kwargs = kwargs


class Hop:
    """A call into a dependency that offers a sync and an async method for it."""

    __slots__ = ("args", "async_call", "sync_call")

    def __init__(
        self,
        sync_call: Callable[..., Any],
        async_call: Callable[..., Awaitable[Any]],
        *args: Any,
    ) -> None:
        self.sync_call = sync_call
        self.async_call = async_call
        self.args = args


Want = Io | Emit | Hop
#: A session operation: yields what it wants done, receives the results, returns its own.
SessionOp = Generator[Want, Any, T]


def drive(op: SessionOp[T]) -> T:
    """Run ``op`` on redis-py (the sync engine and device API)."""
    try:
        want = op.send(None)
        while True:
            try:
                reply = _do(want)
            except Exception as exc:  # handed to the operation, which decides
                want = op.throw(exc)
                continue
            want = op.send(reply)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


def _do(want: Want) -> Any:
    if isinstance(want, Io):
        topology = want.backend.topology
        with shielded(want.backend.breaker):
            if isinstance(want.work, Generator):
                return run(want.work, topology)
            return execute(want.work, topology)
    if isinstance(want, Emit):
        return want.signal.send(**want.kwargs)
    return want.sync_call(*want.args)


async def adrive(op: SessionOp[T]) -> T:
    """Run ``op`` on the running event loop's ``redis.asyncio`` clients: no thread."""
    try:
        want = op.send(None)
        while True:
            try:
                reply = await _ado(want)
            except Exception as exc:  # handed to the operation, which decides
                want = op.throw(exc)
                continue
            want = op.send(reply)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


async def _ado(want: Want) -> Any:
    if isinstance(want, Io):
        async with ashielded(want.backend.breaker):
            topology = async_topology(want.backend.topology)
            if isinstance(want.work, Generator):
                return await arun(want.work, topology)
            return await aexecute(want.work, topology)
    if isinstance(want, Emit):
        return await want.signal.asend(**want.kwargs)
    return await want.async_call(*want.args)


def call(method: str, *args: Any, **kwargs: Any) -> Call:
    """A command step on the primary (sessions never read from replicas: a read after a
    write must see it)."""
    return Call(method, args, kwargs, write=True)
