"""The steps a cache command yields, and the sync driver that sends them.

A command of :mod:`~django_rediskit.cache.client` is a generator: it yields one step per round
trip (a call, a pipeline, a script, a multi-key call the topology splits per node, a pause) and
receives each reply. :func:`run` sends steps with redis-py; ``cache/aio.py`` has the asyncio
driver. Keeping the vocabulary here, apart from the commands, lets both drivers and every
command share it without importing each other.
"""

from __future__ import annotations

import time
from collections.abc import Generator, Iterable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeVar

from django_rediskit.cache import tags as tagging
from django_rediskit.lua import LuaScript, run_pipeline

if TYPE_CHECKING:
    from redis.client import Pipeline

    from django_rediskit.connection.topology import Topology

T = TypeVar("T")


# Steps are small slotted classes: one is built for every command sent, so they must be cheap
# (a NamedTuple or a frozen dataclass costs about twice as much to construct). Treat them as
# immutable.

_NO_KWARGS: Mapping[str, Any] = MappingProxyType({})


class Call:
    """One redis-py command method, e.g. ``Call("get", (key,))``."""

    __slots__ = ("args", "kwargs", "method", "write")

    def __init__(
        self,
        method: str,
        args: tuple[Any, ...] = (),
        kwargs: Mapping[str, Any] = _NO_KWARGS,
        write: bool = False,
    ) -> None:
        self.method = method
        self.args = args
        self.kwargs = kwargs
        self.write = write


class Lua:
    """One script call (EVALSHA, EVAL again if the server lost it)."""

    __slots__ = ("args", "keys", "script", "write")

    def __init__(
        self, script: LuaScript, keys: tuple[Any, ...], args: tuple[Any, ...] = ()
    ) -> None:
        self.script = script
        self.keys = keys
        self.args = args
        self.write = True


class Pipe:
    """A non-transactional pipeline of calls and scripts: one round trip, a list of replies."""

    __slots__ = ("steps", "write")

    def __init__(self, steps: tuple[Call | Lua, ...], write: bool = True) -> None:
        self.steps = steps
        self.write = write


class Spread:
    """A multi-key ``mget`` or ``unlink`` that the topology splits per node (Cluster)."""

    __slots__ = ("keys", "method", "write")

    def __init__(self, method: str, keys: tuple[Any, ...], write: bool = False) -> None:
        self.method = method
        self.keys = keys
        self.write = write


class Pause:
    """Wait (the stampede loop's backoff, retries): ``time.sleep`` or ``asyncio.sleep``."""

    __slots__ = ("seconds",)

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds


Step = Call | Lua | Pipe | Spread | Pause
#: A command: yields steps, receives their replies, returns its result.
Op = Generator[Step, Any, T]


def run(op: Op[T], topology: Topology, client: Any = None) -> T:
    """Drive ``op`` on the sync topology (or on ``client``, a caller's client or pipeline).

    A step's error is thrown into the command, which handles it or lets it propagate. Plain
    calls are executed inline: this loop is on the path of every cache call.
    """
    send = op.send
    try:
        step = send(None)
        while True:
            try:
                if type(step) is Call:
                    target = client if client is not None else topology.client(step.write)
                    reply = getattr(target, step.method)(*step.args, **step.kwargs)
                else:
                    reply = execute(step, topology, client)
            except Exception as exc:  # handed to the command, which decides
                step = op.throw(exc)
                continue
            step = send(reply)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


def execute(step: Step, topology: Topology, client: Any = None) -> Any:
    """One step on a sync redis-py client."""
    if isinstance(step, Call):
        target = client if client is not None else topology.client(step.write)
        return getattr(target, step.method)(*step.args, **step.kwargs)
    if isinstance(step, Lua):
        target = client if client is not None else topology.client(step.write)
        return step.script(step.keys, step.args, client=target)
    if isinstance(step, Pipe):
        target = client if client is not None else topology.client(step.write)
        return run_pipeline(target, lambda pipe: queue(pipe, step.steps))
    if isinstance(step, Spread):
        if step.method == "mget":
            if client is None:
                return topology.mget(step.keys, write=step.write)
            return tagging.mget(client, step.keys)
        if client is None:
            return topology.unlink(step.keys)
        return client.unlink(*step.keys)
    time.sleep(step.seconds)
    return None


def queue(pipe: Pipeline, steps: Iterable[Call | Lua]) -> None:
    """Add steps to a pipeline (sync or async: both queue synchronously)."""
    for step in steps:
        if isinstance(step, Lua):
            step.script.queue(pipe, step.keys, step.args)
        else:
            getattr(pipe, step.method)(*step.args, **step.kwargs)
