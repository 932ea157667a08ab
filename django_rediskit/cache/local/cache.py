"""The store of the local cache: a bounded LRU of raw bytes, tickets, counters, fork safety.

Consistency promise: a value served from here was, at most *the invalidation delay* before, the
value in Redis (on loopback a millisecond or so; at worst the PING interval plus the health
timeout, when the network fails silently). Three mechanisms make that hold:

- **Invalidation**: the tracker (``tracker.py``) forwards every change Redis announces under the
  tracked prefixes, and a null key list (FLUSHDB/FLUSHALL) flushes everything.
- **Tickets** close the read/invalidate race. A reader takes ``begin(key)`` *before* sending its
  GET and hands the ticket to ``put``; an invalidation or flush of that key in between cancels the
  ticket, so a value read before a change is never stored after the change was announced. (A
  GET that started after a write sees the write; one that started before it is either cancelled
  here or removed by the invalidation that follows.)
- **Nothing unverified**: while any tracking connection is down or reconnecting, ``wants()`` is
  False, ``begin()`` returns None and the store is empty; it is flushed at the moment the loss is
  seen and reopens only once every primary tracks again.

Values are raw bytes: the caller decodes each hit, so every hit is a fresh object and the bytes
(immutable) can be shared by threads and event loops. ``None`` is remembered as "known missing":
BCAST announces writes to keys that did not exist, so a remembered miss is as safe as a value,
and hot absent keys (unset flags, invalidated tag versions) then cost no round trip either.

Locking: one ``threading.Lock``, held for a dict lookup and an LRU move on a hit (no I/O, no
decoding, never held across a call into Redis), so sync threads and event loops can share one
instance; async callers may call these methods directly, they never block on the network.
"""

from __future__ import annotations

import enum
import os
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Final, Literal

from django_rediskit.cache.local.globs import key_matcher, tracking_prefixes
from django_rediskit.cache.local.tracker import Tracker

if TYPE_CHECKING:
    from django_rediskit.connection.topology import Topology


class NotHeld(enum.Enum):
    """``get``'s answer when the key is not held locally (ask Redis)."""

    NOT_HELD = "NOT_HELD"

    def __repr__(self) -> str:
        return "NOT_HELD"

    def __bool__(self) -> bool:
        return False


NOT_HELD: Final = NotHeld.NOT_HELD

#: Bytes counted per entry besides its key and value: the dict slot, the OrderedDict link and
#: the entry tuple (measured with ``sys.getsizeof`` on CPython 3.11, rounded up). Keeps
#: ``max_bytes`` honest for many small values.
ENTRY_OVERHEAD: Final = 200

_INFINITY: Final = float("inf")

#: A reader handles waiting invalidations itself when the last check is older than this
#: (``Tracker.help``): bounds the delay added by a tracker thread waiting for the GIL.
HELP_INTERVAL: Final = 0.001


class Ticket:
    """Proof that no invalidation of a key was seen since ``begin``; opaque to callers."""

    __slots__ = ("__weakref__",)


@dataclass
class LocalCacheStats:
    """Counters of one LocalCache (process-local). ``hits`` counts remembered misses too (the
    local cache answered); ``invalidations`` counts held entries dropped because Redis (or
    ``invalidate()``) said they changed; ``flushes`` counts whole-cache drops (FLUSHDB, lost
    tracking, ``flush()``); ``tracking_losses`` counts the times tracking was lost while live."""

    hits: int = 0
    misses: int = 0
    invalidations: int = 0
    flushes: int = 0
    evictions: int = 0
    tracking_losses: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


_instances: weakref.WeakSet[LocalCache] = weakref.WeakSet()


