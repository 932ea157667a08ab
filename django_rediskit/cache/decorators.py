"""Cache-aside / read-through decorators: ``@cached`` for functions and methods, ``cached_page``
for views. Both take tags, so one ``invalidate_tags()`` drops everything computed from a row.

``@cached`` reads with its tags declared (one round trip on a hit) and, on a miss, goes through
the backend's stampede-safe ``get_or_set``: one computer per key, tag versions captured before
the function runs, so a result computed from data that changed meanwhile is never served.

TTL strategies, each a keyword: ``timeout`` (absolute; a callable of the result = dynamic),
``sliding=True`` (every hit restarts the timeout), ``jitter=0.1`` (each write's timeout shortened
by up to 10 % at random, so entries written together do not expire together) and ``xfetch=1.0``
(probabilistic early refresh: a hit close to expiry recomputes in the background of one caller,
more eagerly for values that took long to compute; Vattani et al., VLDB 2015).
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import math
import random
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, cast

from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.http import HttpRequest, HttpResponse

from django_rediskit.aliases import backend_for_alias
from django_rediskit.cache.keys import KeyBuilder, digest
from django_rediskit.cache.tags import normalize_tags
from django_rediskit.conf import get_setting

if TYPE_CHECKING:
    from django_rediskit.cache.backend import RedisCache

P = ParamSpec("P")
R = TypeVar("R")

_MISSING: Any = object()
#: First item of an XFetch envelope: ``[marker, value, compute seconds, expires at (epoch)]``.
_XFETCH_MARKER = "rk-xfetch/1"

#: Longest function name put in an automatic key; longer ones are shortened with a hash.
MAX_NAME_LENGTH = 100

TagSpec = str | Callable[..., str | Iterable[str]]


def backend_for(alias: str | None) -> RedisCache:
    """The rediskit backend for ``alias``, or for ``REDISKIT["CACHE_ALIAS"]`` when None."""
    return backend_for_alias(alias or get_setting("CACHE_ALIAS"))


def _qualified_name(func: Callable[..., Any]) -> str:
    """``module.qualname`` for keys; deep nesting keeps a readable head and stays unique."""
    name = f"{func.__module__}.{func.__qualname__}"
    if len(name) <= MAX_NAME_LENGTH:
        return name
    return name[: MAX_NAME_LENGTH - 17] + "~" + hashlib.blake2b(name.encode()).hexdigest()[:16]


def _resolve_tags(specs: TagSpec | Iterable[TagSpec], *args: Any, **kwargs: Any) -> list[str]:
    """Tag names from literal strings and callables of the call's arguments."""
    if isinstance(specs, str) or callable(specs):
        specs = [specs]
    names: list[str] = []
    for spec in specs:
        produced = spec(*args, **kwargs) if callable(spec) else spec
        names.extend(normalize_tags(produced))
    return names


class _TTL:
    """Turns the TTL options into the per-write timeout the backend receives."""

    def __init__(self, timeout: Any, sliding: bool, jitter: float, xfetch: float | None) -> None:
        if not 0.0 <= jitter < 1.0:
            raise ValueError(f"jitter must be >= 0 and < 1, not {jitter!r}")
        if xfetch is not None and xfetch <= 0:
            raise ValueError(f"xfetch (beta) must be > 0, not {xfetch!r}")
        if xfetch is not None and sliding:
            raise ValueError("xfetch refreshes before a fixed expiry; it cannot be sliding.")
        if (sliding or xfetch is not None) and timeout is None:
            raise ValueError("sliding and xfetch need a finite timeout.")
        if sliding and callable(timeout):
            raise ValueError("A sliding timeout is restarted on reads, so it cannot be dynamic.")
        self.timeout = timeout
        self.sliding = sliding
        self.jitter = jitter
        self.xfetch = xfetch

    def seconds(self, backend: RedisCache, value: Any) -> float | None:
        timeout = backend.default_timeout if self.timeout is DEFAULT_TIMEOUT else self.timeout
        if callable(timeout):
            timeout = timeout(value)
        if timeout is None or timeout <= 0 or not self.jitter:
            return cast("float | None", timeout)
        return float(timeout) * (1 - random.random() * self.jitter)  # noqa: S311

    def refresh(self, backend: RedisCache) -> Any:
        """``refresh_ttl`` for reads: the plain timeout when sliding (dynamic needs the value)."""
        if not self.sliding:
            return None
        return backend.default_timeout if self.timeout is DEFAULT_TIMEOUT else self.timeout


