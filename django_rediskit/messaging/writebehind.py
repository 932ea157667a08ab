"""Write-behind and write-through: a cache that takes writes at once, a database that gets them.

**Write-behind** (``write_behind``): hot writes (view counters, "last seen" times) land in Redis
at once, in one atomic script that also queues the durable write on the write-behind queue
(``REDISKIT["MESSAGING"]["WRITE_BEHIND_QUEUE"]``); ``manage.py rediskit_worker`` applies them to
the database. Layout, all under the queue's hash tag (one cluster slot, so each step is one
script)::

    P:q:{write-behind}:s                 the queue's stream (messages: {"w": target, "k": key})
    P:q:{write-behind}:v:<target>:<key>  the key's record: HASH v (value), n (version), d (dirty)

- **Coalescing**: a key has at most one queued message while it is dirty, whatever the number
  of writes; the worker writes the latest value, once. 10,000 increments of one counter cost a
  handful of database writes.
- **Exact counters**: an increment is ``HINCRBY`` on the record, which starts from the database
  value (read once, when the record is missing). The worker writes the *absolute* total, not a
  delta, so a redelivered message (a worker killed after its database write, before its ack)
  writes the same total again instead of adding twice: idempotent by construction.
- **Order**: the worker marks a record clean only if no write came after the version it
  applied (``lua/wb_done.lua``); otherwise it queues the key again. Reads (``get``) see the record
  while it lives (the latest value), else the database.
- **Durability is Redis's** until the worker has run: a write acknowledged to the caller lives
  in Redis only, so a Redis that loses data (no AOF, a failover with replica lag) loses the
  writes not yet applied. Use Redis persistence (``appendonly yes``) for what must not be lost,
  or ``write_through``. A field written through write-behind must not be written elsewhere:
  the record would overwrite it with its own total.
- **Redis down**: ``set``/``incr`` raise ``RedisUnavailable``; nothing is buffered in-process.

**Write-through** (``write_through(key, fn)``): ``fn()`` writes the database inside
``transaction.atomic``; the cache is set from its return value in ``on_commit``, so a rolled back
transaction never reaches the cache, and readers never see a value the database does not have.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, TypeVar

from django.apps import apps
from django.core.cache import caches
from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.exceptions import ImproperlyConfigured
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models, transaction
from django.utils.module_loading import import_string

from django_rediskit import lua
from django_rediskit.connection.policy import shielded
from django_rediskit.messaging._settings import messaging_alias, messaging_settings
from django_rediskit.messaging.queue import Delivery, Queue

if TYPE_CHECKING:
    from redis import Redis

logger = logging.getLogger("django_rediskit.messaging")

#: How long a clean record keeps serving reads after its value reached the database.
CLEAN_TTL_MS: Final = 3_600_000
MARK: Final = "__rediskit_write_behind__"

T = TypeVar("T")
Apply = Callable[[str, Any], object]


def _dumps(value: Any) -> str:
    return json.dumps(value, cls=DjangoJSONEncoder, separators=(",", ":"), ensure_ascii=False)


class WriteBehind:
    """One write-behind target: a model field, or a function that applies ``(key, value)``.

    Build it with :func:`write_behind`. ``target`` names it in queued messages: the worker
    resolves it again from that name (``app_label.Model.field``, or the function's dotted path,
    which must carry the ``@write_behind`` mark: a queued message cannot make the worker call
    any other function).
    """

    def __init__(
        self,
        target: str,
        apply: Apply,
        read: Callable[[str], Any] | None = None,
        *,
        alias: str | None = None,
    ) -> None:
        if not target or any(c.isspace() for c in target) or "{" in target or "}" in target:
            raise ValueError(f"Bad write-behind target name {target!r}.")
        self.target = target
        self.apply = apply
        self.read = read
        self._alias = alias  # resolved on first use: @write_behind runs at import time
        self._queue: Queue | None = None

    def __repr__(self) -> str:
        return f"<WriteBehind {self.target}>"

    @property
    def alias(self) -> str:
        return messaging_alias(self._alias)

    @property
    def queue(self) -> Queue:
        """The write-behind queue, as configured now (settings may change in tests)."""
        name = str(messaging_settings()["WRITE_BEHIND_QUEUE"])
        queue = self._queue
        if queue is None or queue.name != name or queue.alias != self.alias:
            queue = self._queue = Queue(name, alias=self.alias)
        return queue

    def record_key(self, key: Any) -> str:
        text = str(key)
        if not text or any(c.isspace() or not c.isprintable() for c in text):
            raise ValueError(f"Write-behind key {key!r} must be printable, without whitespace.")
        # the stream key is <prefix>:q:{<queue>}:s; records sit beside it, under the same tag
        return f"{self.queue.stream_key[:-2]}:v:{self.target}:{text}"

    def _message(self, key: Any) -> str:
        return _dumps({"w": self.target, "k": str(key)})

    def _client(self) -> Redis:
        return self.queue.client

    def _write(self, mode: str, key: Any, arg: Any, base: Any = "") -> Any:
        record = self.record_key(key)
        script = lua.script("wb_write")
        with shielded(self.queue.backend.breaker):
            return script(
                [record, self.queue.stream_key],
                [mode, arg, self._message(key), base],
                client=self._client(),
            )

    # --- public ---------------------------------------------------------------------------------

    def set(self, key: Any, value: Any) -> None:
        """Store ``value`` for ``key`` now; the database gets the latest value later."""
        self._write("set", key, _dumps(value))

    def incr(self, key: Any, amount: int = 1) -> int:
        """Add ``amount`` to the counter ``key`` now; returns the new total. The database gets
        the exact total later (coalesced: one write for any number of increments)."""
        if isinstance(amount, bool) or not isinstance(amount, int):
            raise TypeError(f"amount must be an int, not {amount!r}")
        status, value, _version = self._write("incr", key, amount)
        if int(status) == 0:
            if self.read is None:
                raise ImproperlyConfigured(f"{self}: counters need read= (the database value).")
            base = self.read(str(key))
            status, value, _version = self._write("incr", key, amount, int(base or 0))
        return int(value)

    def get(self, key: Any, default: Any = None) -> Any:
        """The latest value: the record's while it lives (written, not yet expired), else the
        database's (through ``read``), else ``default``."""
        with shielded(self.queue.backend.breaker):
            raw = self._client().hget(self.record_key(key), "v")
        if raw is not None:
            text = raw.decode() if isinstance(raw, bytes) else str(raw)
            return json.loads(text)
        if self.read is not None:
            found = self.read(str(key))
            return default if found is None else found
        return default

    def pending(self, key: Any) -> bool:
        """Whether a write of ``key`` is still waiting for the worker."""
        with shielded(self.queue.backend.breaker):
            return self._client().hget(self.record_key(key), "d") in (b"1", "1")

    # --- worker side ----------------------------------------------------------------------------

    def flush_key(self, key: str) -> bool:
        """Apply the latest recorded value of ``key`` (what the worker does for one message);
        returns False when newer writes came meanwhile (queued again) or nothing was recorded."""
        record = self.record_key(key)
        client = self._client()
        value, version = client.hmget(record, ["v", "n"])
        if version is None or value is None:
            return False  # expired clean, or lost with a Redis restart: nothing to apply
        text = value.decode() if isinstance(value, bytes) else str(value)
        self.apply(key, json.loads(text))
        done = lua.script("wb_done")(
            [record, self.queue.stream_key],
            [version, self._message(key), CLEAN_TTL_MS],
            client=client,
        )
        return bool(int(done))


