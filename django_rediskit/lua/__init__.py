"""Every Lua script of the kit, one file each, and the one way they are sent to Redis.

A script is sent as EVALSHA. If the server does not know it (after ``SCRIPT FLUSH``, a restart
or a failover), a direct call retries once with EVAL, which also caches it again: one extra round
trip, no error. redis-py's ``Script`` would send EVALSHA, SCRIPT LOAD and EVALSHA again, and
inside a pipeline a SCRIPT EXISTS before every execute; hence this small replacement.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Sequence
from importlib import resources
from typing import TYPE_CHECKING, Any, cast

from redis.exceptions import NoScriptError

if TYPE_CHECKING:
    from redis import Redis
    from redis.client import Pipeline

_by_sha: dict[str, LuaScript] = {}
#: (connection pool id, sha) pairs this process has loaded, so pipelines skip the NOSCRIPT trip.
_loaded: set[tuple[int, str]] = set()


class LuaScript:
    """One script's text and SHA1, callable on any client."""

    def __init__(self, name: str, text: bytes) -> None:
        self.name = name
        self.text = text
        self.sha = hashlib.sha1(text, usedforsecurity=False).hexdigest()

    def __call__(
        self, keys: Sequence[Any] = (), args: Sequence[Any] = (), client: Redis | None = None
    ) -> Any:
        if client is None:
            raise TypeError(f"Lua script {self.name!r} needs client=")
        try:
            return client.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            return client.eval(self.text, len(keys), *keys, *args)  # type: ignore[arg-type]

    async def acall(self, keys: Sequence[Any], args: Sequence[Any], client: Any) -> Any:
        """The same on a ``redis.asyncio`` client."""
        try:
            return await client.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            return await client.eval(self.text, len(keys), *keys, *args)

    def queue(self, pipe: Pipeline, keys: Sequence[Any] = (), args: Sequence[Any] = ()) -> None:
        """Add an EVALSHA to ``pipe``; run such pipelines with :func:`run_pipeline`."""
        if isinstance(pipe, _ClusterRecorder):
            pipe.steps.append((self, list(keys), list(args)))
            return
        pipe.evalsha(self.sha, len(keys), *keys, *args)


class _ClusterRecorder:
    """Stands in for a pipeline on Redis Cluster, where redis-py refuses scripts in pipelines.

    It records the commands and scripts in order; :func:`run_pipeline` then sends each run of
    plain commands as one cluster pipeline (one round trip per node involved) and each script
    as one call, in the recorded order (so a script that must run before a write still does).
    """

    def __init__(self) -> None:
        self.steps: list[tuple[Any, ...]] = []

    def __getattr__(self, name: str) -> Callable[..., None]:
        def record(*args: Any, **kwargs: Any) -> None:
            self.steps.append((name, args, kwargs))

        return record


def _run_recorded(client: Any, steps: list[tuple[Any, ...]], raise_on_error: bool) -> list[Any]:
    replies: list[Any] = []
    batch: Any = None
    for step in [*steps, None]:
        if step is not None and isinstance(step[0], str):
            if batch is None:
                batch = client.pipeline(transaction=False)
            name, args, kwargs = step
            getattr(batch, name)(*args, **kwargs)
            continue
        if batch is not None:
            replies += batch.execute(raise_on_error=raise_on_error)
            batch = None
        if step is not None:
            lua, keys, args = step
            try:
                replies.append(lua(keys, args, client=client))
            except Exception as exc:
                if raise_on_error:
                    raise
                replies.append(exc)
    return replies


#: Commands whose methods on ``redis.asyncio``'s ClusterPipeline are coroutines.
_ASYNC_CLUSTER_MULTI_KEY = frozenset({"delete", "exists", "touch", "unlink", "mget", "mset"})


