"""Standalone connection pools, one per cache alias and configuration.

django-redis keys its process-wide pools by URL only, so two aliases pointing at the same server
with different pool options silently share the first one's pool (django-redis #685). Here a pool is
keyed by the alias *and* a fingerprint of everything that shapes a connection, so each alias gets
its own pool and a changed option can never be ignored.

URLs are whatever redis-py's ``ConnectionPool.from_url`` accepts: ``redis://``, ``rediss://`` (TLS;
``ssl_*`` options in the query string or in ``CONNECTION_POOL_KWARGS``) and ``unix://``, with ACL
``user:password@`` and a database number in the path or ``?db=``. Sentinel and Cluster pools are
redis-py's own, built by ``topology.py``.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from django_redis.pool import ConnectionFactory as DjangoRedisConnectionFactory

from django_rediskit.connection.urls import validate_standalone_url

if TYPE_CHECKING:
    from redis import ConnectionPool


#: Defaults that django-redis leaves unset (so a dead server can hang a request forever).
DEFAULT_SOCKET_CONNECT_TIMEOUT = 1.0
DEFAULT_SOCKET_TIMEOUT = 5.0

_pools: dict[tuple[str, str], ConnectionPool] = {}
_pools_lock = threading.Lock()


class ConnectionFactory(DjangoRedisConnectionFactory):  # type: ignore[misc]
    """django-redis's factory with pools scoped to one cache alias and sane socket timeouts."""

    def __init__(self, options: dict[str, Any], *, scope: str = "") -> None:
        super().__init__(options)
        self.scope = scope

    def make_connection_params(self, url: str) -> dict[str, Any]:
        validate_standalone_url(url)
        params: dict[str, Any] = super().make_connection_params(url)
        params.setdefault(
            "socket_connect_timeout",
            self.options.get("SOCKET_CONNECT_TIMEOUT", DEFAULT_SOCKET_CONNECT_TIMEOUT),
        )
        params.setdefault(
            "socket_timeout", self.options.get("SOCKET_TIMEOUT", DEFAULT_SOCKET_TIMEOUT)
        )
        return params

    def get_or_create_connection_pool(self, params: dict[str, Any]) -> ConnectionPool:
        key = (self.scope, _fingerprint(params, self.pool_cls_kwargs, self.pool_cls))
        pool = _pools.get(key)
        if pool is None:
            with _pools_lock:
                pool = _pools.get(key)
                if pool is None:
                    pool = _pools[key] = self.get_connection_pool(params)
        return pool


def _fingerprint(params: dict[str, Any], pool_kwargs: dict[str, Any], pool_cls: type) -> str:
    items = sorted({**params, **pool_kwargs}.items(), key=lambda item: item[0])
    return repr((pool_cls, items))
