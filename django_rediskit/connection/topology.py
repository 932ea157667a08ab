"""One topology object per alias: standalone, Sentinel or Cluster, chosen by ``LOCATION``.

Features never build redis-py clients themselves; they ask the alias's topology:

- :meth:`Topology.client` — the client for ordinary commands. On a cluster this is redis-py's
  ``RedisCluster``, which routes every single-key command, script and pipeline by slot and follows
  ``MOVED``/``ASK`` during resharding and failover; behind Sentinel it is the primary's client,
  whose pool asks the sentinels again after a connection error or a READONLY reply.
- :meth:`Topology.primaries` — one plain client per primary, for what is per node by nature:
  SCAN, INFO, DBSIZE, the inspector's browsing.
- :meth:`Topology.mget` / :meth:`Topology.unlink` — multi-key calls grouped by slot: one pipeline
  per node on a cluster, sent to every node before any reply is read (the nodes work in
  parallel); a single MGET / UNLINK elsewhere.
- :meth:`Topology.scan_iter` — SCAN over every primary.

The distributed engine is Redis itself: nothing here shards or replicates. Replica reads are
opt-in (``READ_FROM_REPLICAS``), so by default a read after a write sees the write.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Final, TypeVar, cast

from django.core.exceptions import ImproperlyConfigured
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import ExponentialWithJitterBackoff, NoBackoff
from redis.cluster import ClusterNode, LoadBalancingStrategy, RedisCluster
from redis.crc import key_slot
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ReadOnlyError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry
from redis.sentinel import Sentinel

from django_rediskit.connection.pools import (
    DEFAULT_SOCKET_CONNECT_TIMEOUT,
    DEFAULT_SOCKET_TIMEOUT,
    ConnectionFactory,
)
from django_rediskit.connection.urls import Location, parse_location
from django_rediskit.lua import script

if TYPE_CHECKING:
    from redis import Redis

#: Retries per command on connection errors and timeouts, by topology. Standalone keeps 0: a dead
#: server must cost one connect timeout before the breaker takes over. Sentinel and Cluster retry,
#: because after a failover the first attempt reaches the old primary.
DEFAULT_RETRIES: Final = {"standalone": 0, "sentinel": 3, "cluster": 3}
RETRY_ERRORS: Final = (RedisConnectionError, RedisTimeoutError, ReadOnlyError)


RetryT = TypeVar("RetryT", Retry, AsyncRetry)


def build_retry(options: dict[str, Any], kind: str, cls: type[RetryT] = Retry) -> RetryT:  # type: ignore[assignment]
    """``OPTIONS["RETRY"] = {"RETRIES": n, "BACKOFF_BASE": s, "BACKOFF_CAP": s}``: redis-py's
    Retry with jittered exponential backoff (so clients reconnecting after a failover spread out).
    ``cls`` is ``redis.asyncio.retry.Retry`` for the async clients.
    """
    conf = options.get("RETRY") or {}
    retries = int(conf.get("RETRIES", DEFAULT_RETRIES[kind]))
    if retries <= 0:
        return cls(NoBackoff(), 0)
    backoff = ExponentialWithJitterBackoff(
        base=float(conf.get("BACKOFF_BASE", 0.05)), cap=float(conf.get("BACKOFF_CAP", 0.5))
    )
    return cls(backoff, retries, supported_errors=RETRY_ERRORS)


def connection_kwargs(location: Location, options: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments for the data nodes' connections (Sentinel and Cluster)."""
    kwargs: dict[str, Any] = {
        "socket_timeout": options.get("SOCKET_TIMEOUT", DEFAULT_SOCKET_TIMEOUT),
        "socket_connect_timeout": options.get(
            "SOCKET_CONNECT_TIMEOUT", DEFAULT_SOCKET_CONNECT_TIMEOUT
        ),
    }
    username = options.get("USERNAME") or location.username
    password = options.get("PASSWORD") or location.password
    if username:
        kwargs["username"] = username
    if password:
        kwargs["password"] = password
    if location.tls:
        kwargs["ssl"] = True
    for name, value in location.query:
        kwargs[name] = value
    kwargs.update(options.get("CONNECTION_POOL_KWARGS", {}))
    return kwargs


