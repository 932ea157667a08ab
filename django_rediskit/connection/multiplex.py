"""One pipelined connection per event loop and server, shared by every task's plain commands.

redis.asyncio gives each command in flight a connection of its own from a pool: a command costs
a pool checkout, a lock, three ``asyncio.timeout`` scopes and a write of its own, and a worker
under 300 concurrent requests either opens hundreds of connections or queues tasks behind a
bounded pool. A Redis connection answers in order, so concurrent tasks can share one: each
command is packed into a buffer that is written once per loop iteration (every command the
loop's tasks issued in that iteration goes out in one ``write``), and replies resolve the
waiting futures first in, first out. This is what the fastest async clients do (django-vcache's
single connection); here it sits *under* redis-py's ``redis.asyncio.Redis``, whose command
methods and reply callbacks stay as they are (:class:`MultiplexedRedis` only replaces
``execute_command``).

What never goes through it (it goes to the bounded pool of the same client): commands that
block the connection or change its state (``BRPOP``, ``XREAD``, ``WAIT``, ``SELECT``,
``CLIENT``, ``MULTI``...), pipelines and transactions (redis-py's ``Pipeline`` uses the pool),
pub/sub. TLS connections keep the pool (:func:`multiplexable`). It speaks the RESP version the
client's reply callbacks expect (``HELLO 3`` on connect for redis-py 8's RESP3 default).

Failure handling, one rule: anything that can leave the reply stream out of step (a reply not
read within ``SOCKET_TIMEOUT``, a lost connection, a protocol error) closes the connection and
fails every command still waiting, with redis-py's ``TimeoutError`` / ``ConnectionError``, so
the cache's failure policy sees the same outages it sees from redis-py; the next command opens
a new connection.
"""

from __future__ import annotations

import asyncio
import collections
import socket
from typing import Any

import hiredis  # the C reply reader (a dependency of the package)
import redis.asyncio as aredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

#: Commands that block their connection or change its state: never on the shared connection.
POOLED_COMMANDS = frozenset(
    {
        "AUTH",
        "BLMOVE",
        "BLMPOP",
        "BLPOP",
        "BRPOP",
        "BRPOPLPUSH",
        "BZMPOP",
        "BZPOPMAX",
        "BZPOPMIN",
        "CLIENT",
        "DISCARD",
        "EXEC",
        "HELLO",
        "MONITOR",
        "MULTI",
        "PSUBSCRIBE",
        "QUIT",
        "READONLY",
        "READWRITE",
        "RESET",
        "SELECT",
        "SSUBSCRIBE",
        "SUBSCRIBE",
        "UNWATCH",
        "WAIT",
        "WAITAOF",
        "WATCH",
        "XREAD",
        "XREADGROUP",
    }
)


def multiplexable(pool: aredis.ConnectionPool) -> bool:
    """Whether ``pool``'s connections can be replaced by one shared connection: plain TCP or a
    Unix socket, undecoded replies."""
    kwargs = pool.connection_kwargs
    if protocol_of(kwargs) not in (2, 3) or kwargs.get("decode_responses"):
        return False
    return pool.connection_class in (aredis.Connection, aredis.UnixDomainSocketConnection)


def protocol_of(kwargs: dict[str, Any]) -> int:
    """The RESP version the pool's connections speak (redis-py's default: 3 since redis-py 8),
    which the reply callbacks of the client expect."""
    from redis import utils

    protocol: Any = kwargs.get("protocol") or getattr(utils, "DEFAULT_RESP_VERSION", 2)
    return int(protocol)


class _Waiter:
    __slots__ = ("deadline", "future")

    def __init__(self, future: asyncio.Future[Any], deadline: float) -> None:
        self.future = future
        self.deadline = deadline


class _Protocol(asyncio.Protocol):
    def __init__(self, owner: Multiplexer) -> None:
        self.owner = owner

    def data_received(self, data: bytes) -> None:
        self.owner.received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.owner.lost(self, exc)