class LocalCache:
    """Hot values of one cache alias in process memory, invalidated by Redis; see the module
    docstring and ``docs/local-cache.md``."""

    def __init__(
        self,
        topology: Topology,
        prefixes: Sequence[str],
        *,
        max_entries: int = 10_000,
        max_bytes: int = 64 * 2**20,
        ttl: float | None = 60.0,
        keys: Sequence[str] = ("*",),
        max_entry_bytes: int | None = None,
        health_interval: float = 1.0,
        health_timeout: float = 2.0,
        check_interval: float = 1.0,
        backoff: tuple[float, float] = (0.05, 1.0),
        name: str = "rediskit-local",
    ) -> None:
        for label, number in (("max_entries", max_entries), ("max_bytes", max_bytes)):
            if isinstance(number, bool) or not isinstance(number, int) or number < 1:
                raise ValueError(f"{label} must be a positive int, not {number!r}")
        if ttl is not None and (isinstance(ttl, bool) or not ttl > 0):
            raise ValueError(f"ttl must be a positive number of seconds or None, not {ttl!r}")
        for label, seconds in (
            ("health_interval", health_interval),
            ("health_timeout", health_timeout),
            ("check_interval", check_interval),
        ):
            if not seconds > 0:
                raise ValueError(f"{label} must be positive, not {seconds!r}")
        self.topology = topology
        self.prefixes = tracking_prefixes(prefixes)
        self._match = key_matcher(keys)
        self.keys = tuple(keys)
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        #: one value may take this much at most (default an eighth of max_bytes), so one big
        #: value cannot evict the whole hot set
        self.max_entry_bytes = max_entry_bytes if max_entry_bytes is not None else max_bytes // 8
        self.ttl = ttl
        self.name = name
        self.stats = LocalCacheStats()
        self._tracker_args = {
            "health_interval": health_interval,
            "health_timeout": health_timeout,
            "check_interval": check_interval,
            "backoff": backoff,
            "name": name,
        }
        self._init_state()
        self._closed = False
        _watch_forks()
        _instances.add(self)
        self._tracker = self._new_tracker()
        self._tracker.start()

    def _init_state(self) -> None:
        self._lock = threading.Lock()
        self._live = False
        self._live_event = threading.Event()
        self._entries: OrderedDict[str, tuple[bytes | None, float, int]] = OrderedDict()
        self._bytes = 0
        self._inflight: dict[str, Ticket] = {}

    def _new_tracker(self) -> Tracker:
        return Tracker(self.topology, self.prefixes, self, **self._tracker_args)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        state = "live" if self._live else "down"
        return f"<LocalCache {self.name} {state} {len(self._entries)} entries {self._bytes} B>"

    # --- the read path -------------------------------------------------------------------------

    @property
    def live(self) -> bool:
        """Whether every primary tracks our prefixes right now (else nothing is served)."""
        return self._live

    def wants(self, full_key: str) -> bool:
        """Whether ``full_key`` may be served from / kept in the local cache now: tracking is
        live, the key is under a tracked prefix (else Redis would never announce its changes)
        and it matches a ``KEYS`` glob."""
        if not self._live or not full_key.startswith(self.prefixes):
            return False
        match = self._match
        return match is None or match(full_key.encode("utf-8", "surrogateescape")) is not None

    def get(self, full_key: str) -> bytes | Literal[NotHeld.NOT_HELD] | None:
        """The raw bytes held for ``full_key``; None if Redis was known not to have it;
        ``NOT_HELD`` if the local cache has no answer (ask Redis)."""
        now = time.monotonic()
        tracker = self._tracker
        if now - tracker.helped_at > HELP_INTERVAL:
            tracker.help(now)  # handle invalidations the tracker thread has not got to yet
        with self._lock:
            entry = self._entries.get(full_key)
            if entry is not None:
                if entry[1] > now:
                    self._entries.move_to_end(full_key)
                    self.stats.hits += 1
                    return entry[0]
                del self._entries[full_key]
                self._bytes -= entry[2]
            self.stats.misses += 1
        return NOT_HELD

    def begin(self, full_key: str) -> Ticket | None:
        """Call before reading ``full_key`` from Redis; pass the ticket to :meth:`put`. None
        when the key must not be cached now (not wanted, or tracking down)."""
        if not self.wants(full_key):
            return None
        with self._lock:
            if not self._live:
                return None
            ticket = self._inflight.get(full_key)
            if ticket is None:
                if len(self._inflight) >= self.max_entries:
                    # readers that never came back to put(): cancelling them only costs fills
                    self._inflight.clear()
                ticket = self._inflight[full_key] = Ticket()
            return ticket

    def put(
        self,
        full_key: str,
        raw: bytes | None,
        ticket: Ticket | None,
        *,
        ttl: float | None = None,
    ) -> bool:
        """Keep ``raw`` (None: "Redis has no such key") for ``full_key`` if ``ticket`` is still
        valid: no invalidation or flush of the key since :meth:`begin`. ``ttl``: the key's
        remaining lifetime in Redis in seconds, if known (PTTL / 1000), so the local copy never
        outlives it; a key expiring in Redis is announced only when Redis gets round to deleting
        it. Returns whether it was stored."""
        if raw is not None and not isinstance(raw, bytes):
            raise TypeError(f"put() takes the raw bytes read from Redis, not {type(raw).__name__}")
        if ticket is None:
            return False
        lifetime = self.ttl
        if ttl is not None:
            lifetime = ttl if lifetime is None else min(lifetime, ttl)
        size = ENTRY_OVERHEAD + len(full_key) + (len(raw) if raw is not None else 0)
        with self._lock:
            if self._inflight.get(full_key) is not ticket:
                return False
            del self._inflight[full_key]
            if (
                not self._live
                or size > self.max_entry_bytes
                or (lifetime is not None and lifetime <= 0)
            ):
                return False
            old = self._entries.pop(full_key, None)
            if old is not None:
                self._bytes -= old[2]
            expires = time.monotonic() + lifetime if lifetime is not None else _INFINITY
            self._entries[full_key] = (raw, expires, size)
            self._bytes += size
            entries = self._entries
            while len(entries) > self.max_entries or self._bytes > self.max_bytes:
                _key, (_raw, _expires, dropped) = entries.popitem(last=False)
                self._bytes -= dropped
                self.stats.evictions += 1
            return True

    # --- dropping --------------------------------------------------------------------------------

    def invalidate(self, keys: Iterable[str]) -> None:
        """Drop ``keys`` and cancel their tickets. The cache facade calls this right after each
        of its own writes returns (or fails), so a thread reads its own write at once instead
        of after the server's announcement."""
        if isinstance(keys, (str, bytes)):
            raise TypeError("invalidate() takes an iterable of keys, not one key")
        with self._lock:
            self._drop_locked(keys)

    def _drop_locked(self, keys: Iterable[str]) -> None:
        entries, inflight = self._entries, self._inflight
        for key in keys:
            entry = entries.pop(key, None)
            if entry is not None:
                self._bytes -= entry[2]
                self.stats.invalidations += 1
            inflight.pop(key, None)

    def flush(self) -> None:
        """Drop every entry and cancel every ticket."""
        with self._lock:
            self._flush_locked()

    def _flush_locked(self) -> None:
        self._entries.clear()
        self._inflight.clear()
        self._bytes = 0
        self.stats.flushes += 1

    @property
    def entries(self) -> int:
        return len(self._entries)

    @property
    def bytes(self) -> int:
        """Bytes counted against ``max_bytes``: values, keys and ENTRY_OVERHEAD each."""
        return self._bytes

    # --- the tracker's callbacks (tracker.py) ---------------------------------------------------

    def _tracking_up(self) -> None:
        with self._lock:
            self._entries.clear()  # empty already; cheap insurance
            self._inflight.clear()
            self._bytes = 0
            self._live = not self._closed
        if self._live:
            self._live_event.set()

    def _tracking_down(self) -> None:
        with self._lock:
            was_live = self._live
            self._live = False
            self._live_event.clear()
            if was_live:
                self._flush_locked()
                self.stats.tracking_losses += 1

    def _server_invalidated(self, keys: list[str] | None) -> None:
        with self._lock:
            if keys is None:
                self._flush_locked()
            else:
                self._drop_locked(keys)

    # --- lifecycle -------------------------------------------------------------------------------

    def wait_live(self, timeout: float) -> bool:
        """Block until tracking is live (for start-up checks and tests); False on timeout."""
        return self._live_event.wait(timeout)

    def tracking_clients(self) -> list[tuple[str, int, int]]:
        """``(host, port, client id)`` of each tracking connection (CLIENT LIST shows them named
        ``rediskit-local-invalidation``)."""
        return [(*node.address, node.client_id) for node in list(self._tracker.nodes)]

    def close(self) -> None:
        """Stop tracking, close its connections and drop everything; idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._live = False
            self._live_event.clear()
        self._tracker.stop()
        with self._lock:
            self._entries.clear()
            self._inflight.clear()
            self._bytes = 0

    def _after_fork_in_child(self) -> None:
        """The tracker thread does not survive fork and its sockets belong to the parent: start
        over empty, with a tracker of the child's own."""
        self._tracker.abandon()
        self._init_state()
        self.stats = LocalCacheStats()  # per process
        if not self._closed:
            self._tracker = self._new_tracker()
            self._tracker.start()


def _reset_in_child() -> None:
    for cache in list(_instances):
        cache._after_fork_in_child()


_fork_hook: list[bool] = []


def _watch_forks() -> None:
    """Reset every instance in a forked child; registered with the first instance, not at
    import (importing the module must cost nothing)."""
    if not _fork_hook and hasattr(os, "register_at_fork"):
        _fork_hook.append(True)
        os.register_at_fork(after_in_child=_reset_in_child)