class Topology:
    """What every topology answers; see the module docstring."""

    kind: str = ""

    def __init__(self, location: Location, options: dict[str, Any], scope: str) -> None:
        self.location = location
        self.options = options
        self.scope = scope
        self.read_from_replicas = bool(options.get("READ_FROM_REPLICAS", False))

    # --- clients -------------------------------------------------------------------------------

    def client(self, write: bool = True) -> Redis:
        raise NotImplementedError

    def client_for(self, key: str, write: bool = True) -> Redis:
        """The client to send a command on ``key`` to (the routing client on a cluster)."""
        return self.client(write)

    def primaries(self) -> list[Redis]:
        """One plain client per primary, for per-node commands (SCAN, INFO, DBSIZE)."""
        return [self.client(write=True)]

    def with_timeouts(self, socket_timeout: float, connect_timeout: float) -> Topology:
        """A sibling topology with its own pools, short timeouts and no retries (throttles:
        a slow Redis must cost a request milliseconds, and their breaker handles failures)."""
        options = {
            **self.options,
            "SOCKET_TIMEOUT": socket_timeout,
            "SOCKET_CONNECT_TIMEOUT": connect_timeout,
            "RETRY": {"RETRIES": 0},
        }
        return type(self)(self.location, options, scope=f"{self.scope}#fast")

    def disconnect(self) -> None:
        raise NotImplementedError

    # --- keys across nodes ---------------------------------------------------------------------

    @property
    def is_cluster(self) -> bool:
        return False

    def slot(self, key: str | bytes) -> int:
        """The cluster hash slot of ``key`` (computed the same on every topology)."""
        return int(key_slot(key.encode() if isinstance(key, str) else key))

    def mget(self, keys: Sequence[str], write: bool = False) -> list[Any]:
        """Values of ``keys`` in order; one MGET (one pipeline per node on a cluster)."""
        if not keys:
            return []
        return list(self.client(write).mget(keys))

    def unlink(self, keys: Sequence[str | bytes]) -> int:
        """UNLINK ``keys``; returns how many existed (one pipeline per node on a cluster)."""
        if not keys:
            return 0
        return int(self.client(write=True).unlink(*keys))

    def scan_iter(
        self, match: str, count: int, *, write: bool = False, _type: str | None = None
    ) -> Iterator[bytes]:
        """Every key matching ``match`` on every primary (SCAN, never KEYS)."""
        for node in self.primaries() if write or self.is_cluster else [self.client(write)]:
            yield from node.scan_iter(match=match, count=count, _type=_type)


class StandaloneTopology(Topology):
    """One server (``redis://``, ``rediss://``, ``unix://``), optionally with read replicas
    listed after it in ``LOCATION`` (django-redis's format)."""

    kind = "standalone"

    def __init__(self, location: Location, options: dict[str, Any], scope: str) -> None:
        super().__init__(location, options, scope)
        self.factory = ConnectionFactory(options, scope=scope)
        self.retry = build_retry(options, self.kind)
        self._clients: list[Redis | None] = [None] * len(location.urls)
        # django-redis's REPLICA_READ_ONLY=False also sends reads to the primary
        self._read_indexes = list(range(1, len(location.urls))) if self.read_from_replicas else []

    def _connect(self, index: int) -> Redis:
        client = self._clients[index]
        if client is None:
            params = self.factory.make_connection_params(self.location.urls[index])
            params.setdefault("retry", self.retry)
            if self.retry.get_retries():
                params.setdefault("retry_on_error", list(RETRY_ERRORS))
            client = self._clients[index] = self.factory.get_connection(params)
        return client

    def client(self, write: bool = True) -> Redis:
        if write or not self._read_indexes:
            return self._connect(0)
        return self._connect(random.choice(self._read_indexes))  # noqa: S311 (load spreading)

    def disconnect(self) -> None:
        for client in self._clients:
            if client is not None:
                client.connection_pool.disconnect()


