"""The test rig itself: a private server whose port is taken before it binds moves to another
port, and is never confused with the process that holds the port."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests import servers


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port another process (here: a plain listening socket) holds."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


@pytest.fixture
def other_server() -> Iterator[servers.RedisServer]:
    server = servers.RedisServer().start()
    yield server
    server.close()


def test_a_chosen_port_taken_before_binding_is_chosen_again(taken_port: int) -> None:
    server = servers.RedisServer()
    server.port = taken_port  # as if another process had bound it since it was chosen
    try:
        server.start()
        assert server.port != taken_port
        with server.client() as client:
            assert int(client.info("server")["process_id"]) == server.process.pid  # type: ignore[union-attr]
            assert server.is_ours(client)
    finally:
        server.close()


def test_another_redis_on_the_port_is_not_taken_for_ours(
    other_server: servers.RedisServer,
) -> None:
    server = servers.RedisServer()
    server.port = other_server.port
    try:
        server.start()
        assert server.port != other_server.port
        with other_server.client() as client:  # the other server was left alone
            assert other_server.is_ours(client)
    finally:
        server.close()


def test_an_explicit_port_is_kept_and_a_busy_one_fails_clearly(taken_port: int) -> None:
    server = servers.RedisServer(port=taken_port)
    try:
        with pytest.raises(RuntimeError, match=f"could not start on port {taken_port}"):
            server.start()
        assert server.process is None or server.process.poll() is not None
    finally:
        server.close()


def test_a_restart_keeps_its_port() -> None:
    server = servers.RedisServer().start()
    try:
        port = server.port
        server.restart()
        assert server.port == port
        with server.client() as client:
            assert server.is_ours(client)
    finally:
        server.close()


def test_a_password_server_is_ours_only_with_the_password() -> None:
    server = servers.RedisServer(password="s3cret").start()
    try:
        with server.client() as client:
            assert server.is_ours(client)
        stranger = redis.Redis(port=server.port, retry=Retry(NoBackoff(), 0))
        with stranger, pytest.raises(redis.AuthenticationError):
            stranger.ping()
    finally:
        server.close()