class CachedFunction(Generic[P, R]):
    """A function whose results are cached per argument; see :func:`cached`."""

    def __init__(
        self,
        func: Callable[P, R],
        *,
        ttl: _TTL,
        tags: TagSpec | Iterable[TagSpec],
        key: str | Callable[..., str] | None,
        cache: str | None,
        vary_on: Iterable[str] | None,
        version: int | None,
    ) -> None:
        self.func = func
        self.ttl = ttl
        self.tags = tags if isinstance(tags, str) or callable(tags) else tuple(tags)
        self.key = key
        self.cache = cache
        self.version = version
        self.signature = inspect.signature(func)
        self.vary_on = None if vary_on is None else tuple(vary_on)
        unknown = set(self.vary_on or ()) - set(self.signature.parameters)
        if unknown:
            raise ValueError(f"vary_on names unknown arguments of {func.__qualname__}: {unknown}")
        self.keys = KeyBuilder("cached", _qualified_name(func))
        functools.update_wrapper(self, func)

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        """Used as a method: bind the instance, as a plain function would be."""
        if instance is None:
            return self
        return _BoundCached(self, instance)

    # --- keys and tags ------------------------------------------------------------------------

    def key_for(self, *args: P.args, **kwargs: P.kwargs) -> str:
        if callable(self.key):
            return str(self.key(*args, **kwargs))
        bound = self.signature.bind(*args, **kwargs)
        bound.apply_defaults()
        arguments = dict(bound.arguments)
        if self.vary_on is not None:
            arguments = {name: arguments[name] for name in self.vary_on}
        if isinstance(self.key, str):
            if "{" in self.key:
                return self.keys.format(self.key, **arguments)
            base = self.keys.child(self.key) if self.key else self.keys
            return base.key(digest(arguments)) if arguments else base.key()
        return self.keys.key(digest(arguments))

    def tags_for(self, *args: P.args, **kwargs: P.kwargs) -> list[str]:
        return _resolve_tags(self.tags, *args, **kwargs)

    # --- calls ----------------------------------------------------------------------------------

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        backend = backend_for(self.cache)
        key = self.key_for(*args, **kwargs)
        tags = self.tags_for(*args, **kwargs)
        found = backend.get(
            key, _MISSING, self.version, refresh_ttl=self.ttl.refresh(backend), tags=tags
        )
        if found is not _MISSING:
            if self.ttl.xfetch is None:
                return cast(R, found)
            if not _is_envelope(found):  # written by something else: replace it
                return self.refresh(*args, **kwargs)
            if not self._expires_early(found):
                return cast(R, found[1])
            return self._refresh_early(backend, key, tags, found, *args, **kwargs)
        stored = backend.get_or_set(
            key,
            lambda: self._compute(*args, **kwargs),
            lambda value: self._timeout(backend, value),
            self.version,
            tags=tags,
        )
        if self.ttl.xfetch is not None and not _is_envelope(stored):
            return self.refresh(*args, **kwargs)
        return self._unwrap(stored)

    def refresh(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Recompute now and store the result (tag versions captured before the call)."""
        backend = backend_for(self.cache)
        key = self.key_for(*args, **kwargs)
        tags = normalize_tags(self.tags_for(*args, **kwargs))
        stored = backend.compute_and_store(
            key,
            lambda: self._compute(*args, **kwargs),
            lambda value: self._timeout(backend, value),
            self.version,
            tags,
        )
        return self._unwrap(stored)

    def invalidate(self, *args: P.args, **kwargs: P.kwargs) -> bool:
        """Drop the cached result for these arguments; True if there was one."""
        return bool(backend_for(self.cache).delete(self.key_for(*args, **kwargs), self.version))

    # --- helpers -------------------------------------------------------------------------------

    def _compute(self, *args: Any, **kwargs: Any) -> Any:
        if self.ttl.xfetch is None:
            return self.func(*args, **kwargs)
        started = time.monotonic()
        value = self.func(*args, **kwargs)
        # The expiry is filled in by _timeout, which knows the TTL actually used.
        return [_XFETCH_MARKER, value, time.monotonic() - started, None]

    def _timeout(self, backend: RedisCache, stored: Any) -> float | None:
        """Called by the backend before it encodes ``stored``, so the XFetch envelope can
        record the expiry of the TTL actually chosen (jitter included)."""
        if self.ttl.xfetch is None:
            return self.ttl.seconds(backend, stored)
        seconds = self.ttl.seconds(backend, stored[1])
        stored[3] = None if seconds is None else time.time() + seconds
        return seconds

    def _unwrap(self, stored: Any) -> R:
        return cast(R, stored[1] if self.ttl.xfetch is not None else stored)

    def _expires_early(self, envelope: list[Any]) -> bool:
        """XFetch: refresh when now - delta * beta * ln(U) >= expiry, U uniform in (0, 1]."""
        _, _, delta, expires = envelope
        if expires is None or self.ttl.xfetch is None:
            return False
        gap = -float(delta) * self.ttl.xfetch * math.log(1.0 - random.random())  # noqa: S311
        return time.time() + gap >= float(expires)

    def _refresh_early(
        self,
        backend: RedisCache,
        key: str,
        tags: list[str],
        found: list[Any],
        *args: Any,
        **kw: Any,
    ) -> R:
        """One caller recomputes (holding the stampede lock); the others keep serving."""
        lock = backend.stampede_lock(key, self.version)
        if not lock.acquire(blocking=False):
            return cast(R, found[1])
        try:
            stored = backend.compute_and_store(
                key,
                lambda: self._compute(*args, **kw),
                lambda value: self._timeout(backend, value),
                self.version,
                normalize_tags(tags),
            )
        finally:
            lock.release()
        return self._unwrap(stored)


def _is_envelope(value: Any) -> bool:
    return (
        isinstance(value, (list, tuple))
        and len(value) == 4
        and value[0] == _XFETCH_MARKER
        and isinstance(value[2], (int, float))
        and (value[3] is None or isinstance(value[3], (int, float)))
    )


class _BoundCached:
    """``instance.method`` for a cached method: the same API with the instance bound."""

    def __init__(self, cached: CachedFunction[Any, Any], instance: Any) -> None:
        self._cached = cached
        self._instance = instance
        functools.update_wrapper(self, cached.func)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._cached(self._instance, *args, **kwargs)

    def refresh(self, *args: Any, **kwargs: Any) -> Any:
        return self._cached.refresh(self._instance, *args, **kwargs)

    def invalidate(self, *args: Any, **kwargs: Any) -> bool:
        return self._cached.invalidate(self._instance, *args, **kwargs)

    def key_for(self, *args: Any, **kwargs: Any) -> str:
        return self._cached.key_for(self._instance, *args, **kwargs)

    def tags_for(self, *args: Any, **kwargs: Any) -> list[str]:
        return self._cached.tags_for(self._instance, *args, **kwargs)


def cached(
    timeout: Any = DEFAULT_TIMEOUT,
    *,
    tags: TagSpec | Iterable[TagSpec] = (),
    key: str | Callable[..., str] | None = None,
    cache: str | None = None,
    vary_on: Iterable[str] | None = None,
    version: int | None = None,
    sliding: bool = False,
    jitter: float = 0.0,
    xfetch: float | None = None,
) -> Callable[[Callable[P, R]], CachedFunction[P, R]]:
    """Cache a function's result per argument values.

    ``tags`` are strings or callables of the arguments returning a tag or tags. ``key`` is a
    template over argument names (``"user:{user_id}:profile"``), a fixed name (arguments are
    hashed after it), or a callable of the arguments; by default the key is the function's
    qualified name plus a digest of all arguments (model instances count by label and pk).
    ``vary_on`` restricts the arguments that make up the key, e.g. to leave out ``self``.
    """
    ttl = _TTL(timeout, sliding, jitter, xfetch)

    def decorate(func: Callable[P, R]) -> CachedFunction[P, R]:
        return CachedFunction(
            func, ttl=ttl, tags=tags, key=key, cache=cache, vary_on=vary_on, version=version
        )

    return decorate


# --- views --------------------------------------------------------------------------------------

View = Callable[..., HttpResponse]


def cached_page(
    timeout: Any = DEFAULT_TIMEOUT,
    *,
    tags: TagSpec | Iterable[TagSpec] = (),
    cache: str | None = None,
    vary_on_headers: Iterable[str] = (),
    per_user: bool = False,
    key_prefix: str = "",
) -> Callable[[View], View]:
    """Cache a view's whole response, with tags (callables get ``request, *args, **kwargs``).

    Safe by default: only GET/HEAD with status 200, no ``Set-Cookie``, no ``private`` /
    ``no-store`` / ``no-cache``, and a ``Vary`` no wider than ``vary_on_headers`` (whose request
    values are part of the key). Logged-in users bypass the cache unless ``per_user=True``,
    which keys the page by user (and then tolerates ``Vary: Cookie``).
    """
    headers = tuple(sorted(header.lower() for header in vary_on_headers))

    def decorate(view: View) -> View:
        keys = KeyBuilder("page", _qualified_name(view))
        if key_prefix:
            keys = keys.child(key_prefix)

        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            user = getattr(request, "user", None)
            authenticated = bool(user is not None and user.is_authenticated)
            if request.method not in ("GET", "HEAD") or (authenticated and not per_user):
                return view(request, *args, **kwargs)
            backend = backend_for(cache)
            names = _resolve_tags(tags, request, *args, **kwargs)
            varying = [request.get_full_path(), [request.headers.get(h, "") for h in headers]]
            if per_user:
                varying.append(str(user.pk) if authenticated and user is not None else "")
            key = keys.key(digest(varying))
            found = backend.get(key, None, tags=names)
            if _is_page(found):
                return _rebuild(found)
            captured = backend.tag_versions(*names) if names else None
            response = view(request, *args, **kwargs)
            if (not names or captured is not None) and _cacheable(response, headers, per_user):
                # latin-1 maps bytes to str one to one, so JSON and msgpack can store pages too.
                content = bytes(response.content).decode("latin-1")
                payload = [response.status_code, content, list(response.items())]
                backend.set(key, payload, timeout, versions=captured if names else None)
            return response

        return wrapper

    return decorate


def _cacheable(response: HttpResponse, headers: tuple[str, ...], per_user: bool) -> bool:
    if response.status_code != 200 or getattr(response, "streaming", False) or response.cookies:
        return False
    control = {part.strip().lower() for part in response.get("Cache-Control", "").split(",")}
    if control & {"private", "no-store", "no-cache"}:
        return False
    varies = {v.strip().lower() for v in response.get("Vary", "").split(",") if v.strip()}
    allowed = set(headers) | ({"cookie"} if per_user else set())
    return varies <= allowed


def _is_page(found: Any) -> bool:
    return (
        isinstance(found, (list, tuple))
        and len(found) == 3
        and isinstance(found[0], int)
        and isinstance(found[1], str)
        and isinstance(found[2], (list, tuple))
    )


def _rebuild(found: list[Any]) -> HttpResponse:
    status, content, items = found
    response = HttpResponse(content.encode("latin-1"), status=status)
    for name, value in items:
        if isinstance(name, str) and isinstance(value, str):
            response[name] = value
    return response
