"""What a queue hands out and reports, and the stored message format (no I/O here).

A message is one stream entry whose field ``p`` holds the JSON payload (Django's encoder).
Entries of any other shape, from another producer, are :class:`BadPayload`: the queue
dead-letters them instead of calling the handler.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Final

from django.core.serializers.json import DjangoJSONEncoder

if TYPE_CHECKING:
    from django_rediskit.messaging.queue import Queue

PAYLOAD_FIELD: Final = b"p"


def text(value: Any, errors: str = "strict") -> str:
    return value.decode("utf-8", errors) if isinstance(value, bytes) else str(value)


def default_consumer_name() -> str:
    """``<host>-<pid>-<random>``: unique per consumer, readable in XINFO CONSUMERS."""
    return f"{socket.gethostname()[:40]}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def encode_payload(payload: Any, encoder: type[json.JSONEncoder] = DjangoJSONEncoder) -> str:
    """JSON with Django's encoder (datetimes, dates, decimals, UUIDs, lazy strings)."""
    return json.dumps(payload, cls=encoder, separators=(",", ":"), ensure_ascii=False)


class BadPayload(ValueError):
    """A stream entry that is not a message of ours (no ``p`` field, or not JSON)."""


@dataclass
class Delivery:
    """One delivery of one message to a handler."""

    #: The stream id: the same on every delivery of a message (use it for idempotency).
    id: str
    #: The decoded JSON payload.
    payload: Any
    #: 1 on the first delivery, then 2, 3... (reclaims after a crash or a failure count).
    deliveries: int
    queue: Queue = field(repr=False)
    consumer: str = field(repr=False)

    @property
    def enqueued_at(self) -> datetime:
        """When the message was added (the stream id's milliseconds, the server's clock)."""
        return datetime.fromtimestamp(int(self.id.split("-", 1)[0]) / 1000, tz=timezone.utc)

    def extend(self) -> bool:
        """Restart this delivery's visibility timeout (for handlers that run long).

        Returns False when the delivery is no longer this consumer's: it was reclaimed by another
        consumer after the timeout, which is running it now; this handler should stop.
        """
        return bool(self.queue._set_idle(self.consumer, [self.id], 0))


@dataclass(frozen=True)
class DeadLetter:
    id: str  # the dead-letter entry's own id
    message_id: str  # the id the message had in the queue
    reason: str
    deliveries: int
    #: the original entry's fields (``p``: the JSON payload); bytes that are not UTF-8 appear
    #: as surrogate escapes (``str.encode("utf-8", "surrogateescape")`` gives them back)
    fields: dict[str, str]


@dataclass(frozen=True)
class QueueStats:
    #: entries in the stream (acknowledged ones stay until trimmed)
    length: int
    #: delivered, not yet acknowledged
    pending: int
    #: not yet delivered to the group (None when Redis cannot tell, after deletions)
    lag: int | None
    dead_letters: int
    consumers: int


@dataclass
class RawEntry:
    id: str
    deliveries: int
    fields: dict[bytes, bytes]


def raw_bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def stream_entries(reply: Any) -> list[tuple[Any, list[Any]]]:
    """XREADGROUP's reply as [(stream, [(id, fields)])] for RESP2 (list) and RESP3 (dict)."""
    if not reply:
        return []
    if isinstance(reply, dict):
        return [
            (name, entries[0] if entries and isinstance(entries[0], list) else entries)
            for name, entries in reply.items()
        ]
    return [(name, entries) for name, entries in reply]


def entry_fields(fields: dict[Any, Any]) -> dict[bytes, bytes]:
    """Field names and values as bytes, whatever the client's ``decode_responses``."""
    return {
        (k if isinstance(k, bytes) else str(k).encode()): (
            v if isinstance(v, bytes) else str(v).encode()
        )
        for k, v in fields.items()
    }


def decode_payload(fields: dict[bytes, bytes]) -> Any:
    body = fields.get(PAYLOAD_FIELD)
    if body is None:
        names = ", ".join(text(k) for k in list(fields)[:5]) or "none"
        raise BadPayload(f"no 'p' field (fields: {names})")
    try:
        return json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadPayload(f"not JSON: {exc}") from None
