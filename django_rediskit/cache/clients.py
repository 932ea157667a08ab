"""The I/O layer under the backend: django-redis's client with our codec and pool scoping.

``DefaultClient`` keeps doing what it does well (replica selection, the set / sorted-set / hash
commands, locks, expiry helpers); this subclass swaps in the value codec (header, signing,
compression), builds pools per cache alias, and adds the hash and list commands django-redis lacks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.cache.backends.base import get_key_func
from django.core.exceptions import ImproperlyConfigured
from django_redis.client import DefaultClient

from django_rediskit.cache import codec as codecs
from django_rediskit.cache.options import OptionsMemo
from django_rediskit.connection import ConnectionFactory

if TYPE_CHECKING:
    from redis import Redis

    from django_rediskit.cache.backend import RedisCache


def build_codec(options: dict[str, Any]) -> codecs.Codec:
    """The codec described by a cache's OPTIONS (also used by system checks to validate them)."""
    serializer = codecs.resolve_serializer(options.get("SERIALIZER", "pickle"), options)
    sign = options.get("SIGN_VALUES", True)
    signer = None
    if sign:
        secrets = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
        signer = codecs.Signer(secrets, options.get("SIGNING_SALT", codecs.DEFAULT_SIGNING_SALT))
    compressor = codecs.resolve_compressor(options.get("COMPRESSOR"), options.get("COMPRESS_LEVEL"))
    return codecs.Codec(
        serializer,
        signer,
        compressor,
        compress_min_length=int(
            options.get("COMPRESS_MIN_LENGTH", codecs.DEFAULT_COMPRESS_MIN_LENGTH)
        ),
        max_value_size=int(options.get("MAX_VALUE_SIZE", codecs.DEFAULT_MAX_VALUE_SIZE)),
    )


#: One codec per OPTIONS dict and secrets (a codec is immutable; keying its signer is not free).
_codecs: OptionsMemo[codecs.Codec] = OptionsMemo(build_codec)


class RedisKitClient(DefaultClient):  # type: ignore[misc]
    """Standalone Redis (one primary, optional read replicas)."""

    def __init__(self, server: str | list[str], params: dict[str, Any], backend: RedisCache):
        # DefaultClient.__init__ resolves SERIALIZER/COMPRESSOR as dotted django-redis classes,
        # which our short names are not, so the attributes it sets are set here instead.
        if not server:
            raise ImproperlyConfigured("CACHES LOCATION is empty: give a redis:// URL.")
        self._backend = backend
        self._server = server.split(",") if isinstance(server, str) else list(server)
        self._params = params
        self._options: dict[str, Any] = params.get("OPTIONS", {})
        self.reverse_key = get_key_func(params.get("REVERSE_KEY_FUNCTION") or backend.reverse_key)
        self._clients: list[Redis | None] = [None] * len(self._server)
        self._replica_read_only = self._options.get("REPLICA_READ_ONLY", True)
        self.codec = _codecs.get(
            self._options, settings.SECRET_KEY, tuple(getattr(settings, "SECRET_KEY_FALLBACKS", ()))
        )
        self._serializer = self.codec.serializer
        self._compressor = self.codec.compressor
        self.connection_factory = ConnectionFactory(self._options, scope=backend.scope)

    def get_client(self, write: bool = True, tried: list[int] | None = None) -> Redis:
        """The redis-py client for a command (django-redis's name; ``get_redis_connection``
        calls it): the alias's topology decides which (a primary, a replica, the cluster)."""
        return self._backend.topology.client(write)

    def encode(self, value: Any, *, allow_int: bool = True) -> bytes | int:  # type: ignore[override]
        if not allow_int and type(value) is int:
            return str(value).encode()
        return self.codec.encode(value)

    def decode(self, value: bytes | int | str) -> Any:
        if isinstance(value, int):
            return value
        return self.codec.decode(value.encode() if isinstance(value, str) else value)

    def _has_compression_enabled(self) -> bool:
        return self.codec.compressor is not None
