"""Small pieces the backend and its command mixins share."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from redis import Redis

    from django_rediskit.cache.client import CacheClient
    from django_rediskit.cache.clients import RedisKitClient
    from django_rediskit.cache.options import CacheOptions
    from django_rediskit.connection.topology import Topology

#: A miss, distinct from any value a cache can hold (None included).
MISSING: Any = object()


def text(data: bytes | str) -> str:
    return data.decode() if isinstance(data, bytes) else data


def no_mapping(arguments: dict[str, Any]) -> dict[Any, Any]:
    """Muted value of methods that return a mapping (a fresh one each time)."""
    return {}


def no_items(arguments: dict[str, Any]) -> list[Any]:
    """Muted value of methods that return a list (a fresh one each time)."""
    return []


class CacheCore:
    """What command mixins need from the backend; ``RedisCache`` provides all of it."""

    def _decoded_items(self, raw: Iterable[Any]) -> list[Any]:
        """Decoded values in order; undecodable ones (a retired key, foreign bytes) left out."""
        return [value for value in map(self._decoded, raw) if value is not MISSING]

    if TYPE_CHECKING:
        key_prefix: str
        version: int
        key_func: Callable[[Any, str, Any], str]
        options: CacheOptions

        @property
        def client(self) -> RedisKitClient: ...
        @property
        def topology(self) -> Topology: ...
        @property
        def commands(self) -> CacheClient: ...
        def make_and_validate_key(self, key: Any, version: int | None = None) -> str: ...
        def _read(self) -> Redis: ...
        def _write(self) -> Redis: ...
        def _decoded(self, raw: Any) -> Any: ...
