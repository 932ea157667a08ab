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
from collections.abc import Iterator, Sequence

import redis

REDIS_SERVER = os.environ.get("REDIS_SERVER_BIN", "redis-server")


class RedisServerUnavailable(RuntimeError):
    """No redis-server binary to start private servers with."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    """Run in the child before exec: SIGTERM it when the test process dies, however it dies."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class RedisServer:
    """One private redis-server: start, stop, restart on the same port, pause."""

    def __init__(self, extra_args: Sequence[str] = ()) -> None:
        if shutil.which(REDIS_SERVER) is None:
            raise RedisServerUnavailable(
                f"{REDIS_SERVER!r} not found: install Redis (apt-get install redis-server) "
                "or point the tests at a server with REDIS_URL=redis://host:port/db."
            )
        self.port = free_port()
        self.extra_args = list(extra_args)
        self.directory = tempfile.mkdtemp(prefix="rediskit-redis-")
        self.run_id = uuid.uuid4().hex
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisServer:
        command = [
            REDIS_SERVER,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", self.directory,
            "--save", "",
            "--appendonly", "no",
            "--enable-debug-command", "local",
            "--daemonize", "no",
            "--loglevel", "warning",
            "--logfile", os.path.join(self.directory, "redis.log"),
            *self.extra_args,
        ]  # fmt: skip
        self.process = subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                client = self.client()
                client.ping()
                # Mark the server so code can prove it talks to ours before destructive commands.
                client.set("__rediskit_test_server__", self.run_id)
                client.close()
                return self
            except redis.ConnectionError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"redis-server on port {self.port} did not start; see {self.directory}"
                    ) from None
                time.sleep(0.02)

    def client(self, **kwargs: object) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, **kwargs)  # type: ignore[arg-type]

    def is_ours(self, client: redis.Redis) -> bool:
        with contextlib.suppress(redis.RedisError):
            return client.get("__rediskit_test_server__") == self.run_id.encode()
        return False

    def flush(self) -> None:
        """FLUSHALL, but only after proving the server is the one this object started."""
        client = self.client()
        try:
            if not self.is_ours(client):
                raise RuntimeError("refusing to flush a Redis server these tests did not start")
            client.flushall()
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


_session_server: RedisServer | None = None


def session_redis_url() -> str:
    """The URL every test settings module uses: ``REDIS_URL``, else a private server started once.

    Called from ``tests/settings.py`` because pytest-django imports settings before any fixture
    runs; the server is stopped by ``tests/conftest.py`` at session end (and by the kernel if the
    test process dies first).
    """
    global _session_server
    external = os.environ.get("REDIS_URL")
    if external:
        return external
    if _session_server is None:
        _session_server = RedisServer().start()
    return _session_server.url


def session_server() -> RedisServer | None:
    """The private session server, or None when ``REDIS_URL`` points elsewhere."""
    return _session_server


def stop_session_server() -> None:
    global _session_server
    if _session_server is not None:
        _session_server.close()
        _session_server = None