def _model_target(model: type[models.Model], field: str) -> tuple[str, Apply, Callable[[str], Any]]:
    model._meta.get_field(field)  # FieldDoesNotExist early, at configuration
    label = f"{model._meta.label}.{field}"

    def apply(key: str, value: Any) -> None:
        model._default_manager.filter(pk=key).update(**{field: value})

    def read(key: str) -> Any:
        return model._default_manager.filter(pk=key).values_list(field, flat=True).first()

    return label, apply, read


def write_behind(
    target: type[models.Model] | Apply | None = None,
    field: str | None = None,
    *,
    read: Callable[[str], Any] | None = None,
    alias: str | None = None,
) -> Any:
    """A write-behind target for a model field, or a decorator mark for an apply function.

    ``views = write_behind(Product, "views")`` then ``views.incr(product.pk)`` (counters) or
    ``views.set(pk, value)``; ``views.get(pk)``.

    ``@write_behind`` on ``def save_last_seen(key, value)`` (a module-level function) returns a
    :class:`WriteBehind` that calls it in the worker; counters need the database value too:
    ``@write_behind(read=load_total)``.
    """
    if target is None:  # @write_behind(read=...): a decorator with options
        return lambda function: write_behind(function, read=read, alias=alias)
    if isinstance(target, WriteBehind):
        return target
    if isinstance(target, type) and issubclass(target, models.Model):
        if field is None:
            raise TypeError("write_behind(Model, field): name the field to write.")
        label, apply, model_read = _model_target(target, field)
        return WriteBehind(label, apply, read or model_read, alias=alias)
    if not callable(target):
        raise TypeError("write_behind() takes a model and a field, or a function.")
    function = target
    path = f"{function.__module__}.{function.__qualname__}"
    if "<" in path:
        raise ImproperlyConfigured(f"{path}: write-behind functions must be module-level.")
    wb = WriteBehind(path, function, read, alias=alias)
    functools.update_wrapper(wb, function)  # type: ignore[arg-type]
    setattr(wb, MARK, True)
    return wb