class Multiplexer:
    """The shared connection of one pool's server on one event loop."""

    def __init__(self, pool: aredis.ConnectionPool) -> None:
        kwargs = pool.connection_kwargs
        encoder = pool.get_encoder()  # type: ignore[no-untyped-call]
        self._encode = encoder.encode
        self._text = (encoder.encoding, encoder.encoding_errors)
        self._path: str | None = kwargs.get("path")
        self._address = (str(kwargs.get("host", "localhost")), int(kwargs.get("port", 6379)))
        self._timeout: float | None = kwargs.get("socket_timeout")
        self._connect_timeout: float | None = kwargs.get("socket_connect_timeout") or (
            self._timeout
        )
        handshake: list[tuple[Any, ...]] = []
        password, username = kwargs.get("password"), kwargs.get("username")
        credentials = (username or "default", password) if password else ()
        if protocol_of(kwargs) == 3:
            handshake.append(("HELLO", 3, "AUTH", *credentials) if credentials else ("HELLO", 3))
        elif credentials:
            handshake.append(("AUTH", *credentials))
        if int(kwargs.get("db") or 0):
            handshake.append(("SELECT", int(kwargs["db"])))
        if kwargs.get("client_name"):
            handshake.append(("CLIENT", "SETNAME", kwargs["client_name"]))
        self._handshake = tuple(handshake)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._transport: asyncio.Transport | None = None
        self._protocol: _Protocol | None = None
        self._sock: socket.socket | None = None
        self._reader: Any = None
        self._waiting: collections.deque[_Waiter] = collections.deque()
        self._buffer: list[bytes] = []
        self._flush_scheduled = False
        self._timer: asyncio.TimerHandle | None = None
        self._opening: asyncio.Task[None] | None = None

    # --- commands ------------------------------------------------------------------------------

    async def call(self, args: tuple[Any, ...]) -> Any:
        """Send one command and wait for its reply (an error reply is raised)."""
        if self._transport is None:
            await self._open()
        return await self._queue(args)

    def _queue(self, args: tuple[Any, ...]) -> asyncio.Future[Any]:
        loop = self._loop
        assert loop is not None
        packed = self._pack(args)  # a value Redis cannot take raises here, before any state
        future = loop.create_future()
        deadline = loop.time() + self._timeout if self._timeout else float("inf")
        self._waiting.append(_Waiter(future, deadline))
        self._buffer.append(packed)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        if self._timer is None and self._timeout:
            self._timer = loop.call_at(deadline, self._check_deadline)
        return future

    def _pack(self, args: tuple[Any, ...]) -> bytes:
        """RESP array of bulk strings. Bytes and str (what cache commands send) are encoded
        inline; anything else goes through redis-py's encoder (numbers, its DataError)."""
        encode = self._encode
        parts = [b"*%d\r\n" % len(args)]
        append = parts.append
        for arg in args:
            kind = type(arg)
            if kind is bytes:
                data = arg
            elif kind is str:
                data = arg.encode(*self._text)
            else:
                data = encode(arg)
                if isinstance(data, memoryview):
                    data = bytes(data)
            append(b"$%d\r\n%b\r\n" % (len(data), data))
        return b"".join(parts)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._buffer and self._transport is not None:
            self._transport.write(b"".join(self._buffer))
        self._buffer.clear()

    # --- replies -------------------------------------------------------------------------------

    def received(self, data: bytes) -> None:
        reader = self._reader
        reader.feed(data)
        waiting = self._waiting
        while True:
            try:
                reply = reader.gets()
            except hiredis.ProtocolError as exc:
                self._fail(RedisConnectionError(f"Protocol error from Redis: {exc}"))
                return
            if reply is False:
                return
            if not waiting:
                self._fail(RedisConnectionError("Redis sent a reply nobody asked for."))
                return
            future = waiting.popleft().future
            if future.done():  # a cancelled caller's reply is read and dropped
                continue
            if isinstance(reply, hiredis.ReplyError):
                future.set_exception(_ERRORS.parse_error(str(reply)))
            else:
                future.set_result(reply)

    def _check_deadline(self) -> None:
        self._timer = None
        if not self._waiting or self._loop is None:
            return
        head = self._waiting[0].deadline
        if self._loop.time() >= head:
            self._fail(RedisTimeoutError("Timeout reading from Redis"))
        else:
            self._timer = self._loop.call_at(head, self._check_deadline)

    # --- the connection ------------------------------------------------------------------------

    async def _open(self) -> None:
        """Connect once for every task that asks meanwhile; each sees the same outcome."""
        if self._opening is None:
            self._loop = asyncio.get_running_loop()
            self._opening = self._loop.create_task(self._connect())
        opening = self._opening
        try:
            await asyncio.shield(opening)
        finally:
            if opening.done() and self._opening is opening:
                self._opening = None

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        family = socket.AF_UNIX if self._path else socket.AF_INET
        target: Any = self._path or self._address
        if not self._path:
            info = await loop.getaddrinfo(*self._address, type=socket.SOCK_STREAM)
            family, target = info[0][0], info[0][4]
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            if family != socket.AF_UNIX:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            async with asyncio.timeout(self._connect_timeout):
                await loop.sock_connect(sock, target)
            transport, protocol = await loop.create_connection(lambda: _Protocol(self), sock=sock)
        except TimeoutError:
            sock.close()
            raise RedisTimeoutError("Timeout connecting to server") from None
        except OSError as exc:
            sock.close()
            where = self._path or "{}:{}".format(*self._address)
            raise RedisConnectionError(f"Error connecting to {where}: {exc}") from exc
        self._sock, self._transport, self._protocol = sock, transport, protocol
        self._reader = hiredis.Reader()
        try:
            for command in self._handshake:
                await self._queue(command)
        except BaseException:
            self._fail(RedisConnectionError("The connection's handshake failed."))
            raise

    def lost(self, protocol: _Protocol, exc: Exception | None) -> None:
        if protocol is self._protocol:
            self._fail(RedisConnectionError("Connection closed by server."))

    def _fail(self, error: Exception) -> None:
        """Close the connection and fail every waiting command with ``error``."""
        transport, self._transport, self._protocol = self._transport, None, None
        self._sock = None
        self._buffer.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        waiting, self._waiting = self._waiting, collections.deque()
        for waiter in waiting:
            if not waiter.future.done():
                waiter.future.set_exception(error)
        if transport is not None:
            transport.abort()

    def close(self) -> None:
        """Close now (``aclose``); a later command connects again."""
        self._fail(RedisConnectionError("The connection was closed."))

    def abandon(self) -> None:
        """The loop is closed: no callback can run any more, so close the socket itself."""
        if self._sock is not None:
            self._sock.close()
        self._sock = self._transport = self._protocol = None


