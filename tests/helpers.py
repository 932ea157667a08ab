"""Types and helpers shared by test modules."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest
from asgiref import sync

from django_rediskit.cache import RedisCache

#: ``make_cache(location=None, *, prefix=None, OPTIONS={...}, **params)`` fixture signature.
MakeCache = Callable[..., RedisCache]


@contextlib.contextmanager
def on_the_loop_only(sync_paths: Iterable[tuple[object, str]]) -> Iterator[list[str]]:
    """Inside the block no ``sync_to_async`` wrapper may be built (they are counted: there must
    be none) and the sync drivers named by ``sync_paths`` (module, attribute) fail if used, so
    an async method that went through a thread, or through the sync code, cannot pass."""
    wrapped: list[str] = []
    original = sync.SyncToAsync.__init__

    def counting(self: Any, func: Any, *args: Any, **kwargs: Any) -> None:
        wrapped.append(getattr(func, "__name__", repr(func)))
        original(self, func, *args, **kwargs)

    def forbidden(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("an async method went through a sync driver")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sync.SyncToAsync, "__init__", counting)
        for module, name in sync_paths:
            patch.setattr(module, name, forbidden)
        yield wrapped
    assert wrapped == []
