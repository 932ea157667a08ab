"""A reliable work queue on Redis Streams with a consumer group: at-least-once delivery.

Layout (``P`` = the alias's KEY_PREFIX, ``q`` = ``conf.NAMESPACES["queue"]``)::

    P:q:{<name>}:s   the stream: one entry per message, field ``p`` = the JSON payload
    P:q:{<name>}:d   the dead-letter stream: original fields + dead:id, dead:reason,
                     dead:deliveries

Both keys share the hash tag ``{<name>}``, so every script (``lua/queue_*.lua``) runs on one
Redis Cluster node. The consumer group (``REDISKIT["MESSAGING"]["GROUP"]``) lives in the stream.

Guarantees, plainly:

- **At-least-once.** A message is acknowledged (XACK) only after its handler returned. A worker
  that dies (SIGKILL, OOM, a lost host) leaves its deliveries pending; once they have been idle
  longer than the visibility timeout another consumer reclaims them (XAUTOCLAIM) and runs them
  again. So a handler may see a message twice: make it idempotent with ``delivery.id`` (the
  stream id, the same on every delivery of one message).
- **The visibility timeout exceeds the handler deadline** (checked when the queue is built).
  Python cannot stop a running handler; the deadline is what a handler promises. A longer
  handler calls ``delivery.extend()`` (XCLAIM JUSTID: its idle clock restarts) before the
  timeout, or another consumer may run the message concurrently.
- **Failures retry with backoff, then go to the dead letters.** A handler that raises hands the
  message back (its idle clock set so it is reclaimed after ``RETRY_BACKOFF * 2**(n-1)`` s);
  after ``MAX_DELIVERIES`` deliveries it moves to the dead-letter stream atomically (XADD dead +
  XACK + XDEL in one script), with the reason. A payload that is not our JSON (another producer)
  goes there at once; it never reaches the handler and never stops the loop.
- **Trimming never drops unacknowledged entries**: ``XTRIM MINID`` below every group's oldest
  pending id (and never past what a group has not read yet), not a blind ``MAXLEN``.
- **Redis down**: ``enqueue`` raises :class:`~django_rediskit.connection.policy.RedisUnavailable`
  (a ``redis.ConnectionError``) at once; nothing is buffered, so the caller knows the message
  was not queued. ``consume`` logs (rate-limited), waits with jittered exponential backoff and
  reconnects; after a restart that lost the data it recreates the group and continues.
- **Order** is the stream's for first deliveries; a retried message comes after later ones.
"""

from __future__ import annotations

import inspect
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from django.core.exceptions import ImproperlyConfigured
from django.core.serializers.json import DjangoJSONEncoder
from redis.exceptions import ResponseError

from django_rediskit import lua
from django_rediskit.connection.policy import outage_of, shielded
from django_rediskit.messaging._settings import Backoff, messaging_alias, messaging_settings
from django_rediskit.messaging.delivery import (
    PAYLOAD_FIELD,
    BadPayload,
    DeadLetter,
    Delivery,
    QueueStats,
    RawEntry,
    decode_payload,
    default_consumer_name,
    encode_payload,
    entry_fields,
    stream_entries,
    text,
)
from django_rediskit.patterns import glob_escape

if TYPE_CHECKING:
    from redis import Redis

    from django_rediskit.cache.backend import RedisCache
    from django_rediskit.connection.topology import Topology

__all__ = [
    "BadPayload",
    "DeadLetter",
    "Delivery",
    "Queue",
    "QueueStats",
    "default_consumer_name",
    "encode_payload",
]

logger = logging.getLogger("django_rediskit.messaging")

#: Queue names become part of keys and of the hash tag: no braces, separators or spaces.
NAME_RE: Final = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")
#: Entries one trim may remove (bounded work: a long-idle queue is trimmed over several calls).
TRIM_LIMIT: Final = 10_000

Handler = Callable[["Delivery"], object]


