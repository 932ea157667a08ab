"""Row metadata for a page of keys: one pipeline, one round trip, O(1) work per key.

Each key costs one EVALSHA of ``lua/inspector_meta.lua`` (TYPE, PTTL, OBJECT ENCODING, the type's
own O(1) length command, MEMORY USAGE SAMPLES 5). A single-key script keeps the pipeline
cluster-safe, and the script runs the length command that matches the type, which a plain
pipeline could only do with a second round trip after TYPE.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from redis.exceptions import NoScriptError, ResponseError

from django_rediskit import lua

if TYPE_CHECKING:
    from redis import Redis
    from redis.client import Pipeline

SCRIPT_NAME = "inspector_meta"


@dataclass(frozen=True)
class KeyMeta:
    """What the browse table shows for one key. ``ttl_ms`` is None for a key with no expiry."""

    key: bytes
    type: str
    ttl_ms: int | None
    encoding: str | None
    length: int
    memory: int | None

    @property
    def exists(self) -> bool:
        return self.type != "none"


def _text(value: Any) -> str | None:
    if value is None or value is False:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)


def _row(key: bytes, reply: Any) -> KeyMeta:
    if isinstance(reply, ResponseError):
        # A key we cannot describe (e.g. a module type MEMORY USAGE rejects) still gets a row.
        return KeyMeta(key, "unknown", None, None, 0, None)
    kind, pttl, encoding, length, memory = reply
    pttl = int(pttl)
    return KeyMeta(
        key=key,
        type=_text(kind) or "none",
        ttl_ms=pttl if pttl >= 0 else None,
        encoding=_text(encoding),
        length=int(length or 0),
        memory=int(memory) if memory not in (None, False) else None,
    )


def describe_keys(
    client: Redis, keys: Sequence[bytes], *, with_dbsize: bool = False
) -> tuple[list[KeyMeta], int | None]:
    """Metadata for ``keys`` (and DBSIZE, for progress) in one round trip.

    The script is sent by SHA; only if the server lost it (restart, SCRIPT FLUSH) is it loaded
    and the pipeline sent once more.
    """
    script = lua.script(SCRIPT_NAME)

    def build(pipe: Pipeline) -> None:
        for key in keys:
            script.queue(pipe, [key])
        if with_dbsize:
            pipe.dbsize()

    replies = lua.run_pipeline(client, build, raise_on_error=False)
    for reply in replies:
        if isinstance(reply, NoScriptError) or (
            isinstance(reply, Exception) and not isinstance(reply, ResponseError)
        ):
            raise reply
    dbsize = int(replies[-1]) if with_dbsize else None
    rows = [_row(key, reply) for key, reply in zip(keys, replies, strict=False)]
    return rows, dbsize
