"""Tag invalidation by per-tag random version tokens.

Each tag has a version key ``<prefix>:tv:{<tag>}`` holding 12 random bytes with a TTL. A tagged
entry carries, in its value header, its tag names and a checksum of the tag versions captured
*before* its value was computed. A read compares that checksum with the current versions; a
missing version key means "invalidated". So:

- invalidating a tag is one UNLINK, whatever the number of entries carrying it;
- an entry computed from data read before an invalidation can never be served after it (its
  checksum names the old version), which closes the read-compute-write race;
- evicting or expiring a version key only causes misses, and random tokens rule out an old entry
  ever matching again (no ABA), so every eviction policy is safe;
- every command is single-key, so tags in different Cluster slots need nothing special.

This module holds the pure parts (names, checksums) and the Redis commands on version keys; the
backend (``cache/backend.py``) wires them into get/set.
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from django_rediskit.cache.codec import TAG_CHECKSUM_SIZE, TagBlock

if TYPE_CHECKING:
    from redis import Redis

VERSION_SIZE = 12
#: Escaped names longer than this (in UTF-8 bytes) are replaced by a hash in the version key.
MAX_KEY_NAME_BYTES = 120
DEFAULT_TAG_TTL = 7 * 24 * 3600.0

#: Characters that would change the meaning of a key: hash-tag braces, whitespace, glob
#: metacharacters, our own escape and hash markers.
_ESCAPED = frozenset("%{}#*?[]\\")


class TagVersions(Mapping[str, bytes]):
    """Tag versions captured at one moment: pass them to ``set(..., versions=...)`` after
    computing, so an invalidation during the computation makes the stored entry a miss."""

    __slots__ = ("_versions",)

    def __init__(self, versions: Mapping[str, bytes]) -> None:
        self._versions = dict(versions)

    def __getitem__(self, tag: str) -> bytes:
        return self._versions[tag]

    def __iter__(self) -> Iterator[str]:
        return iter(self._versions)

    def __len__(self) -> int:
        return len(self._versions)

    def __repr__(self) -> str:
        return f"TagVersions({sorted(self._versions)!r})"

    def block(self) -> TagBlock:
        return TagBlock(tuple(sorted(self._versions)), checksum(self._versions))


def normalize_tags(tags: str | Iterable[str] | None) -> tuple[str, ...]:
    """Validated, de-duplicated, sorted tag names; a single string is one tag, not characters."""
    if tags is None:
        return ()
    if isinstance(tags, str):
        tags = (tags,)
    elif isinstance(tags, (bytes, Mapping)) or not isinstance(tags, Iterable):
        raise TypeError(f"Tags must be a str or an iterable of str, not {tags!r}")
    names = set()
    for tag in tags:
        if not isinstance(tag, str):
            raise TypeError(f"Tag names must be str, not {type(tag).__name__}: {tag!r}")
        if not tag:
            raise ValueError("Tag names must not be empty.")
        names.add(tag)
    return tuple(sorted(names))


@functools.lru_cache(maxsize=8192)
def key_name(tag: str) -> str:
    """The part of a version key naming ``tag``: escaped, or hashed when long.

    ``%``, braces, ``#``, glob characters, whitespace and control characters are percent-encoded,
    so a name can neither end the ``{...}`` hash tag early nor act as a pattern. A hashed name
    starts with ``#``, which an escaped name never contains, so the two cannot collide.
    Memoized: hot tags are named on every read.
    """
    escaped = "".join(
        "".join(f"%{byte:02X}" for byte in char.encode())
        if char in _ESCAPED or char.isspace() or not char.isprintable()
        else char
        for char in tag
    )
    if len(escaped.encode()) > MAX_KEY_NAME_BYTES:
        return "#" + hashlib.blake2b(tag.encode(), digest_size=20).hexdigest()
    return escaped


def checksum(versions: Mapping[str, bytes]) -> bytes:
    """8 bytes of BLAKE2b over the (name, version) pairs in name order."""
    digest = hashlib.blake2b(digest_size=TAG_CHECKSUM_SIZE)
    for name in sorted(versions):
        raw = name.encode()
        digest.update(len(raw).to_bytes(4, "big"))
        digest.update(raw)
        digest.update(versions[name])
    return digest.digest()


def is_current(block: TagBlock, current: Mapping[str, bytes | None]) -> bool:
    """Whether an entry's captured versions are still the current ones (none missing)."""
    found: dict[str, bytes] = {}
    for name in block.names:
        version = current.get(name)
        if version is None:
            return False
        found[name] = version
    return checksum(found) == block.checksum


def new_token() -> bytes:
    return os.urandom(VERSION_SIZE)


def ensure(client: Redis, keys: Mapping[str, str], ttl_ms: int) -> TagVersions:
    """The current version of each tag, creating missing ones: one pipelined round trip.

    ``SET key token NX GET PX ttl`` creates the key or returns the existing token atomically
    (concurrent creators all adopt the one that won); ``PEXPIRE key ttl GT`` lazily extends an
    existing key so it outlives the entries written now. Nothing is created without a TTL.
    """
    if not keys:
        return TagVersions({})
    tokens = {tag: new_token() for tag in keys}
    pipe = client.pipeline(transaction=False)
    for tag, key in keys.items():
        pipe.set(key, tokens[tag], nx=True, get=True, px=ttl_ms)
        pipe.pexpire(key, ttl_ms, gt=True)
    replies = pipe.execute()
    versions = {}
    for index, tag in enumerate(keys):
        previous = replies[2 * index]
        versions[tag] = previous if previous is not None else tokens[tag]
    return TagVersions(versions)


def mget(client: Redis, keys: Sequence[str]) -> list[Any]:
    """MGET that also works on Redis Cluster, where tag keys live in different slots."""
    splitter = getattr(client, "mget_nonatomic", None)
    if splitter is not None:
        return list(splitter(list(keys)))
    return list(client.mget(list(keys)))


def invalidate(client: Redis, keys: Sequence[str]) -> int:
    """Drop the version keys: one pipeline of single-key UNLINKs (Cluster-safe), O(tags)."""
    if not keys:
        return 0
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.unlink(key)
    return sum(int(reply) for reply in pipe.execute())