class Queue:
    """A named queue on the Redis of a ``CACHES`` alias.

    ``Queue("emails").enqueue({"to": ...})`` from anywhere; ``Queue("emails").consume(handler)``
    in a worker (``manage.py rediskit_worker`` runs the queues of ``REDISKIT["MESSAGING"]
    ["QUEUES"]``). Options default to ``REDISKIT["MESSAGING"]``; times are in seconds.
    """

    def __init__(
        self,
        name: str,
        *,
        alias: str | None = None,
        group: str | None = None,
        visibility_timeout: float | None = None,
        handler_deadline: float | None = None,
        max_deliveries: int | None = None,
        retry_backoff: float | None = None,
        encoder: type[json.JSONEncoder] = DjangoJSONEncoder,
    ) -> None:
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise ValueError(f"Queue name {name!r} must match {NAME_RE.pattern}.")
        conf = messaging_settings()
        self.name = name
        self.alias = messaging_alias(alias)
        self.group: str = group or conf["GROUP"]
        self.visibility_timeout = float(
            conf["VISIBILITY_TIMEOUT"] if visibility_timeout is None else visibility_timeout
        )
        self.handler_deadline = float(
            conf["HANDLER_DEADLINE"] if handler_deadline is None else handler_deadline
        )
        self.max_deliveries = int(
            conf["MAX_DELIVERIES"] if max_deliveries is None else max_deliveries
        )
        self.retry_backoff = float(
            conf["RETRY_BACKOFF"] if retry_backoff is None else retry_backoff
        )
        if not 0 < self.handler_deadline < self.visibility_timeout:
            raise ImproperlyConfigured(
                f"Queue {name!r}: the visibility timeout ({self.visibility_timeout} s) must exceed "
                f"the handler deadline ({self.handler_deadline} s), or a message still being "
                "handled would be reclaimed and run twice at once."
            )
        if self.max_deliveries < 1 or self.retry_backoff < 0:
            raise ImproperlyConfigured("MAX_DELIVERIES must be >= 1 and RETRY_BACKOFF >= 0.")
        self.encoder = encoder
        self._conf = conf
        self._reader_lock = threading.Lock()
        self._readers: dict[int, Topology] = {}
        self._backend: RedisCache | None = None
        self.stream_key, self.dead_key = self._keys()

    def __repr__(self) -> str:
        return f"<Queue {self.name!r} alias={self.alias!r}>"

    # --- connections ---------------------------------------------------------------------------

    @property
    def backend(self) -> RedisCache:
        if self._backend is None:
            from django_rediskit.aliases import backend_for_alias

            self._backend = backend_for_alias(self.alias)
        return self._backend

    def _keys(self) -> tuple[str, str]:
        stem = self.backend.feature_key("queue", "{" + self.name + "}")
        return f"{stem}:s", f"{stem}:d"

    @property
    def client(self) -> Redis:
        """The alias's client for short commands (enqueue, stats, acks)."""
        return self.backend.topology.client_for(self.stream_key, write=True)

    def _reader(self, block_ms: int) -> Redis:
        """A client whose socket timeout outlasts a blocking XREADGROUP of ``block_ms``.

        A sibling of the alias's topology (its own pools, no redis-py retries): the consumer loop
        has its own reconnect-with-backoff, and a cache's short SOCKET_TIMEOUT must not cut a
        block short.
        """
        topology = self._readers.get(block_ms)
        if topology is None:
            with self._reader_lock:
                topology = self._readers.get(block_ms)
                if topology is None:
                    base = self.backend.topology
                    timeout = float(base.options.get("SOCKET_TIMEOUT", 5.0)) + block_ms / 1000
                    connect = float(base.options.get("SOCKET_CONNECT_TIMEOUT", 1.0))
                    topology = self._readers[block_ms] = base.with_timeouts(timeout, connect)
        return topology.client_for(self.stream_key, write=True)

    def close(self) -> None:
        """Disconnect the consumer-side pools (the alias's own pools stay: they are shared)."""
        with self._reader_lock:
            for topology in self._readers.values():
                topology.disconnect()
            self._readers.clear()

    # --- producing -----------------------------------------------------------------------------

    def enqueue(self, payload: Any) -> str:
        """Add a message; returns its id. One round trip (XADD).

        Raises ``TypeError`` for a payload JSON cannot hold, and ``RedisUnavailable`` when Redis
        cannot be reached (the message is then not queued: nothing is buffered in-process).
        """
        body = encode_payload(payload, self.encoder)
        with shielded(self.backend.breaker):
            return text(self.client.xadd(self.stream_key, {PAYLOAD_FIELD: body}))

    def enqueue_many(self, payloads: Iterable[Any]) -> list[str]:
        """Add several messages in one round trip (a pipeline of XADDs); returns their ids.

        Not atomic: after a connection error some may have been added (their ids are lost with
        the reply), so callers that retry should expect duplicates, as with any at-least-once
        producer.
        """
        bodies = [encode_payload(payload, self.encoder) for payload in payloads]
        if not bodies:
            return []
        with shielded(self.backend.breaker):
            pipe = self.client.pipeline(transaction=False)
            for body in bodies:
                pipe.xadd(self.stream_key, {PAYLOAD_FIELD: body})
            return [text(reply) for reply in pipe.execute()]

    # --- consuming -----------------------------------------------------------------------------

    def ensure_group(self, client: Redis | None = None) -> None:
        """Create the stream and its group if missing. The group starts at id 0, so messages
        enqueued before any worker ever ran are delivered too."""
        client = client or self.client
        try:
            client.xgroup_create(self.stream_key, self.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def consume(
        self,
        handler: Handler,
        *,
        batch: int | None = None,
        block_ms: int | None = None,
        stop: threading.Event | None = None,
        consumer: str | None = None,
        max_messages: int | None = None,
    ) -> int:
        """Run ``handler(delivery)`` for messages until ``stop`` is set; returns how many were
        handled (acknowledged, retried or dead-lettered).

        Each round reclaims messages idle past the visibility timeout (or handed back after a
        failure), else reads up to ``batch`` new ones, blocking at most ``block_ms``. ``stop``
        is checked between messages: the message being handled finishes and is acknowledged;
        messages fetched but not started are handed back at once (never acknowledged).
        ``max_messages`` ends the loop after that many (tests, one-shot drains).
        """
        batch = int(self._conf["BATCH"] if batch is None else batch)
        block_ms = int(self._conf["BLOCK_MS"] if block_ms is None else block_ms)
        if batch < 1 or block_ms < 0:
            raise ValueError("batch must be >= 1 and block_ms >= 0.")
        stop = stop or threading.Event()
        state = _ConsumerState(
            consumer or default_consumer_name(),
            Backoff(
                float(self._conf["RECONNECT_BACKOFF"]), float(self._conf["RECONNECT_BACKOFF_CAP"])
            ),
        )
        # Reclaim often enough that a retry backoff or a visibility timeout is honoured closely,
        # rarely enough that an idle queue costs little.
        reclaim_every = max(0.05, min(1.0, self.visibility_timeout / 10, self.retry_backoff / 2))
        trim_every = float(self._conf["TRIM_INTERVAL"])
        while not stop.is_set() and (max_messages is None or state.handled < max_messages):
            try:
                reader = self._reader(block_ms)
                if not state.group_ready:
                    self.ensure_group(reader)
                    state.group_ready = True
                raws: list[RawEntry] = []
                now = time.monotonic()
                if now >= state.next_reclaim:
                    self._flush_acks(reader, state)
                    raws = self._reclaim(reader, state, batch)
                    state.next_reclaim = now + reclaim_every
                if not raws:
                    limit = (
                        batch if max_messages is None else min(batch, max_messages - state.handled)
                    )
                    # the previous batch's XACK travels with this read: one round trip
                    raws = self._read(reader, state, limit, block_ms)
                self._handle(handler, reader, state, raws, stop)
                if time.monotonic() >= state.next_trim:
                    self._flush_acks(reader, state)
                    self.trim(reader)
                    state.next_trim = time.monotonic() + trim_every
                if state.backoff.failures:
                    logger.info("Queue %r: consumer %s reconnected.", self.name, state.consumer)
                state.backoff.reset()
            except ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                # The stream or group vanished (a restart that lost the data, a DEL): recreate.
                state.group_ready = False
                state.acks.clear()  # those deliveries died with the group
            except Exception as exc:
                cause = outage_of(exc)
                if cause is None:
                    raise
                delay = state.backoff.next()
                self.backend.outage_log(
                    f"queue[{self.name}] consumer {state.consumer}",
                    cause,
                    f"reconnecting in {delay:.2f} s",
                )
                stop.wait(delay)
        self._flush_acks_quietly(state)
        return state.handled

    def _read(
        self, client: Redis, state: _ConsumerState, count: int, block_ms: int
    ) -> list[RawEntry]:
        """XREADGROUP of new messages, preceded by the acknowledgements still to send in the
        same pipeline (a cluster's pipelines route by key; there they go as two calls)."""
        block = block_ms or None
        streams: dict[Any, Any] = {self.stream_key: ">"}
        if state.acks and hasattr(client, "connection_pool"):
            pipe = client.pipeline(transaction=False)
            pipe.xack(self.stream_key, self.group, *state.acks)
            pipe.xreadgroup(self.group, state.consumer, streams, count=count, block=block)
            _acked, reply = pipe.execute()
            state.acks.clear()
        else:
            self._flush_acks(client, state)
            reply = client.xreadgroup(self.group, state.consumer, streams, count=count, block=block)
        raws: list[RawEntry] = []
        for _stream, entries in stream_entries(reply):
            for entry_id, fields in entries:
                raws.append(RawEntry(text(entry_id), 1, entry_fields(fields or {})))
        return raws

    def _reclaim(self, client: Redis, state: _ConsumerState, count: int) -> list[RawEntry]:
        reply = lua.script("queue_reclaim")(
            [self.stream_key, self.dead_key],
            [
                self.group,
                state.consumer,
                int(self.visibility_timeout * 1000),
                state.cursor,
                count,
                self.max_deliveries,
            ],
            client=client,
        )
        state.cursor = text(reply[0])
        if int(reply[2]):
            logger.warning(
                "Queue %r: %d message(s) moved to the dead letters after %d deliveries.",
                self.name,
                int(reply[2]),
                self.max_deliveries,
            )
            state.handled += int(reply[2])
        raws = []
        for entry_id, deliveries, flat in reply[1]:
            fields = entry_fields(dict(zip(flat[::2], flat[1::2], strict=True)))
            raws.append(RawEntry(text(entry_id), int(deliveries), fields))
        return raws

    def _handle(
        self,
        handler: Handler,
        client: Redis,
        state: _ConsumerState,
        raws: Sequence[RawEntry],
        stop: threading.Event,
    ) -> None:
        claimed_at = time.monotonic()
        for index, raw in enumerate(raws):
            if stop.is_set():
                # Graceful stop: never ack what was not run; hand it back for another consumer.
                self._set_idle(
                    state.consumer,
                    [r.id for r in raws[index:]],
                    int(self.visibility_timeout * 1000),
                    client,
                )
                return
            if time.monotonic() - claimed_at > self.visibility_timeout / 3:
                # A slow batch: acknowledge what is done (it must not idle into a reclaim) and
                # keep the claim on the messages still waiting their turn.
                self._flush_acks(client, state)
                self._set_idle(state.consumer, [r.id for r in raws[index:]], 0, client)
                claimed_at = time.monotonic()
            try:
                payload = decode_payload(raw.fields)
            except BadPayload as exc:
                logger.error(
                    "Queue %r: message %s is not ours (%s); dead-lettered.", self.name, raw.id, exc
                )
                self._bury(client, state.consumer, raw, f"bad payload: {exc}")
                state.handled += 1
                continue
            delivery = Delivery(raw.id, payload, raw.deliveries, self, state.consumer)
            started = time.monotonic()
            try:
                result = handler(delivery)
                if inspect.isawaitable(result):
                    # An async handler: run it to completion here. Never ack a coroutine that
                    # was only created (it would count as done without having run).
                    _run_awaitable(result)
            except Exception as exc:
                state.handled += 1
                self._failed(client, state.consumer, raw, exc)
                continue
            finally:
                elapsed = time.monotonic() - started
                if elapsed > self.handler_deadline:
                    logger.warning(
                        "Queue %r: handler took %.1f s on %s, past its %.1f s deadline.",
                        self.name,
                        elapsed,
                        raw.id,
                        self.handler_deadline,
                    )
            state.acks.append(raw.id)
            state.handled += 1

    def _failed(self, client: Redis, consumer: str, raw: RawEntry, exc: Exception) -> None:
        reason = f"{type(exc).__name__}: {exc}"[:500]
        if raw.deliveries >= self.max_deliveries:
            logger.error(
                "Queue %r: message %s failed on delivery %d of %d (%s); dead-lettered.",
                self.name,
                raw.id,
                raw.deliveries,
                self.max_deliveries,
                reason,
            )
            self._bury(client, consumer, raw, reason)
            return
        backoff = self.retry_backoff * 2 ** (raw.deliveries - 1)
        logger.warning(
            "Queue %r: message %s failed on delivery %d (%s); retry in %.1f s.",
            self.name,
            raw.id,
            raw.deliveries,
            reason,
            backoff,
            exc_info=exc,
        )
        # Reclaimable once idle past the visibility timeout: pretend it has idled this long.
        idle_ms = max(0, int((self.visibility_timeout - backoff) * 1000))
        self._set_idle(consumer, [raw.id], idle_ms, client)

    def _bury(self, client: Redis, consumer: str, raw: RawEntry, reason: str) -> None:
        lua.script("queue_bury")(
            [self.stream_key, self.dead_key],
            [self.group, consumer, raw.id, reason, raw.deliveries],
            client=client,
        )

    def _set_idle(
        self, consumer: str, ids: Sequence[str], idle_ms: int, client: Redis | None = None
    ) -> list[str]:
        if not ids:
            return []
        done = lua.script("queue_claim")(
            [self.stream_key], [self.group, consumer, idle_ms, *ids], client=client or self.client
        )
        return [text(i) for i in done]

    def _flush_acks(self, client: Redis, state: _ConsumerState) -> None:
        if state.acks:
            client.xack(self.stream_key, self.group, *state.acks)
            state.acks.clear()

    def _flush_acks_quietly(self, state: _ConsumerState) -> None:
        """At the end of ``consume``: ack what finished; an outage now only means those
        messages will be delivered again (at-least-once), so it is logged, not raised."""
        try:
            self._flush_acks(self.client, state)
        except Exception as exc:
            cause = outage_of(exc)
            if cause is None:
                raise
            logger.warning(
                "Queue %r: %d acknowledgement(s) not sent (%s); those messages will be "
                "delivered again.",
                self.name,
                len(state.acks),
                cause,
            )

    # --- upkeep and inspection -----------------------------------------------------------------

    def trim(self, client: Redis | None = None) -> int:
        """Remove entries every group has acknowledged (XTRIM MINID below the oldest pending
        id); returns how many went. Consumers call it every ``TRIM_INTERVAL`` seconds."""
        reply = lua.script("queue_trim")(
            [self.stream_key], [TRIM_LIMIT], client=client or self.client
        )
        return int(reply[0])

    def stats(self) -> QueueStats:
        """Length, pending, lag, dead letters and consumers: one pipeline (one round trip)."""
        with shielded(self.backend.breaker):
            pipe = self.client.pipeline(transaction=False)
            pipe.xlen(self.stream_key)
            pipe.xlen(self.dead_key)
            pipe.xinfo_groups(self.stream_key)
            try:
                length, dead, groups = pipe.execute()
            except ResponseError as exc:
                if "no such key" not in str(exc).lower():
                    raise
                return QueueStats(0, 0, 0, int(self.client.xlen(self.dead_key)), 0)
        mine = next((g for g in groups if text(g.get("name")) == self.group), None)
        if mine is None:
            return QueueStats(int(length), 0, int(length), int(dead), 0)
        lag = mine.get("lag")
        return QueueStats(
            length=int(length),
            pending=int(mine.get("pending") or 0),
            lag=None if lag is None else int(lag),
            dead_letters=int(dead),
            consumers=int(mine.get("consumers") or 0),
        )

    def dead_letters(self, count: int = 100, start: str = "-") -> list[DeadLetter]:
        """The oldest ``count`` dead letters from ``start`` (bounded: XRANGE COUNT)."""
        with shielded(self.backend.breaker):
            entries = self.client.xrange(self.dead_key, min=start, count=count)
        letters = []
        for entry_id, raw_fields in entries or []:
            # surrogateescape: foreign bytes survive the round trip through requeue_dead()
            fields = {
                text(k, "surrogateescape"): text(v, "surrogateescape")
                for k, v in (raw_fields or {}).items()
            }
            letters.append(
                DeadLetter(
                    id=text(entry_id),
                    message_id=fields.pop("dead:id", ""),
                    reason=fields.pop("dead:reason", ""),
                    deliveries=int(fields.pop("dead:deliveries", "0") or 0),
                    fields=fields,
                )
            )
        return letters

    def requeue_dead(self, letters: Iterable[DeadLetter]) -> list[str]:
        """Put dead letters back on the queue as new messages (new ids) and drop them from the
        dead letters. At-least-once: a crash between the two leaves a copy in both."""
        letters = list(letters)
        with shielded(self.backend.breaker):
            pipe = self.client.pipeline(transaction=False)
            for letter in letters:
                pipe.xadd(
                    self.stream_key, {k.encode(): v.encode() for k, v in letter.fields.items()}
                )
            for letter in letters:
                pipe.xdel(self.dead_key, letter.id)
            replies = pipe.execute()
        return [text(reply) for reply in replies[: len(letters)]]

    def delete(self) -> int:
        """Delete the queue: its stream (with its group and pending state), its dead letters and
        every other key under its hash tag (write-behind records). Returns the keys deleted.

        SCAN in batches and UNLINK (bounded work), never KEYS; on a cluster the tag is one slot.
        """
        topology = self.backend.topology
        pattern = glob_escape(self.stream_key[: -len(":s")]) + ":*"
        deleted = 0
        with shielded(self.backend.breaker):
            batch: list[str | bytes] = []
            for key in topology.scan_iter(pattern, self.backend.scan_count, write=True):
                batch.append(key)
                if len(batch) >= self.backend.delete_batch_size:
                    deleted += topology.unlink(batch)
                    batch = []
            deleted += topology.unlink(batch) if batch else 0
        return deleted


def _run_awaitable(awaitable: Any) -> Any:
    from asgiref.sync import async_to_sync

    async def wait() -> Any:
        return await awaitable

    return async_to_sync(wait)()


@dataclass
class _ConsumerState:
    consumer: str
    backoff: Backoff
    group_ready: bool = False
    cursor: str = "0-0"
    next_reclaim: float = 0.0
    next_trim: float = 0.0
    handled: int = 0
    acks: list[str] = field(default_factory=list)
