"""Tags a database transaction will invalidate when it commits.

Shared by model invalidation (which queues them) and the cache backend (which, inside that
transaction, neither reads nor stores entries carrying them).

Receivers never touch Redis: they add tags to the connection's pending set and register one
``on_commit(flush, robust=True)``. In autocommit the callback runs at once; after a rollback
Django runs none, so Redis sees nothing. The first flush after COMMIT sends the whole set in one
pipeline; later callbacks of the same transaction find it empty. Tags queued inside a savepoint
that was rolled back stay queued: that only over-invalidates, which is safe.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from django.db import connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper

from django_rediskit import conf
from django_rediskit.metrics import events as metrics

logger = logging.getLogger("django_rediskit.invalidation")

_STATE_ATTRIBUTE = "_rediskit_invalidation"


@dataclass
class Pending:
    """Per-connection state (a connection object is per thread / per async task)."""

    tags: set[str] = field(default_factory=set)
    keys: set[str] = field(default_factory=set)
    failures: int = 0
    callback: Callable[[], None] | None = None

    def is_scheduled(self, connection: BaseDatabaseWrapper) -> bool:
        """Whether our flush is still registered (Django drops it on rollback)."""
        return self.callback is not None and any(
            entry[1] is self.callback for entry in connection.run_on_commit
        )


def _state(using: str) -> Pending:
    connection = connections[using]
    state: Pending | None = getattr(connection, _STATE_ATTRIBUTE, None)
    if state is None:
        state = Pending()
        setattr(connection, _STATE_ATTRIBUTE, state)
    elif not connection.in_atomic_block and not state.is_scheduled(connection):
        # Outside a transaction nothing can still be pending: what is left belongs to a
        # transaction that rolled back, and must never be sent.
        state.tags.clear()
        state.keys.clear()
    return state


def queue(tags: Iterable[str], using: str, keys: Iterable[str] = ()) -> None:
    """Invalidate ``tags`` (and delete cache ``keys``) when the current transaction commits."""
    state = _state(using)
    state.tags.update(tags)
    state.keys.update(keys)
    metrics.invalidation_queued(tags, keys)
    if not state.is_scheduled(connections[using]):
        state.callback = functools.partial(flush, using)
        transaction.on_commit(state.callback, using=using, robust=True)


def take(using: str) -> Pending:
    """Remove and return what is queued on ``using`` (its flush, if scheduled, finds nothing)."""
    state = _state(using)
    taken = Pending(tags=set(state.tags), keys=set(state.keys))
    state.tags.clear()
    state.keys.clear()
    state.callback = None
    return taken


def pending_tags(using: str | None = None) -> frozenset[str]:
    """Tags the current transaction on ``using`` (every alias if None) will invalidate.

    The cache consults this so the writer never reads, or stores, an entry whose tags it is
    about to invalidate: it sees its own writes, and uncommitted rows never reach the cache.
    """
    aliases = [using] if using is not None else list(connections)
    pending: set[str] = set()
    for alias in aliases:
        connection = connections[alias]
        state: Pending | None = getattr(connection, _STATE_ATTRIBUTE, None)
        if state is not None and state.tags and connection.in_atomic_block:
            pending |= state.tags
    return frozenset(pending)


def flush(using: str) -> None:
    """Send the pending set: one pipeline of tag invalidations (plus one for explicit keys).

    A Redis failure here must not undo a committed transaction: it is logged with the tags and
    counted; the entries then stay stale until their TTL, which bounds the damage.
    """
    # Not _state(): Django has already taken our callback off run_on_commit while running it.
    state: Pending | None = getattr(connections[using], _STATE_ATTRIBUTE, None)
    if state is None:
        return
    tags, keys = sorted(state.tags), sorted(state.keys)
    state.tags.clear()
    state.keys.clear()
    state.callback = None
    if not tags and not keys:
        return
    from django_rediskit.aliases import backend_for_alias

    backend = backend_for_alias(conf.get_setting("CACHE_ALIAS"))
    try:
        if tags:
            backend.invalidate_tags(*tags)
        if keys:
            backend.delete_many(keys)
    except Exception:
        state.failures += 1
        metrics.invalidation_flushed(tags, keys, False)
        logger.exception(
            "Cache invalidation after commit failed; entries stay stale until their TTL. "
            "tags=%s keys=%s",
            tags,
            keys,
        )
    else:
        metrics.invalidation_flushed(tags, keys, True)


def failures(using: str = "default") -> int:
    """How many post-commit flushes failed on this connection (for monitoring and tests)."""
    return _state(using).failures
