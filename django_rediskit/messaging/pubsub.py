"""JSON publish / subscribe on the kit's Redis, with a subscriber that survives restarts.

**At-most-once.** Redis pub/sub keeps nothing: a message published while a subscriber is
disconnected (a restart, a failover, a network cut, the seconds until the health check notices)
is lost for that subscriber, and nothing says so except the ``on_reconnect`` callback, which
runs after every resubscription so an application can resynchronise (reload what it caches, read
a queue). Use :class:`~django_rediskit.messaging.queue.Queue` for messages that must arrive.

**Reconnect without trusting the client to notice.** redis-py's listener does not always raise
when the server goes away (redis-py issue #3979: after a restart it may just return nothing,
forever). The subscriber sends its own PING every ``PUBSUB_HEALTH_CHECK_INTERVAL`` seconds while
idle; if no pong comes back within another interval (at least ``PONG_TIMEOUT_MIN`` s, so a busy
process is not mistaken for a dead link), or any outage error surfaces, it drops the
connection and subscribes again on a new one, with jittered exponential backoff.

**Names.** Channels are named like keys: ``<KEY_PREFIX>:ch:[<KEY_ENV>:]<channel>``, the channel
parts validated by :class:`~django_rediskit.cache.keys.KeyBuilder` (``"product:changed"`` has two
parts; no whitespace or control characters). Patterns are globs over the part after the prefix
(the prefix is escaped, the pattern is yours). Messages report the short channel name.

**Cluster.** With ``SHARDED_PUBSUB`` (default on a cluster) channels use ``SPUBLISH`` /
``SSUBSCRIBE``: a message goes to the channel's shard only instead of every node, and redis-py
follows slot migrations. Sharded pub/sub has no patterns: pattern subscriptions on a cluster need
``SHARDED_PUBSUB = False`` (classic ``PUBLISH``, broadcast to every node).

**Bad messages** (not JSON: another publisher) are logged and skipped, never raised.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ImproperlyConfigured
from django.core.serializers.json import DjangoJSONEncoder

from django_rediskit.cache.keys import KeyBuilder
from django_rediskit.connection.policy import outage_of, shielded
from django_rediskit.messaging._settings import Backoff, messaging_alias, messaging_settings
from django_rediskit.patterns import glob_escape

if TYPE_CHECKING:
    from redis.client import PubSub

    from django_rediskit.cache.backend import RedisCache

logger = logging.getLogger("django_rediskit.messaging")

HEALTH_CHECK = b"rediskit-health"
#: The least time a pong may take before the connection is declared dead: a process busy in a
#: callback, or starved of CPU, must not turn every health check into a resubscription.
PONG_TIMEOUT_MIN = 1.0


@dataclass(frozen=True)
class Message:
    #: the channel as published (without the prefix)
    channel: str
    #: the decoded JSON
    data: Any
    #: the pattern that matched (without the prefix), for pattern subscriptions
    pattern: str | None = None


def _backend(alias: str | None) -> RedisCache:
    from django_rediskit.aliases import backend_for_alias

    return backend_for_alias(messaging_alias(alias))


def _sharded(backend: RedisCache) -> bool:
    choice = messaging_settings().get("SHARDED_PUBSUB")
    return backend.topology.is_cluster if choice is None else bool(choice)


def _stem(backend: RedisCache) -> str:
    return backend.feature_key("channel", "")


def channel_name(channel: str, alias: str | None = None) -> str:
    """The Redis channel for ``channel``: ``<prefix>:ch:[<env>:]<parts>``."""
    if not isinstance(channel, str):
        raise TypeError(f"Channel names are strings, not {type(channel).__name__}.")
    return _stem(_backend(alias)) + KeyBuilder().key(*channel.split(":"))


def _pattern_name(pattern: str, backend: RedisCache) -> str:
    if not isinstance(pattern, str) or not pattern:
        raise ValueError("A pattern is a non-empty glob string.")
    env = KeyBuilder().env
    return glob_escape(_stem(backend) + (f"{env}:" if env else "")) + pattern


def publish(
    channel: str,
    message: Any,
    *,
    alias: str | None = None,
    encoder: type[json.JSONEncoder] = DjangoJSONEncoder,
) -> int:
    """Send ``message`` (as JSON) to ``channel``; returns how many subscribers received it.

    The count is what Redis reports: on a cluster with classic pub/sub it counts the node that
    took the PUBLISH only. Raises ``RedisUnavailable`` when Redis cannot be reached.
    """
    backend = _backend(alias)
    name = channel_name(channel, alias)
    body = json.dumps(message, cls=encoder, separators=(",", ":"), ensure_ascii=False)
    client = backend.topology.client_for(name, write=True)
    with shielded(backend.breaker):
        if _sharded(backend):
            return int(client.spublish(name, body))
        return int(client.publish(name, body))


class Subscription:
    """Iterate (``for message in subscribe("a")``) or poll (``get_message(timeout)``); use
    :meth:`run_in_thread` for a callback loop. Close it (or use ``with``) when done."""

    def __init__(
        self,
        channels: Iterable[str],
        patterns: Iterable[str] = (),
        *,
        alias: str | None = None,
        health_check_interval: float | None = None,
        on_reconnect: Callable[[], object] | None = None,
    ) -> None:
        conf = messaging_settings()
        self.backend = _backend(alias)
        self.alias = messaging_alias(alias)
        self.sharded = _sharded(self.backend)
        self.channels = [channel_name(c, alias) for c in channels]
        self.patterns = [_pattern_name(p, self.backend) for p in patterns]
        if not self.channels and not self.patterns:
            raise ValueError("Subscribe to at least one channel or pattern.")
        if self.sharded and self.patterns:
            raise ImproperlyConfigured(
                "Sharded pub/sub (the default on Redis Cluster) has no pattern subscriptions; "
                "set REDISKIT['MESSAGING']['SHARDED_PUBSUB'] = False to use classic pub/sub."
            )
        self.interval = float(
            conf["PUBSUB_HEALTH_CHECK_INTERVAL"]
            if health_check_interval is None
            else health_check_interval
        )
        if self.interval <= 0:
            raise ImproperlyConfigured("PUBSUB_HEALTH_CHECK_INTERVAL must be > 0.")
        self.on_reconnect = on_reconnect
        self.backoff = Backoff(
            float(conf["RECONNECT_BACKOFF"]), float(conf["RECONNECT_BACKOFF_CAP"])
        )
        self._stem = _stem(self.backend)
        self._env = KeyBuilder().env
        self._pubsub: PubSub | None = None
        self._nodes = 1
        self._last_traffic = 0.0
        self._ping_sent_at: float | None = None
        self._pongs_due = 0
        self._retry_at = 0.0
        self._connections = 0
        self._closed = False
        #: times the subscriber (re)subscribed; 1 after the first subscription
        self.subscriptions = 0
        self._connect()

    # --- public -------------------------------------------------------------------------------

    def get_message(self, timeout: float = 1.0) -> Message | None:
        """The next message, waiting up to ``timeout`` seconds; None if none came.

        Never raises on outages or bad messages: it reconnects (with backoff) and goes on.
        """
        deadline = time.monotonic() + max(0.0, timeout)
        while not self._closed:
            now = time.monotonic()
            if self._pubsub is None and now >= self._retry_at:
                self._connect()
            if self._pubsub is None:
                wait = min(self._retry_at, deadline) - now
                if wait > 0:
                    time.sleep(wait)
                if time.monotonic() >= deadline:
                    return None
                continue
            try:
                self._health_check(now)
                if self._pubsub is None:
                    continue
                slice_ = max(0.0, min(deadline - now, self.interval / 2))
                # a sharded subscription polls each node in turn with this timeout: split it
                raw = self._read(slice_ / self._nodes)
            except Exception as exc:
                self._lost(exc)
                continue
            if raw is not None:
                self._last_traffic = time.monotonic()
                message = self._message(raw)
                if message is not None:
                    return message
            if time.monotonic() >= deadline:
                return None
        return None

    def __iter__(self) -> Iterator[Message]:
        while not self._closed:
            message = self.get_message(timeout=self.interval)
            if message is not None:
                yield message

    def run_in_thread(
        self, callback: Callable[[Message], object], *, name: str = "rediskit-subscriber"
    ) -> SubscriberThread:
        """Call ``callback(message)`` for every message in a daemon thread; exceptions from the
        callback are logged and the loop goes on. ``thread.stop()`` ends it and closes this
        subscription."""
        thread = SubscriberThread(self, callback, name=name)
        thread.start()
        return thread

    def close(self) -> None:
        self._closed = True
        self._drop()

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- internals ----------------------------------------------------------------------------

    def _connect(self) -> None:
        pubsub: PubSub | None = None
        try:
            client = self.backend.topology.client(write=True)
            pubsub = client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
            if self.sharded:
                pubsub.ssubscribe(*self.channels)
            else:
                if self.channels:
                    pubsub.subscribe(*self.channels)
                if self.patterns:
                    pubsub.psubscribe(*self.patterns)
        except Exception as exc:
            if pubsub is not None:
                with contextlib.suppress(Exception):
                    pubsub.close()
            self._lost(exc)
            return
        self._pubsub = pubsub
        self._nodes = max(1, len(self._node_pubsubs()))
        self._last_traffic = time.monotonic()
        self._ping_sent_at, self._pongs_due = None, 0
        self.subscriptions += 1
        if self.subscriptions > 1:
            logger.info("Subscriber on %s: subscribed again.", self._describe())
            if self.on_reconnect is not None:
                try:
                    self.on_reconnect()
                except Exception:
                    logger.exception("on_reconnect callback failed")
        self.backoff.reset()

    def _health_check(self, now: float) -> None:
        """PING when idle for an interval; reconnect when the pong is an interval late."""
        assert self._pubsub is not None
        if self._ping_sent_at is not None:
            limit = max(self.interval, PONG_TIMEOUT_MIN)
            if now - self._ping_sent_at > limit:
                self._lost(TimeoutError(f"no pong within {limit:.1f} s"))
            return
        if now - self._last_traffic >= self.interval:
            targets = self._node_pubsubs()
            for target in targets:
                target.ping(HEALTH_CHECK.decode())
            self._ping_sent_at, self._pongs_due = now, len(targets)

    def _node_pubsubs(self) -> list[PubSub]:
        """The connections to check: one per node for sharded pub/sub on a cluster."""
        assert self._pubsub is not None
        mapping = getattr(self._pubsub, "node_pubsub_mapping", None)
        if self.sharded and mapping:
            return list(mapping.values())
        return [self._pubsub]

    def _read(self, timeout: float) -> dict[str, Any] | None:
        assert self._pubsub is not None
        if self.sharded:
            reply = self._pubsub.get_sharded_message(timeout=timeout)  # type: ignore[no-untyped-call]
        else:
            reply = self._pubsub.get_message(timeout=timeout)
        return reply if isinstance(reply, dict) else None

    def _message(self, raw: dict[str, Any]) -> Message | None:
        kind = raw.get("type")
        kind = kind.decode() if isinstance(kind, bytes) else kind
        if kind == "pong":
            self._pongs_due -= 1
            if self._pongs_due <= 0:
                self._ping_sent_at = None
            return None
        if kind not in ("message", "pmessage", "smessage"):
            return None
        channel = self._short(raw.get("channel"))
        pattern = self._short(raw.get("pattern")) if kind == "pmessage" else None
        data = raw.get("data")
        try:
            decoded = json.loads(data)  # type: ignore[arg-type]
        except (TypeError, ValueError) as exc:
            logger.warning("Subscriber: message on %r is not JSON (%s); skipped.", channel, exc)
            return None
        return Message(channel, decoded, pattern)

    def _short(self, name: Any) -> str:
        text = name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name)
        head = self._stem + (f"{self._env}:" if self._env else "")
        return text[len(head) :] if text.startswith(head) else text

    def _lost(self, exc: BaseException) -> None:
        """Drop the connection and schedule a new subscription after a backoff. Errors that
        are not outages (a wrong password, a refused command) are bugs: they are raised."""
        self._drop()
        if not isinstance(exc, TimeoutError) and outage_of(exc) is None:
            self._retry_at = time.monotonic() + self.backoff.next()
            raise exc
        delay = self.backoff.next()
        self._retry_at = time.monotonic() + delay
        self.backend.outage_log(
            f"subscriber on {self._describe()}", exc, f"resubscribing in {delay:.2f} s"
        )

    def _drop(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            with contextlib.suppress(Exception):
                pubsub.reset()
            with contextlib.suppress(Exception):
                pubsub.close()

    def _describe(self) -> str:
        names = [*self.channels, *self.patterns]
        return ", ".join(names[:3]) + (f" (+{len(names) - 3})" if len(names) > 3 else "")


def subscribe(
    *channels: str,
    patterns: Iterable[str] = (),
    alias: str | None = None,
    health_check_interval: float | None = None,
    on_reconnect: Callable[[], object] | None = None,
) -> Subscription:
    """Subscribe to channels and/or glob ``patterns``: an iterator of :class:`Message`.

    ``for message in subscribe("product:changed"): ...`` blocks; ``.get_message(timeout)``
    polls; ``.run_in_thread(callback)`` runs a callback loop. See the module docstring for the
    at-most-once guarantee and the reconnect behaviour.
    """
    return Subscription(
        channels,
        patterns,
        alias=alias,
        health_check_interval=health_check_interval,
        on_reconnect=on_reconnect,
    )


class SubscriberThread(threading.Thread):
    """The callback loop of :meth:`Subscription.run_in_thread`."""

    _ids = itertools.count(1)

    def __init__(
        self, subscription: Subscription, callback: Callable[[Message], object], name: str
    ) -> None:
        super().__init__(name=f"{name}-{next(self._ids)}", daemon=True)
        self.subscription = subscription
        self.callback = callback
        self._stop_event = threading.Event()

    def run(self) -> None:
        try:
            while not self._stop_event.is_set():
                try:
                    message = self.subscription.get_message(timeout=0.2)
                except Exception:
                    # A bug, not an outage (those never leave get_message): say so loudly,
                    # wait, and try again rather than let the thread die in silence.
                    logger.exception("Subscriber failed; retrying.")
                    self._stop_event.wait(self.subscription.backoff.next())
                    continue
                if message is None:
                    continue
                try:
                    self.callback(message)
                except Exception:
                    logger.exception("Subscriber callback failed on %r", message.channel)
        finally:
            self.subscription.close()

    def stop(self, timeout: float | None = 5.0) -> None:
        self._stop_event.set()
        self.join(timeout)
