"""Native asyncio clients (``redis.asyncio``), one set per alias and running event loop.

An asyncio connection belongs to the loop that opened it, so pools are kept per (topology, loop)
in a registry here, never on the cache backend object: Django gives every task a fresh backend
object and calls ``close()`` after each request, which must not cost a reconnect. A loop that
has been closed (``asyncio.run()`` returning, a test's loop) has its clients dropped the next
time any loop asks for clients, and the registry holds loops weakly, so nothing keeps a dead
loop's sockets alive.

The async twin answers what the sync :class:`~django_rediskit.connection.topology.Topology`
answers for the cache's commands: ``client(write)``, ``mget`` and ``unlink`` split by node on a
cluster. It is built from the same parsed LOCATION and OPTIONS, with the same timeouts, ACL,
TLS and retry policy.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import AsyncIterator, Sequence
from typing import Any

import redis.asyncio as aredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.cluster import LoadBalancingStrategy

from django_rediskit.connection.multiplex import MultiplexedRedis, multiplexable
from django_rediskit.connection.pools import (
    DEFAULT_SOCKET_CONNECT_TIMEOUT,
    DEFAULT_SOCKET_TIMEOUT,
)
from django_rediskit.connection.topology import (
    RETRY_ERRORS,
    Topology,
    build_retry,
    connection_kwargs,
)

#: Connections per event loop and server (``OPTIONS["ASYNC_MAX_CONNECTIONS"]``): enough for a
#: worker's concurrency, since each command holds a connection for one round trip only.
DEFAULT_ASYNC_MAX_CONNECTIONS = 10


class BlockingSentinelPool(SentinelConnectionPool, aredis.BlockingConnectionPool):
    """The Sentinel primary's (or replica's) pool, bounded like the standalone one: a task waits
    for a free connection instead of failing. redis-py's ``SentinelConnectionPool`` raises
    ``MaxConnectionsError`` past its cap (100 by default) — a burst of tasks, not an outage."""


class GatedRedisCluster(RedisCluster):
    """redis-py's asyncio cluster client, with at most ``max_connections`` commands in flight.

    Its node pools have no waiting mode: past ``max_connections`` connections to one node
    (100 by default) a command fails with ``MaxConnectionsError``, which a burst of tasks
    reaches and which counts as an outage. Bounding the commands in flight for the whole
    client bounds every node's connections; the others wait their turn on the loop.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._gate = asyncio.Semaphore(int(kwargs.get("max_connections", 100)))

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        async with self._gate:
            return await super().execute_command(*args, **kwargs)


def _bounded(options: dict[str, Any]) -> dict[str, Any]:
    """Pool size and wait of a loop's pool, from OPTIONS."""
    return {
        "max_connections": int(options.get("ASYNC_MAX_CONNECTIONS", DEFAULT_ASYNC_MAX_CONNECTIONS)),
        "timeout": options.get("SOCKET_TIMEOUT", DEFAULT_SOCKET_TIMEOUT),
    }


