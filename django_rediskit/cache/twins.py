"""django-redis's collection and key commands, each written once with a sync method and its twin.

A hash, list, set, sorted-set or expiry command builds a key, encodes members, sends one Redis
command and decodes the reply. Written as a generator of steps (``cache/steps.py``), as the
contract commands of ``cache/client.py`` are, one definition gives two methods: ``hset`` drives
the steps with the sync driver on redis-py, ``ahset`` with :func:`~django_rediskit.cache.aio.arun`
on the running loop's ``redis.asyncio`` clients. Argument checks, encoding and decoding cannot
drift apart between the two, and both are under the same failure policy
(:func:`~django_rediskit.connection.policy.guarded`, with the same muted value).

``client=`` (django-redis's: a caller's own client, e.g. one from ``get_redis_connection``) is
taken by the driver, never by the steps: a sync client for the sync method, a ``redis.asyncio``
one for the twin.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Coroutine
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar

from django_rediskit.cache.aio import arun
from django_rediskit.cache.steps import Op, run
from django_rediskit.connection.aio import async_topology
from django_rediskit.connection.policy import guarded

P = ParamSpec("P")
T = TypeVar("T")

_Split = Callable[[tuple[Any, ...], dict[str, Any]], tuple[tuple[Any, ...], Any]]


def _client_splitter(op: Callable[..., Any]) -> _Split:
    """A function taking ``client`` out of a call's arguments (by keyword or by position),
    leaving None in its place so the steps never see it."""
    parameters = inspect.signature(op).parameters
    names = list(parameters)[1:]  # without self
    position = names.index("client") if "client" in names else None
    if position is not None and any(
        parameters[name].kind is inspect.Parameter.VAR_POSITIONAL for name in names[:position]
    ):
        position = None  # after *values: keyword only

    def split(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[tuple[Any, ...], Any]:
        client = kwargs.pop("client", None)
        if position is not None and len(args) > position:
            client = args[position]
            args = (*args[:position], None, *args[position + 1 :])
        return args, client

    return split


class Twin(Generic[P, T]):
    """The sync method of a command written as steps; ``.asynchronous`` is its async twin.

    Use as ``hlen = twin(miss=0)(hlen)`` (a decorator) and ``ahlen = hlen.asynchronous`` in the
    class body; ``Twin.op`` is the command itself, for commands built on another.
    """

    def __init__(self, op: Callable[Concatenate[Any, P], Op[T]], miss: Any) -> None:
        self.op = op
        split = _client_splitter(op)

        def sync(self: Any, *args: Any, **kwargs: Any) -> Any:
            args, client = split(args, kwargs)
            return run(op(self, *args, **kwargs), self.topology, client)

        async def asynchronous(self: Any, *args: Any, **kwargs: Any) -> Any:
            args, client = split(args, kwargs)
            topology = async_topology(self.topology)
            return await arun(op(self, *args, **kwargs), topology, client)

        functools.update_wrapper(sync, op)
        functools.update_wrapper(asynchronous, op)
        asynchronous.__name__ = f"a{op.__name__}"
        asynchronous.__qualname__ = f"{op.__qualname__.rpartition('.')[0]}.a{op.__name__}"
        self._sync: Callable[..., T] = guarded(miss)(sync)
        self.asynchronous: AsyncTwin[P, T] = AsyncTwin(guarded(miss)(asynchronous))

    def __get__(self, instance: object, owner: type | None = None) -> Callable[P, T]:
        bound: Callable[P, T] = self._sync.__get__(instance, owner)
        return bound


class AsyncTwin(Generic[P, T]):
    """The ``a``-prefixed twin of a :class:`Twin`, a coroutine method."""

    def __init__(self, method: Callable[..., Coroutine[Any, Any, T]]) -> None:
        self._method = method

    def __get__(
        self, instance: object, owner: type | None = None
    ) -> Callable[P, Coroutine[Any, Any, T]]:
        bound: Callable[P, Coroutine[Any, Any, T]] = self._method.__get__(instance, owner)
        return bound


def twin(
    miss: Any = None,
) -> Callable[[Callable[Concatenate[Any, P], Op[T]]], Twin[P, T]]:
    """Make a command written as steps a guarded sync method with an async twin; ``miss`` is
    what both answer while an outage is muted (as :func:`guarded`'s)."""

    def decorate(op: Callable[Concatenate[Any, P], Op[T]]) -> Twin[P, T]:
        return Twin(op, miss)

    return decorate
