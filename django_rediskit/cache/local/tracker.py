"""The invalidation side of the local cache: one tracking connection per primary, one thread.

Each connection runs ``CLIENT TRACKING ON REDIRECT <its own id> BCAST PREFIX ...`` and then
``SUBSCRIBE __redis__:invalidate`` (RESP2). Why this shape:

- **BCAST, not default mode.** Default mode makes Redis remember every key each client read, and
  only the connection that read a key is told about it, so every data connection of every pool
  would need ``REDIRECT``, re-issued on each reconnect. BCAST needs nothing from the data
  connections: Redis announces every change under the prefixes, so the pools, pipelines, the
  cluster client and the async clients stay untouched. It also covers keys that did not exist
  when read, which makes remembering a miss safe. The cost is traffic: every write under the
  prefixes reaches every process (the docs say when that is too much).
- **RESP2 pub/sub with a redirect to itself, not RESP3 push.** One connection both owns the
  tracking state and receives the messages, so when it dies (CLIENT KILL, restart, failover,
  network) tracking and delivery die together and the reader sees it at once. It works the same on
  Redis 6.0+, 7.0 and Valkey 8, and it needs only redis-py's plain RESP2 parser: its RESP3 push
  handling is tied to its own client-side cache (Redis ≥ 7.4 only) and to reading replies.
- **Our own read loop, not redis-py's PubSub.** PubSub reconnects and re-subscribes on its own:
  after a restart the subscription comes back but tracking does not, and nothing says so
  (redis-py #3979). Here any error, EOF, a PING unanswered within the health timeout, or a
  primary that is no longer the primary ends the connections; the cache is flushed and serves
  nothing until every node tracks again.

The connections are built from the topology's own pools (same address resolution, TLS, ACL and
timeouts: a Sentinel pool asks the sentinels for the primary) but never taken from them, so they
do not count against ``max_connections`` and are never handed back dirty.
"""

from __future__ import annotations

import contextlib
import logging
import random
import selectors
import socket
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from redis.backoff import NoBackoff
from redis.retry import Retry

from django_rediskit.connection.topology import ClusterTopology, SentinelTopology

if TYPE_CHECKING:
    from redis import Redis

    from django_rediskit.connection.topology import Topology

logger = logging.getLogger("django_rediskit.cache.local")

CHANNEL = b"__redis__:invalidate"
CLIENT_NAME = "rediskit-local-invalidation"
#: How long a helping reader waits for the tracker thread to finish a drain (see ``help``).
HELP_WAIT = 0.005


class TrackingLost(Exception):
    """The tracking connections cannot be trusted any more (reason in the message)."""


class Listener(Protocol):
    """What the tracker tells the cache."""

    def _tracking_up(self) -> None: ...
    def _tracking_down(self) -> None: ...
    def _server_invalidated(self, keys: list[str] | None) -> None: ...


@dataclass
class Node:
    """One tracking connection: its primary's address, Redis client id, cluster node id."""

    connection: Any  # redis-py's AbstractConnection, whose methods are untyped
    address: tuple[str, int]
    client_id: int
    node_id: str | None = None
    client: Redis | None = None
    ping_sent_at: float = 0.0
    sock: socket.socket | None = field(default=None, repr=False)


def _decode(key: bytes) -> str:
    # redis-py sends str keys as strict UTF-8; surrogateescape keeps any other key distinct
    return key.decode("utf-8", "surrogateescape")