class _ErrorParser:
    """redis-py's mapping of an error reply to its exception class (``NOSCRIPT`` to
    ``NoScriptError``, ``WRONGTYPE``...), so callers catch what they catch from redis-py."""

    @staticmethod
    def parse_error(message: str) -> ResponseError:
        from redis._parsers.base import BaseParser

        error: ResponseError = BaseParser.parse_error(message)  # type: ignore[no-untyped-call]
        return error


_ERRORS = _ErrorParser()


class MultiplexedRedis(aredis.Redis):
    """``redis.asyncio.Redis`` whose plain commands share one pipelined connection.

    Built with the same pool as a plain client (kept for :data:`POOLED_COMMANDS`, pipelines and
    scripts' loading), so every redis-py command method, its argument building and its reply
    callback work unchanged.
    """

    def __init__(self, *, connection_pool: aredis.ConnectionPool) -> None:
        super().__init__(connection_pool=connection_pool)
        self.multiplexer = Multiplexer(connection_pool)

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        name = args[0]
        sent = args
        if isinstance(name, str) and " " in name:
            # redis-py names some commands in two words ("SCRIPT LOAD", "CLIENT SETNAME"):
            # two arguments on the wire, and the first one says where the command may go.
            sent = (*name.split(), *args[1:])
        first = sent[0]
        if first in POOLED_COMMANDS or (
            isinstance(first, str) and first.upper() in POOLED_COMMANDS
        ):
            return await super().execute_command(*args, **options)  # type: ignore[no-untyped-call]
        try:
            response = await self.multiplexer.call(sent)
        except ResponseError:
            if "EMPTY_RESPONSE" in options:
                return options["EMPTY_RESPONSE"]
            raise
        options.pop("EMPTY_RESPONSE", None)
        options.pop("NEVER_DECODE", None)  # replies are never decoded here (bytes)
        options.pop("keys", None)
        if name not in self.response_callbacks:
            return response
        result = self.response_callbacks[name](response, **options)
        if asyncio.iscoroutine(result):
            return await result
        return result

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        self.multiplexer.close()
        await super().aclose(close_connection_pool)
