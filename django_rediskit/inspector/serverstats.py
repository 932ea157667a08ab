"""Server statistics for the stats page: a few INFO fields and SLOWLOG, read-only and O(1).

SLOWLOG arguments are returned as separate byte strings (redis-py would join them with spaces,
which makes redacting one argument impossible); the caller redacts and the template escapes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from redis import Redis

SLOWLOG_ENTRIES = 25

#: (INFO field, label) pairs shown on the stats page, in order.
INFO_FIELDS = (
    ("redis_version", "Redis version"),
    ("uptime_in_seconds", "Uptime (s)"),
    ("connected_clients", "Connected clients"),
    ("blocked_clients", "Blocked clients"),
    ("used_memory_human", "Memory used"),
    ("used_memory_peak_human", "Memory peak"),
    ("maxmemory_human", "maxmemory"),
    ("maxmemory_policy", "Eviction policy"),
    ("mem_fragmentation_ratio", "Fragmentation ratio"),
    ("instantaneous_ops_per_sec", "Ops/s"),
    ("total_commands_processed", "Commands processed"),
    ("keyspace_hits", "Keyspace hits"),
    ("keyspace_misses", "Keyspace misses"),
    ("expired_keys", "Expired keys"),
    ("evicted_keys", "Evicted keys"),
)


@dataclass(frozen=True)
class SlowEntry:
    id: int
    start_time: int
    duration_us: int
    arguments: list[bytes]
    client: bytes


def info_summary(client: Redis) -> tuple[list[tuple[str, Any]], float | None, dict[str, Any]]:
    """``(labelled fields, hit ratio, keyspace section)`` from one INFO call."""
    info: dict[str, Any] = client.info()
    rows = [(label, info[name]) for name, label in INFO_FIELDS if name in info]
    hits, misses = int(info.get("keyspace_hits", 0)), int(info.get("keyspace_misses", 0))
    ratio = hits / (hits + misses) if hits + misses else None
    keyspace = {name: value for name, value in info.items() if str(name).startswith("db")}
    return rows, ratio, keyspace


def slowlog(client: Redis, count: int = SLOWLOG_ENTRIES) -> list[SlowEntry]:
    """The newest ``count`` SLOWLOG entries, arguments kept apart."""
    raw: Any = client.execute_command("SLOWLOG", "GET", count)  # type: ignore[no-untyped-call]
    entries = []
    for item in raw:
        arguments = item[3] if isinstance(item[3], list) else item[4]
        client_address = item[4] if isinstance(item[3], list) and len(item) > 4 else b""
        entries.append(
            SlowEntry(
                id=int(item[0]),
                start_time=int(item[1]),
                duration_us=int(item[2]),
                arguments=[bytes(a) if not isinstance(a, str) else a.encode() for a in arguments],
                client=client_address if isinstance(client_address, bytes) else b"",
            )
        )
    return entries