class SentinelTopology(Topology):
    """``redis+sentinel://s1:26379,s2:26379/<service>/<db>``: the primary Sentinel elects.

    After a failover the first command on a pooled connection fails (closed socket, or READONLY
    from the demoted primary); the Sentinel pool then asks the sentinels for the new primary and
    the configured retries resend the command there.
    """

    kind = "sentinel"

    def __init__(self, location: Location, options: dict[str, Any], scope: str) -> None:
        super().__init__(location, options, scope)
        kwargs = connection_kwargs(location, options)
        kwargs["retry"] = build_retry(options, self.kind)
        kwargs["db"] = location.db
        sentinel_kwargs = dict(options.get("SENTINEL_KWARGS", {}))
        sentinel_kwargs.setdefault("socket_timeout", kwargs["socket_timeout"])
        sentinel_kwargs.setdefault("socket_connect_timeout", kwargs["socket_connect_timeout"])
        self.sentinel = Sentinel(  # type: ignore[no-untyped-call]
            list(location.nodes), sentinel_kwargs=sentinel_kwargs, **kwargs
        )
        self.service = cast(str, location.service)
        self._lock = threading.Lock()
        self._primary: Redis | None = None
        self._replica: Redis | None = None

    def client(self, write: bool = True) -> Redis:
        if write or not self.read_from_replicas:
            if self._primary is None:
                with self._lock:
                    if self._primary is None:
                        self._primary = self.sentinel.master_for(self.service)  # type: ignore[no-untyped-call]
            return self._primary
        if self._replica is None:
            with self._lock:
                if self._replica is None:
                    self._replica = self.sentinel.slave_for(self.service)  # type: ignore[no-untyped-call]
        return self._replica

    def disconnect(self) -> None:
        for client in (self._primary, self._replica):
            if client is not None:
                client.connection_pool.disconnect()