class Tracker:
    """Keeps every primary's tracking connection up and feeds what they say to ``listener``."""

    def __init__(
        self,
        topology: Topology,
        prefixes: tuple[str, ...],
        listener: Listener,
        *,
        health_interval: float,
        health_timeout: float,
        check_interval: float,
        backoff: tuple[float, float],
        name: str,
    ) -> None:
        self.topology = topology
        self.prefixes = prefixes
        self.listener = listener
        self.health_interval = health_interval
        self.health_timeout = health_timeout
        self.check_interval = check_interval
        self.backoff_base, self.backoff_cap = backoff
        self.name = name
        self.nodes: list[Node] = []
        self._stop = threading.Event()
        #: held for every read or write on the tracking connections, by the thread or a helper
        self.io_lock = threading.Lock()
        #: when a reader last helped (see :meth:`help`); read without a lock on the hot path
        self.helped_at = 0.0
        self._broken: BaseException | None = None
        self._wake_r, self._wake_w = socket.socketpair()
        self._thread: threading.Thread | None = None
        self._logged_down = False

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"{self.name}-tracker", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        for sock in (self._wake_r, self._wake_w):
            sock.close()

    def abandon(self) -> None:
        """In a forked child: close the child's copies of the parent's sockets without shutting
        them down (a shutdown, as redis-py's disconnect does, would cut the parent's connections
        too; a plain close only drops this process's file descriptor, so the connection ends
        when the parent closes it) and forget the thread, which did not survive the fork."""
        for node in self.nodes:
            if node.sock is not None:
                with contextlib.suppress(OSError):
                    node.sock.close()
        for sock in (self._wake_r, self._wake_w):
            sock.close()
        self.nodes = []
        self._thread = None

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")

    def _run(self) -> None:
        delay = self.backoff_base
        first = True
        while not self._stop.is_set():
            try:
                nodes = self._connect(refresh=not first)
                with self.io_lock:
                    self._broken = None
                    self.nodes = nodes
            except Exception as exc:
                first = False
                self._close_nodes()
                self._note_down(exc)
                # jittered exponential backoff, so processes reconnecting after a failover spread
                self._stop.wait(delay * (0.5 + random.random() / 2))  # noqa: S311
                delay = min(self.backoff_cap, delay * 2)
                continue
            first = False
            delay = self.backoff_base
            self.listener._tracking_up()
            if self._logged_down:
                logger.warning("%s: invalidation tracking is back; local cache serving", self.name)
                self._logged_down = False
            try:
                self._serve()
            except Exception as exc:
                self._note_down(exc)
            finally:
                self.listener._tracking_down()
                self._close_nodes()

    def _note_down(self, exc: BaseException) -> None:
        if not self._logged_down and not self._stop.is_set():
            logger.warning(
                "%s: invalidation tracking lost (%s: %s); local cache flushed and bypassed "
                "until it is back",
                self.name,
                type(exc).__name__,
                exc,
            )
            self._logged_down = True

    # --- connecting --------------------------------------------------------------------------

    def _primary_clients(self, refresh: bool) -> list[Redis]:
        topology = self.topology
        if isinstance(topology, ClusterTopology):
            if refresh:  # after a failure the slot map may name a dead or demoted primary
                topology.cluster.nodes_manager.initialize()
            return topology.primaries()
        return [topology.client(write=True)]

    def _connect(self, refresh: bool) -> list[Node]:
        nodes: list[Node] = []
        try:
            for client in self._primary_clients(refresh):
                nodes.append(self._connect_one(client))
        except BaseException:
            for node in nodes:
                node.connection.disconnect()
            raise
        return nodes

    def _connect_one(self, client: Redis) -> Node:
        pool = client.connection_pool
        kwargs: dict[str, Any] = {
            **pool.connection_kwargs,
            "protocol": 2,
            "decode_responses": False,
            "health_check_interval": 0,  # redis-py's own check expects PONG, not ["pong", ""]
            "retry": Retry(NoBackoff(), 0),  # our loop does the backoff
            "client_name": CLIENT_NAME,
        }
        connection: Any = pool.connection_class(**kwargs)
        try:
            connection.connect()
            client_id = int(self._call(connection, "CLIENT", "ID"))
            node_id = None
            if isinstance(self.topology, ClusterTopology):
                node_id = _text(self._call(connection, "CLUSTER", "MYID"))
            args: list[Any] = ["CLIENT", "TRACKING", "ON", "REDIRECT", client_id, "BCAST"]
            for prefix in self.prefixes:
                if prefix:
                    args += ["PREFIX", prefix]
            self._call(connection, *args)
            reply = self._call(connection, "SUBSCRIBE", CHANNEL)
            if not (isinstance(reply, list) and reply[:2] == [b"subscribe", CHANNEL]):
                raise TrackingLost(f"unexpected SUBSCRIBE reply {reply!r}")
        except BaseException:
            connection.disconnect()
            raise
        address = (str(getattr(connection, "host", "?")), int(getattr(connection, "port", 0)))
        # redis-py gives no public file descriptor; the selector needs the socket itself
        sock = getattr(connection, "_sock", None)
        if sock is None:
            raise TrackingLost("connection has no socket after connect")
        return Node(connection, address, client_id, node_id, client, sock=sock)

    @staticmethod
    def _call(connection: Any, *args: Any) -> Any:
        connection.send_command(*args)
        return connection.read_response()

    def _close_nodes(self) -> None:
        with self.io_lock:  # never under a reader that is helping
            nodes, self.nodes = self.nodes, []
        for node in nodes:
            with contextlib.suppress(Exception):  # already broken: nothing to do
                node.connection.disconnect()

    # --- serving -----------------------------------------------------------------------------

    def _serve(self) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(self._wake_r, selectors.EVENT_READ, None)
            for node in self.nodes:
                assert node.sock is not None
                selector.register(node.sock, selectors.EVENT_READ, node)
            now = time.monotonic()
            next_ping = now + self.health_interval
            next_check = now + self.check_interval
            while not self._stop.is_set():
                timeout = max(0.0, min(next_ping, next_check) - time.monotonic())
                for key, _events in selector.select(timeout):
                    if key.data is None:
                        self._wake_r.recv(4096)
                    else:
                        with self.io_lock:
                            self._drain(key.data)
                if self._broken is not None:
                    raise TrackingLost(f"a reader saw the connection fail: {self._broken!r}")
                now = time.monotonic()
                for node in self.nodes:
                    if node.ping_sent_at and now - node.ping_sent_at > self.health_timeout:
                        raise TrackingLost(f"no PING reply from {node.address} in time")
                if now >= next_ping:
                    with self.io_lock:
                        for node in self.nodes:
                            self._check_usable(node)
                            if not node.ping_sent_at:
                                node.connection.send_command("PING")
                                node.ping_sent_at = now
                    next_ping = now + self.health_interval
                if now >= next_check:
                    self._check_roles()
                    next_check = time.monotonic() + self.check_interval

    def _drain(self, node: Node) -> None:
        """Handle every message already received (a reader may have taken them first)."""
        self._check_usable(node)
        connection = node.connection
        while connection.can_read(timeout=0):
            self._handle(node, connection.read_response())

    def _check_usable(self, node: Node) -> None:
        """Refuse a connection that failed: redis-py would quietly reconnect it on the next
        call, without tracking or subscription (the trap of redis-py #3979)."""
        if self._broken is not None or getattr(node.connection, "_sock", None) is None:
            raise TrackingLost(f"tracking connection to {node.address} failed")

    def help(self, now: float) -> None:
        """Called by a reader whose last help is over a millisecond old: handle whatever
        invalidations wait on the sockets, now, in the reader's thread.

        The tracker thread needs the GIL to run. In a process whose threads keep the CPU busy
        it may wait several switch intervals (5 ms each) after its socket became readable, and
        meanwhile the cache would serve values Redis has replaced. A reader that finds the
        messages first handles them itself, so a local hit is never later than the network
        delivery plus about a millisecond. It costs a zero-timeout read attempt per socket, at
        most once per millisecond per process.

        If the tracker thread holds the I/O lock it is usually stalled *waiting for the GIL*
        halfway through a drain (each socket call releases and retakes it); waiting on the lock
        hands it the GIL, it finishes, and we go on. The wait is capped (``HELP_WAIT``) so a
        reader is never held by a tracker stuck on a half-received message.
        """
        self.helped_at = now
        if not self.io_lock.acquire(timeout=HELP_WAIT):
            return
        try:
            if self._broken is None:
                for node in self.nodes:
                    self._drain(node)
        except Exception as exc:
            # the reader must not see the error, and must not be served from a cache whose
            # tracking just failed: drop it here; the tracker thread reconnects
            self._broken = exc
            self.listener._tracking_down()
            self._wake()
        finally:
            self.io_lock.release()

    def _handle(self, node: Node, reply: Any) -> None:
        if not isinstance(reply, list) or not reply:
            raise TrackingLost(f"unexpected message {reply!r}")
        kind = reply[0]
        if kind == b"message" and len(reply) == 3 and reply[1] == CHANNEL:
            keys = reply[2]
            # a null key list: FLUSHDB / FLUSHALL, or the server dropped its tracking table
            self.listener._server_invalidated(
                None if keys is None else [_decode(k) for k in _as_list(keys)]
            )
        elif kind == b"pong":
            node.ping_sent_at = 0.0

    def _check_roles(self) -> None:
        """A primary demoted without dropping our connection (a manual cluster failover, a
        Sentinel that could not kill clients) still sends nothing for writes made on the new
        primary: compare what we track with what the topology now says."""
        topology = self.topology
        if isinstance(topology, SentinelTopology):
            try:
                current = topology.sentinel.discover_master(topology.service)  # type: ignore[no-untyped-call]
            except Exception:
                return  # sentinels unreachable: the data node's own health decides
            host, port = current
            if self.nodes and (str(host), int(port)) != self.nodes[0].address:
                raise TrackingLost(f"primary moved to {host}:{port}")
        elif isinstance(topology, ClusterTopology):
            ids = self._cluster_primary_ids()
            tracked = {node.node_id for node in self.nodes}
            if ids is not None and ids != tracked:
                raise TrackingLost("cluster primaries changed")

    def _cluster_primary_ids(self) -> set[str] | None:
        for node in self.nodes:
            if node.client is None:
                continue
            try:
                text = _text(node.client.execute_command("CLUSTER", "NODES"))  # type: ignore[no-untyped-call]
            except Exception:  # noqa: S112 (that node's own connection decides its health)
                continue
            return primary_ids(text)
        return None


def primary_ids(cluster_nodes: str) -> set[str]:
    """Ids of the primaries that serve slots, from ``CLUSTER NODES`` text."""
    ids = set()
    for line in cluster_nodes.splitlines():
        fields = line.split()
        if len(fields) < 9:
            continue
        flags = fields[2].split(",")
        if "master" in flags and "fail" not in flags:
            ids.add(fields[0])
    return ids


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _as_list(keys: Any) -> Iterable[bytes]:
    return keys if isinstance(keys, list) else [keys]


__all__: list[str] = ["CLIENT_NAME", "Node", "Tracker", "TrackingLost", "primary_ids"]
