"""Every Lua script of the kit, one file each, registered once per client through redis-py.

redis-py's ``Script`` objects send EVALSHA and fall back to EVAL (reloading) on NOSCRIPT, so a
``SCRIPT FLUSH`` or a failover to a fresh replica costs one extra round trip and no error.
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from redis import Redis
    from redis.client import Pipeline


class BoundScript(Protocol):
    def __call__(
        self,
        keys: list[Any] | None = ...,
        args: list[Any] | None = ...,
        client: Redis | Pipeline | None = ...,
    ) -> Any: ...


@functools.cache
def source(name: str) -> str:
    """The text of ``lua/<name>.lua``."""
    return resources.files(__package__).joinpath(f"{name}.lua").read_text(encoding="utf-8")


@functools.cache
def script(name: str) -> BoundScript:
    """A redis-py Script for ``lua/<name>.lua``; pass ``client=`` on each call.

    Scripts are created unbound (no registering client) and cached per process: the SHA is
    computed once, and each call runs on whichever client (or pipeline) it is given.
    """
    from redis.commands.core import Script

    return Script(None, source(name).encode())  # type: ignore[arg-type]
