"""Small pieces the backend and its command mixins share."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from redis import Redis

    from django_rediskit.cache.clients import RedisKitClient

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

    if TYPE_CHECKING:

        @property
        def client(self) -> RedisKitClient: ...
        def make_and_validate_key(self, key: Any, version: int | None = None) -> str: ...
        def _read(self) -> Redis: ...
        def _write(self) -> Redis: ...
        def _decoded(self, raw: Any) -> Any: ...