async def _arun_recorded(
    client: Any, steps: list[tuple[Any, ...]], raise_on_error: bool
) -> list[Any]:
    """:func:`_run_recorded` on ``redis.asyncio.RedisCluster``."""
    replies: list[Any] = []
    batch: Any = None
    for step in [*steps, None]:
        if step is not None and isinstance(step[0], str):
            if batch is None:
                batch = client.pipeline(transaction=False)
            name, args, kwargs = step
            if name in _ASYNC_CLUSTER_MULTI_KEY:
                # redis.asyncio's cluster pipeline makes these coroutines (they split keys by
                # slot); ours always carry one key, so queue the plain command.
                batch.execute_command(name.upper(), *args)
            else:
                getattr(batch, name)(*args, **kwargs)
            continue
        if batch is not None:
            replies += await batch.execute(raise_on_error=raise_on_error)
            batch = None
        if step is not None:
            lua, keys, args = step
            try:
                replies.append(await lua.acall(keys, args, client))
            except Exception as exc:
                if raise_on_error:
                    raise
                replies.append(exc)
    return replies


@functools.cache
def source(name: str) -> str:
    """The text of ``lua/<name>.lua``."""
    return resources.files(__package__).joinpath(f"{name}.lua").read_text(encoding="utf-8")


@functools.cache
def script(name: str, prelude: str | None = None) -> LuaScript:
    """The script ``lua/<name>.lua``, after ``lua/<prelude>.lua`` when one is named (shared
    helper functions: Lua scripts cannot import each other)."""
    text = (source(prelude) if prelude else "") + source(name)
    lua = LuaScript(name, text.encode())
    _by_sha[lua.sha] = lua
    return lua


def run_pipeline(
    client: Redis, build: Callable[[Pipeline], None], *, raise_on_error: bool = True
) -> list[Any]:
    """Build and send a non-transactional pipeline that may queue scripts: one round trip.

    Scripts are loaded once per pool first. If the server lost one since (NOSCRIPT), they are
    loaded again and the whole pipeline is sent once more: only use it for idempotent pipelines
    (a replay re-runs the commands that did succeed). With ``raise_on_error=False``
    command errors come back as exception objects in the replies, as in redis-py.
    """
    if not hasattr(client, "connection_pool"):  # RedisCluster: no scripts in its pipelines
        recorder = _ClusterRecorder()
        build(cast("Pipeline", recorder))
        return _run_recorded(client, recorder.steps, raise_on_error)
    pool = id(client.connection_pool)
    for attempt in (1, 2):
        pipe = client.pipeline(transaction=False)
        build(pipe)
        shas = {args[1] for args, _options in pipe.command_stack if args[0] == "EVALSHA"}
        if attempt == 1:
            _load(client, pool, {sha for sha in shas if (pool, sha) not in _loaded})
        replies: list[Any] = pipe.execute(raise_on_error=False)
        if attempt == 1 and any(isinstance(reply, NoScriptError) for reply in replies):
            _load(client, pool, shas)  # the server lost them: SCRIPT FLUSH, restart, failover
            continue
        break
    if raise_on_error:
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
    return replies


async def arun_pipeline(
    client: Any, build: Callable[[Any], None], *, raise_on_error: bool = True
) -> list[Any]:
    """:func:`run_pipeline` on a ``redis.asyncio`` client: same loading, replay and errors."""
    if not hasattr(client, "connection_pool"):  # RedisCluster: no scripts in its pipelines
        recorder = _ClusterRecorder()
        build(recorder)
        return await _arun_recorded(client, recorder.steps, raise_on_error)
    pool = id(client.connection_pool)
    for attempt in (1, 2):
        pipe = client.pipeline(transaction=False)
        build(pipe)
        shas = {args[1] for args, _options in pipe.command_stack if args[0] == "EVALSHA"}
        if attempt == 1:
            await _aload(client, pool, {sha for sha in shas if (pool, sha) not in _loaded})
        replies: list[Any] = await pipe.execute(raise_on_error=False)
        if attempt == 1 and any(isinstance(reply, NoScriptError) for reply in replies):
            await _aload(client, pool, shas)
            continue
        break
    if raise_on_error:
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
    return replies


async def _aload(client: Any, pool: int, shas: set[str]) -> None:
    if not shas:
        return
    loader = client.pipeline(transaction=False)
    for sha in shas:
        loader.script_load(_by_sha[sha].text)
    await loader.execute()
    _loaded.update((pool, sha) for sha in shas)


def _load(client: Redis, pool: int, shas: set[str]) -> None:
    if not shas:
        return
    loader = client.pipeline(transaction=False)
    for sha in shas:
        loader.script_load(_by_sha[sha].text)
    loader.execute()
    _loaded.update((pool, sha) for sha in shas)