def resolve(target: str) -> WriteBehind:
    """The WriteBehind a queued message names: ``app_label.Model.field`` or a marked function."""
    parts = target.split(".")
    if len(parts) == 3:
        try:
            model = apps.get_model(parts[0], parts[1])
        except (LookupError, ValueError):
            model = None
        if model is not None:
            label, apply, read = _model_target(model, parts[2])
            return WriteBehind(label, apply, read)
    try:
        found = import_string(target)
    except ImportError as exc:
        raise LookupError(f"write-behind target {target!r} not found: {exc}") from None
    if not isinstance(found, WriteBehind) or not getattr(found, MARK, False):
        raise LookupError(f"{target!r} is not a @write_behind function")
    return found


def apply(delivery: Delivery) -> None:
    """The write-behind queue's handler (``rediskit_worker`` runs it): apply one key's latest
    value to the database. A message naming no known target raises (after MAX_DELIVERIES it
    goes to the dead letters with the reason)."""
    payload = delivery.payload
    if not isinstance(payload, dict) or not {"w", "k"} <= set(payload):
        raise ValueError(f"not a write-behind message: {payload!r:.100}")
    resolve(str(payload["w"])).flush_key(str(payload["k"]))


def write_through(
    key: Any,
    fn: Callable[[], T],
    *,
    timeout: Any = DEFAULT_TIMEOUT,
    alias: str | None = None,
    using: str | None = None,
) -> T:
    """Run ``fn()`` (the database write) in a transaction; set the cache key to its result when
    the transaction commits. Returns ``fn()``'s result.

    Nested in an outer ``atomic`` block, the cache is set when the outermost one commits, and
    not at all on rollback. If setting the cache fails then, the key is deleted instead (best
    effort) so a reader falls back to the database rather than an old value.
    """
    cache = caches[messaging_alias(alias)]
    with transaction.atomic(using=using):
        value = fn()

        def store() -> None:
            try:
                cache.set(key, value, timeout)
            except Exception:
                logger.exception("write_through: cache.set(%r) failed after commit", key)
                try:
                    cache.delete(key)
                except Exception:
                    logger.warning("write_through: %r may be stale in the cache", key)

        transaction.on_commit(store, using=using)
    return value