class ClusterTopology(Topology):
    """``redis+cluster://h1:p1,h2:p2/``: Redis Cluster through redis-py's ``RedisCluster``.

    Every key a Lua script touches shares a hash tag ``{...}`` (one slot); multi-key cache calls
    are split by slot here; scans visit every primary.
    """

    kind = "cluster"

    def __init__(self, location: Location, options: dict[str, Any], scope: str) -> None:
        super().__init__(location, options, scope)
        kwargs = connection_kwargs(location, options)
        self.cluster = RedisCluster(
            load_balancing_strategy=(
                LoadBalancingStrategy.ROUND_ROBIN_REPLICAS if self.read_from_replicas else None
            ),
            startup_nodes=[
                ClusterNode(host, port)  # type: ignore[no-untyped-call]
                for host, port in location.nodes
            ],
            retry=build_retry(options, self.kind),
            require_full_coverage=True,
            **kwargs,
        )

    @property
    def is_cluster(self) -> bool:
        return True

    def client(self, write: bool = True) -> Redis:
        return cast("Redis", self.cluster)

    def primaries(self) -> list[Redis]:
        nodes = sorted(
            self.cluster.get_primaries(),  # type: ignore[no-untyped-call]
            key=lambda node: node.name,
        )
        return [self.cluster.get_redis_connection(node) for node in nodes]

    def mget(self, keys: Sequence[str], write: bool = False) -> list[Any]:
        """Values of ``keys``: one request per node, every node written before any reply is
        read, so one round trip per node with the nodes working in parallel.

        MGET refuses keys of different slots, and redis-py's ``mget_nonatomic`` sends one MGET
        per slot through ``ClusterPipeline``, whose per-command Python cost made
        ``get_many(1000)`` five times slower than on one server. Here each node runs
        ``lua/cluster_mget.lua`` once over all of its keys. A node whose reply is an error
        (a slot migrating during resharding, a failover) has its keys read again through
        ``RedisCluster``, which follows ``MOVED``/``ASK`` and refreshes its slot map.
        """
        if not keys:
            return []
        by_node: dict[str, tuple[Any, list[int]]] = {}
        manager = self.cluster.nodes_manager
        slots_cache = manager.slots_cache  # slot -> [primary, replicas...]: read directly, hot
        for index, key in enumerate(keys):
            slot = key_slot(key.encode())
            owners = slots_cache.get(slot)
            node = owners[0] if owners else manager.get_node_from_slot(slot)
            entry = by_node.get(node.name)
            if entry is None:
                entry = by_node[node.name] = (node, [])
            entry[1].append(index)
        reader = script("cluster_mget")
        values: list[Any] = [None] * len(keys)
        sent: list[tuple[Any, Any, list[int]]] = []
        retry: list[int] = []
        try:
            for node, indexes in by_node.values():
                pool = self.cluster.get_redis_connection(node).connection_pool
                connection = pool.get_connection()
                sent.append((pool, connection, indexes))
                names = [keys[i] for i in indexes]
                request = connection.pack_command("EVALSHA", reader.sha, 0, *names)  # type: ignore[no-untyped-call]
                connection.send_packed_command(request)  # type: ignore[no-untyped-call]
            for _pool, connection, indexes in sent:
                try:
                    reply = connection.read_response()
                except NoScriptError:
                    names = [keys[i] for i in indexes]
                    connection.send_packed_command(
                        connection.pack_command("EVAL", reader.text, 0, *names)
                    )
                    reply = connection.read_response()
                except ResponseError:
                    retry += indexes
                    continue
                for i, value in zip(indexes, reply, strict=True):
                    values[i] = value
        except BaseException:
            for _pool, connection, _indexes in sent:
                connection.disconnect()  # replies may be left unread: never reuse the socket
            raise
        finally:
            for pool, connection, _indexes in sent:
                pool.release(connection)
        if retry:
            found = self.cluster.mget_nonatomic([keys[i] for i in retry])
            for i, value in zip(retry, found, strict=True):
                values[i] = value
        return values

    def group_by_slot(self, keys: Iterable[str]) -> dict[int, list[str]]:
        groups: dict[int, list[str]] = {}
        for key in keys:
            groups.setdefault(self.slot(key), []).append(key)
        return groups

    def disconnect(self) -> None:
        self.cluster.disconnect_connection_pools()  # type: ignore[no-untyped-call]


TOPOLOGIES: Final[dict[str, type[Topology]]] = {
    "standalone": StandaloneTopology,
    "sentinel": SentinelTopology,
    "cluster": ClusterTopology,
}

_topologies: dict[tuple[str, str], Topology] = {}
_topologies_lock = threading.Lock()


def topology_for(location: str | list[str], options: dict[str, Any], scope: str) -> Topology:
    """The topology of one cache scope (alias), built once per process and configuration.

    Keyed by the scope and the configuration, so an alias repointed by ``override_settings``
    gets a new one, while Django's per-thread backend objects share pools.
    """
    key = (scope, repr((location, sorted(options.items(), key=lambda item: item[0]))))
    topology = _topologies.get(key)
    if topology is None:
        parsed = parse_location(location)
        cls = TOPOLOGIES[parsed.kind]
        if parsed.kind != "standalone" and options.get("CONNECTION_POOL_CLASS"):
            raise ImproperlyConfigured(
                f"CONNECTION_POOL_CLASS applies to standalone servers only, not {parsed.kind}."
            )
        with _topologies_lock:
            topology = _topologies.get(key)
            if topology is None:
                topology = _topologies[key] = cls(parsed, options, scope)
    return topology