class AsyncTopology:
    """The clients of one topology on one event loop."""

    def __init__(self, sync: Topology) -> None:
        self.kind = sync.kind
        self.scope = sync.scope
        location, options = sync.location, sync.options
        retry = build_retry(options, sync.kind, Retry)
        self._replica: Any = None
        if sync.kind == "standalone":
            # A bounded pool that makes callers wait for a free connection: one task per command
            # in flight would otherwise open a connection each (hundreds under load) and, past
            # redis-py's cap, fail with MaxConnectionsError, which is not an outage of Redis.
            bounded = _bounded(options)
            kwargs: dict[str, Any] = {
                **bounded,
                "socket_timeout": bounded["timeout"],
                "socket_connect_timeout": options.get(
                    "SOCKET_CONNECT_TIMEOUT", DEFAULT_SOCKET_CONNECT_TIMEOUT
                ),
                "retry": retry,
                **options.get("CONNECTION_POOL_KWARGS", {}),
            }
            for name in ("USERNAME", "PASSWORD"):
                if options.get(name):
                    kwargs[name.lower()] = options[name]
            if retry.get_retries():
                kwargs["retry_on_error"] = list(RETRY_ERRORS)
            multiplex = bool(options.get("ASYNC_MULTIPLEX", True))
            self._primary: Any = _standalone_client(location.urls[0], kwargs, multiplex)
            if sync.read_from_replicas and len(location.urls) > 1:
                # django-redis's format lists replicas after the primary; one is enough here.
                self._replica = _standalone_client(location.urls[1], kwargs, multiplex)
        elif sync.kind == "sentinel":
            kwargs = connection_kwargs(location, options)
            kwargs["retry"] = retry
            kwargs["db"] = location.db
            sentinel_kwargs = dict(options.get("SENTINEL_KWARGS", {}))
            sentinel_kwargs.setdefault("socket_timeout", kwargs["socket_timeout"])
            sentinel_kwargs.setdefault("socket_connect_timeout", kwargs["socket_connect_timeout"])
            sentinel = Sentinel(  # type: ignore[no-untyped-call]
                list(location.nodes), sentinel_kwargs=sentinel_kwargs, **kwargs
            )
            pool = {"connection_pool_class": BlockingSentinelPool, **_bounded(options)}
            self._primary = sentinel.master_for(str(location.service), **pool)
            if sync.read_from_replicas:
                self._replica = sentinel.slave_for(str(location.service), **pool)
        else:
            kwargs = connection_kwargs(location, options)
            self.ready = False
            self._primary = GatedRedisCluster(
                startup_nodes=[ClusterNode(host, port) for host, port in location.nodes],
                retry=retry,
                require_full_coverage=True,
                load_balancing_strategy=(
                    LoadBalancingStrategy.ROUND_ROBIN_REPLICAS if sync.read_from_replicas else None
                ),
                **kwargs,
            )

    @property
    def is_cluster(self) -> bool:
        return self.kind == "cluster"

    #: False until a cluster client has loaded its slot map: tasks racing a fresh
    #: ``redis.asyncio.RedisCluster``'s first commands can meet half-built node connections.
    ready: bool = True

    async def initialize(self) -> None:
        """Load the cluster's slot map once (redis-py locks it) before the first command."""
        await self._primary.initialize()
        self.ready = True

    def client(self, write: bool = True) -> Any:
        """``redis.asyncio.Redis`` (standalone, the Sentinel primary) or ``RedisCluster``."""
        if not write and self._replica is not None:
            return self._replica
        return self._primary

    async def mget(self, keys: Sequence[Any], write: bool = False) -> list[Any]:
        """Values of ``keys`` in order; on a cluster one request per slot group, in parallel."""
        if not keys:
            return []
        if self.is_cluster:
            return list(await self._primary.mget_nonatomic(list(keys)))
        return list(await self.client(write).mget(list(keys)))

    async def unlink(self, keys: Sequence[Any]) -> int:
        """UNLINK ``keys`` (split by slot on a cluster); how many existed."""
        if not keys:
            return 0
        return int(await self._primary.unlink(*keys))

    def scan_iter(self, match: str, count: int) -> AsyncIterator[bytes]:
        """Every key matching ``match`` on every primary (SCAN, never KEYS)."""
        scan: AsyncIterator[bytes] = self._primary.scan_iter(match=match, count=count)
        return scan

    async def aclose(self) -> None:
        for client in (self._primary, self._replica):
            if client is not None:
                await client.aclose()

    def abandon(self) -> None:
        """Its loop is closed: close the shared connections' sockets, which no callback of that
        loop can close any more (pooled connections are left to the garbage collector)."""
        for client in (self._primary, self._replica):
            if isinstance(client, MultiplexedRedis):
                client.multiplexer.abandon()


def _standalone_client(url: str, kwargs: dict[str, Any], multiplex: bool) -> aredis.Redis:
    """A client of one server: its plain commands on one shared pipelined connection
    (``connection/multiplex.py``) unless ``OPTIONS["ASYNC_MULTIPLEX"]`` is False or the
    connection is one it cannot share (TLS, RESP3); the bounded pool for everything else."""
    pool = aredis.BlockingConnectionPool.from_url(url, **kwargs)
    if multiplex and multiplexable(pool):
        # The shared connection counts against ASYNC_MAX_CONNECTIONS too.
        pool.max_connections = max(1, pool.max_connections - 1)
        return MultiplexedRedis(connection_pool=pool)
    return aredis.Redis(connection_pool=pool)


#: loop -> {id(sync topology): its async twin}. Weak on the loop; sync topologies live for the
#: process (``topology._topologies``), so their ids are never reused.
_registry: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[int, AsyncTopology]] = (
    weakref.WeakKeyDictionary()
)
_registry_lock = threading.Lock()


def async_topology(sync: Topology) -> AsyncTopology:
    """The async clients of ``sync`` on the running event loop (built on first use)."""
    loop = asyncio.get_running_loop()
    per_loop = _registry.get(loop)
    if per_loop is not None:
        found = per_loop.get(id(sync))
        if found is not None:
            return found
    with _registry_lock:
        for other in [other for other in _registry if other.is_closed()]:
            for topology in _registry.pop(other).values():  # nothing of it can be awaited now
                topology.abandon()
        per_loop = _registry.setdefault(loop, {})
        found = per_loop.get(id(sync))
        if found is None:
            found = per_loop[id(sync)] = AsyncTopology(sync)
        return found


def loops_with_clients() -> int:
    """How many event loops hold clients (for tests and ``rediskit_info``)."""
    return len(_registry)


async def aclose_loop_clients() -> None:
    """Close every client of the running loop (a worker shutting down, a test's teardown)."""
    with _registry_lock:
        per_loop = _registry.pop(asyncio.get_running_loop(), {})
    for topology in per_loop.values():
        await topology.aclose()
