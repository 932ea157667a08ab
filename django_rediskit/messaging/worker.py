"""The worker behind ``manage.py rediskit_worker``: consumer threads, graceful stop, heartbeat.

A worker runs ``--concurrency`` consumer threads per queue (each its own consumer name in the
group). SIGTERM or SIGINT sets one stop event: every thread finishes the message it is handling,
acknowledges it, hands the messages it fetched but did not start back to the group (reclaimable
at once) and returns; nothing unfinished is ever acknowledged. A second signal kills at once
(the default action): pending messages are then reclaimed after the visibility timeout.

While it runs, the worker keeps a heartbeat key ``<prefix>:wk:<worker id>`` (JSON: host, pid,
queues, threads, started, last beat, messages handled) with a TTL of three intervals, so the
admin inspector (namespace "worker") and :func:`live_workers` show the workers that are alive;
a crashed worker's key expires by itself.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from django_rediskit.connection.policy import outage_of
from django_rediskit.messaging._settings import messaging_alias, messaging_settings
from django_rediskit.messaging.queue import Delivery, Queue
from django_rediskit.patterns import glob_escape

logger = logging.getLogger("django_rediskit.messaging")

WRITE_BEHIND_HANDLER = "django_rediskit.messaging.writebehind.apply"
#: Options a QUEUES entry may set besides HANDLER (the Queue constructor's, upper-cased).
QUEUE_OPTIONS = {
    "VISIBILITY_TIMEOUT": "visibility_timeout",
    "HANDLER_DEADLINE": "handler_deadline",
    "MAX_DELIVERIES": "max_deliveries",
    "RETRY_BACKOFF": "retry_backoff",
    "ALIAS": "alias",
}


def configured_queues() -> dict[str, dict[str, Any]]:
    """``REDISKIT["MESSAGING"]["QUEUES"]`` normalised to ``{name: {"HANDLER": path, ...}}``,
    plus the write-behind queue (its handler applies queued writes to the database)."""
    conf = messaging_settings()
    raw = conf.get("QUEUES") or {}
    if not isinstance(raw, dict):
        raise ImproperlyConfigured("REDISKIT['MESSAGING']['QUEUES'] must be a dict.")
    queues: dict[str, dict[str, Any]] = {}
    for name, entry in raw.items():
        spec = {"HANDLER": entry} if isinstance(entry, str) else dict(entry)
        if not isinstance(spec.get("HANDLER"), str):
            raise ImproperlyConfigured(
                f"REDISKIT['MESSAGING']['QUEUES'][{name!r}] needs a HANDLER dotted path."
            )
        unknown = set(spec) - {"HANDLER", *QUEUE_OPTIONS}
        if unknown:
            raise ImproperlyConfigured(
                f"REDISKIT['MESSAGING']['QUEUES'][{name!r}] has unknown keys {sorted(unknown)}."
            )
        queues[name] = spec
    queues.setdefault(str(conf["WRITE_BEHIND_QUEUE"]), {"HANDLER": WRITE_BEHIND_HANDLER})
    return queues


def build_queue(name: str, spec: dict[str, Any]) -> tuple[Queue, Callable[[Delivery], object]]:
    handler = import_string(spec["HANDLER"])
    if not callable(handler):
        raise ImproperlyConfigured(f"Queue {name!r}: {spec['HANDLER']} is not callable.")
    options = {arg: spec[key] for key, arg in QUEUE_OPTIONS.items() if key in spec}
    return Queue(name, **options), handler


def heartbeat_key(queue_alias: str, worker_id: str) -> str:
    from django_rediskit.aliases import backend_for_alias

    return backend_for_alias(queue_alias).feature_key("worker", worker_id)


@dataclass
class Worker:
    """Consumer threads for some queues, one stop event, one heartbeat."""

    queues: list[tuple[Queue, Callable[[Delivery], object]]]
    concurrency: int = 1
    batch: int | None = None
    block_ms: int | None = None
    alias: str | None = None
    worker_id: str = field(
        default_factory=lambda: f"{socket.gethostname()[:40]}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    )
    stop: threading.Event = field(default_factory=threading.Event)
    handled: dict[str, int] = field(default_factory=dict)
    errors: list[BaseException] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        self.alias = messaging_alias(self.alias)
        self.started = time.time()
        self._lock = threading.Lock()

    def install_signal_handlers(self) -> None:
        """SIGTERM / SIGINT: graceful stop; a second one falls back to the default action."""

        def on_signal(signum: int, frame: FrameType | None) -> None:
            logger.warning(
                "Worker %s: signal %d, finishing current messages.", self.worker_id, signum
            )
            self.stop.set()
            signal.signal(signum, signal.SIG_DFL)

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)

    def _consume(self, queue: Queue, handler: Callable[[Delivery], object], index: int) -> None:
        consumer = f"{self.worker_id}-{queue.name}-{index}"
        try:
            count = queue.consume(
                handler, batch=self.batch, block_ms=self.block_ms, stop=self.stop, consumer=consumer
            )
        except BaseException as exc:  # a bug (not an outage: consume retries those)
            logger.exception(
                "Worker %s: consumer %s stopped on an error.", self.worker_id, consumer
            )
            with self._lock:
                self.errors.append(exc)
            self.stop.set()
            return
        with self._lock:
            self.handled[queue.name] = self.handled.get(queue.name, 0) + count

    def run(self) -> int:
        """Consume until stopped; returns 0, or 1 when a consumer stopped on a bug."""
        threads = [
            threading.Thread(
                target=self._consume,
                args=(queue, handler, index),
                name=f"rediskit-worker-{queue.name}-{index}",
            )
            for queue, handler in self.queues
            for index in range(self.concurrency)
        ]
        for thread in threads:
            thread.start()
        interval = float(messaging_settings()["HEARTBEAT_INTERVAL"])
        try:
            while not self.stop.is_set():
                self.beat(interval)
                self.stop.wait(interval)
        finally:
            self.stop.set()
            for thread in threads:
                thread.join()
            self.clear_heartbeat()
            for queue, _handler in self.queues:
                queue.close()
        return 1 if self.errors else 0

    def heartbeat(self) -> dict[str, Any]:
        return {
            "id": self.worker_id,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "queues": [queue.name for queue, _ in self.queues],
            "concurrency": self.concurrency,
            "started": round(self.started, 3),
            "beat": round(time.time(), 3),
            "handled": dict(self.handled),
        }

    def beat(self, interval: float) -> None:
        """Refresh the heartbeat key (TTL: three intervals). An outage is logged, not fatal:
        consumers have their own reconnect loop, and the key expires while Redis is away."""
        from django_rediskit import get_redis

        key = heartbeat_key(str(self.alias), self.worker_id)
        try:
            get_redis(str(self.alias), key=key).set(
                key, json.dumps(self.heartbeat()), ex=max(1, int(interval * 3 + 0.999))
            )
        except Exception as exc:
            if outage_of(exc) is None:
                raise
            logger.warning("Worker %s: heartbeat not written (%s).", self.worker_id, exc)

    def clear_heartbeat(self) -> None:
        from django_rediskit import get_redis

        key = heartbeat_key(str(self.alias), self.worker_id)
        try:
            get_redis(str(self.alias), key=key).delete(key)
        except Exception as exc:
            if outage_of(exc) is None:
                raise


def live_workers(alias: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
    """The heartbeats of the workers alive on an alias (SCAN of ``<prefix>:wk:*`` on every
    primary, at most ``limit`` keys: bounded work)."""
    from django_rediskit.aliases import backend_for_alias

    backend = backend_for_alias(messaging_alias(alias))
    pattern = glob_escape(backend.feature_key("worker", "")) + "*"
    keys: list[bytes] = []
    for key in backend.topology.scan_iter(pattern, backend.scan_count, write=True):
        keys.append(key)
        if len(keys) >= limit:
            break
    beats = []
    for key, value in zip(
        keys, backend.topology.mget([k.decode() for k in keys], write=True), strict=True
    ):
        if value is None:
            continue  # expired between the scan and the read
        try:
            beats.append(json.loads(value))
        except ValueError:
            logger.warning("Heartbeat key %r does not hold JSON; skipped.", key)
    return sorted(beats, key=lambda beat: str(beat.get("id")))


def select_queues(names: Iterable[str]) -> list[tuple[Queue, Callable[[Delivery], object]]]:
    """The named configured queues (all of them when ``names`` is empty)."""
    queues = configured_queues()
    chosen = list(names) or list(queues)
    unknown = [name for name in chosen if name not in queues]
    if unknown:
        raise ImproperlyConfigured(
            f"Unknown queue(s) {', '.join(map(repr, unknown))}; configured: "
            f"{', '.join(map(repr, queues))} (REDISKIT['MESSAGING']['QUEUES'])."
        )
    return [build_queue(name, queues[name]) for name in chosen]
