"""Value encoding: a one-byte header, serializers, signing and compression.

Every non-integer value is stored as::

    header(1) | signature(16, if signed) | payload (compressed or not)

The header byte always has its top bit set, so it can never be confused with a raw integer (stored
as ASCII digits so that Redis ``INCR`` works on it). Its other bits name the serializer (bits 4-6;
0 is never used, so a bare pickle written by django-redis, which starts with ``0x80``, is never
mistaken for ours), the compressor (bits 2-3), whether a signature follows (bit 1) and whether an
extension block follows (bit 0, reserved for tag metadata). Because the format travels with the
value, a site can change serializer or compressor without flushing: old values still decode.

A signed value carries a keyed BLAKE2b tag over the header and payload, with a key derived from
``SECRET_KEY`` (and each of ``SECRET_KEY_FALLBACKS`` for reading). Pickle values are always signed
and are only unpickled after the tag verifies, so write access to Redis is not code execution.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import pickle
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

security_logger = logging.getLogger("django_rediskit.security")
logger = logging.getLogger("django_rediskit.cache")

MARKER = 0x80
SIGNED = 0x02
EXTENSION = 0x01
SIGNATURE_SIZE = 16
DEFAULT_SIGNING_SALT = "django_rediskit.cache.values"
DEFAULT_MAX_VALUE_SIZE = 32 * 1024 * 1024
DEFAULT_COMPRESS_MIN_LENGTH = 1024
TAG_CHECKSUM_SIZE = 8
MAX_TAGS_PER_VALUE = 255


class ValueTooLarge(ValueError):
    """An encoded value exceeds ``MAX_VALUE_SIZE``; nothing was written."""


class UndecodableValue(Exception):
    """A stored value cannot be trusted or read; the cache treats it as a miss."""


# --- serializers ---------------------------------------------------------------------------------


class Serializer:
    """Turns values into bytes and back. ``format_id`` (1-7) is stored in every value's header."""

    format_id: ClassVar[int]
    name: ClassVar[str]
    #: Whether loading untrusted bytes can run code; such formats are always signed.
    executes_code: ClassVar[bool] = False

    def dumps(self, value: Any) -> bytes:
        raise NotImplementedError

    def loads(self, data: bytes | memoryview) -> Any:
        """``data`` may be a memoryview into the stored value (no copy)."""
        raise NotImplementedError


class PickleSerializer(Serializer):
    format_id = 1
    name = "pickle"
    executes_code = True

    def __init__(self, protocol: int = pickle.HIGHEST_PROTOCOL) -> None:
        self.protocol = protocol

    def dumps(self, value: Any) -> bytes:
        return pickle.dumps(value, self.protocol)

    def loads(self, data: bytes | memoryview) -> Any:
        # Only reached after the signature verified (Codec.decode enforces it).
        return pickle.loads(data)  # noqa: S301


class JSONSerializer(Serializer):
    format_id = 2
    name = "json"

    def dumps(self, value: Any) -> bytes:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()

    def loads(self, data: bytes | memoryview) -> Any:
        return json.loads(bytes(data))


class MsgPackSerializer(Serializer):
    format_id = 3
    name = "msgpack"

    def __init__(self) -> None:
        import msgpack

        self._packb = msgpack.packb
        self._unpackb = msgpack.unpackb

    def dumps(self, value: Any) -> bytes:
        return bytes(self._packb(value, use_bin_type=True))

    def loads(self, data: bytes | memoryview) -> Any:
        return self._unpackb(data, raw=False, strict_map_key=False)


SERIALIZERS: dict[str, type[Serializer]] = {
    "pickle": PickleSerializer,
    "json": JSONSerializer,
    "msgpack": MsgPackSerializer,
    # django-redis's dotted paths, so a settings file can switch backends unchanged.
    "django_redis.serializers.pickle.PickleSerializer": PickleSerializer,
    "django_redis.serializers.json.JSONSerializer": JSONSerializer,
    "django_redis.serializers.msgpack.MSGPackSerializer": MsgPackSerializer,
}


# --- compressors ---------------------------------------------------------------------------------


class Compressor:
    """Compression with a configurable level (django-redis hard-codes it, #176)."""

    compressor_id: ClassVar[int]
    name: ClassVar[str]

    def __init__(self, level: int | None = None) -> None:
        self.level = level

    def compress(self, data: bytes) -> bytes:
        raise NotImplementedError

    def decompress(self, data: bytes | memoryview) -> bytes:
        raise NotImplementedError


class ZlibCompressor(Compressor):
    compressor_id = 1
    name = "zlib"

    def compress(self, data: bytes) -> bytes:
        return zlib.compress(data, -1 if self.level is None else self.level)

    def decompress(self, data: bytes | memoryview) -> bytes:
        return zlib.decompress(data)


class ZstdCompressor(Compressor):
    compressor_id = 2
    name = "zstd"

    def __init__(self, level: int | None = None) -> None:
        super().__init__(level)
        import pyzstd

        self._pyzstd = pyzstd

    def compress(self, data: bytes) -> bytes:
        return bytes(self._pyzstd.compress(data, self.level or 0))

    def decompress(self, data: bytes | memoryview) -> bytes:
        return bytes(self._pyzstd.decompress(data))


class Lz4Compressor(Compressor):
    compressor_id = 3
    name = "lz4"

    def __init__(self, level: int | None = None) -> None:
        super().__init__(level)
        import lz4.frame

        self._frame = lz4.frame

    def compress(self, data: bytes) -> bytes:
        return bytes(self._frame.compress(data, compression_level=self.level or 0))

    def decompress(self, data: bytes | memoryview) -> bytes:
        return bytes(self._frame.decompress(data))


COMPRESSORS: dict[str, type[Compressor]] = {
    "zlib": ZlibCompressor,
    "zstd": ZstdCompressor,
    "lz4": Lz4Compressor,
    "django_redis.compressors.zlib.ZlibCompressor": ZlibCompressor,
    "django_redis.compressors.zstd.ZStdCompressor": ZstdCompressor,
    "django_redis.compressors.lz4.Lz4Compressor": Lz4Compressor,
}
NO_COMPRESSION = frozenset({"", "none", "django_redis.compressors.identity.IdentityCompressor"})
_COMPRESSORS_BY_ID: dict[int, type[Compressor]] = {
    cls.compressor_id: cls for cls in (ZlibCompressor, ZstdCompressor, Lz4Compressor)
}


def resolve_serializer(
    spec: str | type[Serializer] | Serializer, options: dict[str, Any]
) -> Serializer:
    """Build the serializer named by ``SERIALIZER``: a short name, a dotted path or a class."""
    if isinstance(spec, Serializer):
        serializer = spec
    else:
        cls = SERIALIZERS.get(spec) if isinstance(spec, str) else spec
        if cls is None and isinstance(spec, str):
            cls = _import(spec, "SERIALIZER")
        if not (isinstance(cls, type) and issubclass(cls, Serializer)):
            raise ImproperlyConfigured(
                f"SERIALIZER {spec!r} is not a django_rediskit.cache.codec.Serializer subclass."
            )
        if cls is PickleSerializer:
            serializer = PickleSerializer(options.get("PICKLE_VERSION", pickle.HIGHEST_PROTOCOL))
        else:
            serializer = cls()
    if not 1 <= getattr(serializer, "format_id", 0) <= 7:
        raise ImproperlyConfigured(f"Serializer {serializer!r} needs a format_id from 1 to 7.")
    return serializer


def resolve_compressor(spec: str | None, level: int | None) -> Compressor | None:
    """Build the compressor named by ``COMPRESSOR``, or None for no compression."""
    if spec is None or spec in NO_COMPRESSION:
        return None
    cls = COMPRESSORS.get(spec)
    if cls is None:
        raise ImproperlyConfigured(
            f"Unknown COMPRESSOR {spec!r}; use one of zlib, zstd, lz4 "
            "(or the django_redis.compressors paths for those)."
        )
    try:
        return cls(level)
    except ImportError as exc:
        raise ImproperlyConfigured(
            f"COMPRESSOR {spec!r} needs the {exc.name!r} package: "
            f"pip install 'django-rediskit[{cls.name}]'."
        ) from exc


def _import(path: str, option: str) -> Any:
    try:
        return import_string(path)
    except ImportError as exc:
        raise ImproperlyConfigured(f"{option} {path!r} cannot be imported: {exc}") from exc


# --- signing -------------------------------------------------------------------------------------


#: Signed payloads this long or longer use HMAC-SHA256 (truncated to 16 bytes) instead of keyed
#: BLAKE2b: with the CPU's SHA extensions it is about twice as fast on large values, while
#: BLAKE2b is three times faster on small ones. Both sides know the length, so no header bit
#: is needed to say which was used.
SHA256_FROM = 1024


class Signer:
    """Keyed tags over header and payload, with every fallback secret accepted when verifying.

    Each key's initialised hash state is kept and copied per value: cheaper than re-keying,
    which matters on ``get_many`` of a hundred values.
    """

    def __init__(self, secrets: Iterable[str | bytes], salt: str) -> None:
        keys = [_derive_key(secret, salt) for secret in secrets if secret]
        if not keys:
            raise ImproperlyConfigured("Signed cache values need a non-empty SECRET_KEY.")
        self._small = tuple(hashlib.blake2b(key=key, digest_size=SIGNATURE_SIZE) for key in keys)
        self._large = tuple(hmac.new(key, digestmod=hashlib.sha256) for key in keys)

    def sign(self, head: bytes, payload: bytes | memoryview) -> bytes:
        large = len(payload) >= SHA256_FROM
        mac = (self._large if large else self._small)[0].copy()
        mac.update(head)
        mac.update(payload)
        return mac.digest()[:SIGNATURE_SIZE] if large else mac.digest()

    def verify(self, signature: bytes | memoryview, head: bytes, payload: memoryview) -> bool:
        # Written out, not via sign(): this runs once per value read (100 times per get_many).
        large = len(payload) >= SHA256_FROM
        for base in self._large if large else self._small:
            mac = base.copy()
            mac.update(head)
            mac.update(payload)
            digest = mac.digest()
            if hmac.compare_digest(digest[:SIGNATURE_SIZE] if large else digest, signature):
                return True
        return False


def _derive_key(secret: str | bytes, salt: str) -> bytes:
    raw = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(raw, salt.encode(), hashlib.sha256).digest()


# --- the tag metadata block (header bit 0, EXTENSION) --------------------------------------------


@dataclass(frozen=True)
class TagBlock:
    """The tags a value depends on and a checksum of their versions captured before compute.

    Laid out right after the signature (or the header byte) as
    ``checksum(8) | count(1) | (len(varint) | utf-8 name)*``: 9 bytes plus one length byte per
    name under 128 bytes, so an entry pays little more than its tag names.
    """

    names: tuple[str, ...]
    checksum: bytes

    def pack(self) -> bytes:
        if len(self.checksum) != TAG_CHECKSUM_SIZE:
            raise ValueError(f"tag checksum must be {TAG_CHECKSUM_SIZE} bytes")
        if len(self.names) > MAX_TAGS_PER_VALUE:
            raise ValueError(f"a value may carry at most {MAX_TAGS_PER_VALUE} tags")
        parts = [self.checksum, bytes((len(self.names),))]
        for name in self.names:
            raw = name.encode()
            parts.append(_varint(len(raw)))
            parts.append(raw)
        return b"".join(parts)

    @classmethod
    def unpack(cls, data: bytes | memoryview, offset: int) -> tuple[TagBlock, int]:
        """The block starting at ``offset`` and the offset after it; bytes from Redis are
        untrusted, so every length is bounds-checked."""
        end = offset + TAG_CHECKSUM_SIZE
        if end + 1 > len(data):
            raise UndecodableValue("truncated tag block")
        checksum = bytes(data[offset:end])
        count = data[end]
        position = end + 1
        names = []
        for _ in range(count):
            length, position = _read_varint(data, position)
            if position + length > len(data):
                raise UndecodableValue("truncated tag name")
            try:
                names.append(bytes(data[position : position + length]).decode())
            except UnicodeDecodeError:
                raise UndecodableValue("tag name is not UTF-8") from None
            position += length
        return cls(tuple(names), checksum), position


def _varint(number: int) -> bytes:
    out = bytearray()
    while True:
        byte = number & 0x7F
        number >>= 7
        if number:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _read_varint(data: bytes | memoryview, position: int) -> tuple[int, int]:
    number = shift = 0
    while True:
        if position >= len(data) or shift > 28:
            raise UndecodableValue("bad length in tag block")
        byte = data[position]
        position += 1
        number |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return number, position
        shift += 7


# --- the codec -----------------------------------------------------------------------------------


class Codec:
    """Encodes values for Redis and decodes (and authenticates) what comes back."""

    def __init__(
        self,
        serializer: Serializer,
        signer: Signer | None,
        compressor: Compressor | None = None,
        compress_min_length: int = DEFAULT_COMPRESS_MIN_LENGTH,
        max_value_size: int = DEFAULT_MAX_VALUE_SIZE,
    ) -> None:
        if serializer.executes_code and signer is None:
            raise ImproperlyConfigured(
                f"The {serializer.name} serializer can run code when loading, so its values "
                "must be signed; keep SIGN_VALUES=True or choose json/msgpack."
            )
        self.serializer = serializer
        self.signer = signer
        self.compressor = compressor
        self.compress_min_length = compress_min_length
        self.max_value_size = max_value_size
        flags = MARKER | (serializer.format_id << 4)
        if signer is not None:
            flags |= SIGNED
        self._plain_head = bytes((flags,))
        self._compressed_head = bytes(
            (flags | (compressor.compressor_id << 2) if compressor is not None else flags,)
        )
        self._serializers: dict[int, Serializer] = {serializer.format_id: serializer}

    def encode(self, value: Any, tags: TagBlock | None = None) -> bytes | int:
        """Bytes to store; exact ints stay ints so Redis can INCR them (unless tagged)."""
        if type(value) is int and tags is None:
            return value
        payload = self.serializer.dumps(value)
        head = self._plain_head
        if self.compressor is not None and len(payload) >= self.compress_min_length:
            packed = self.compressor.compress(payload)
            if len(packed) < len(payload):
                payload, head = packed, self._compressed_head
        if tags is not None:
            head = bytes((head[0] | EXTENSION,))
            payload = tags.pack() + payload
        if self.signer is not None:
            data = b"".join((head, self.signer.sign(head, payload), payload))
        else:
            data = head + payload
        if len(data) > self.max_value_size:
            raise ValueTooLarge(
                f"Encoded value is {len(data)} bytes, over MAX_VALUE_SIZE={self.max_value_size}."
            )
        return data

    def decode(self, data: bytes) -> Any:
        """The stored value; raises UndecodableValue for anything forged, foreign or broken.

        A tagged value is refused here: it is only valid once its tag versions are checked,
        which :meth:`decode_entry` callers do.
        """
        value, tags = self.decode_entry(data)
        if tags is not None:
            raise UndecodableValue("tagged value read without checking its tags")
        return value

    def decode_entry(self, data: bytes, *, verified: bool = False) -> tuple[Any, TagBlock | None]:
        """The stored value and its tag block (None when untagged), authenticated.

        ``verified``: these exact bytes were authenticated before and kept in process memory
        since (the local cache keeps only values that passed), so the signature is not checked
        again; everything else (format, unsigned pickle refused) is.
        """
        if not data:
            raise UndecodableValue("empty value")
        header = data[0]
        if header < MARKER:
            try:
                return int(data), None
            except ValueError:
                raise UndecodableValue("value has no rediskit header") from None
        serializer = self._serializers.get(header >> 4 & 0x07) or self._serializer_for(
            header >> 4 & 0x07
        )
        view = memoryview(data)
        if header & SIGNED:
            payload = view[1 + SIGNATURE_SIZE :]
            if len(data) <= SIGNATURE_SIZE or (
                not verified
                and (
                    self.signer is None
                    or not self.signer.verify(view[1 : 1 + SIGNATURE_SIZE], data[:1], payload)
                )
            ):
                security_logger.warning(
                    "Cache value failed signature verification; treated as a miss."
                )
                raise UndecodableValue("bad signature")
        else:
            if serializer.executes_code:
                security_logger.warning("Unsigned %s cache value refused.", serializer.name)
                raise UndecodableValue("unsigned value of a code-executing format")
            payload = view[1:]
        tags = None
        if header & EXTENSION:
            tags, start = TagBlock.unpack(payload, 0)
            payload = payload[start:]
        compressor_id = header >> 2 & 0x03
        try:
            body = self._decompressor(compressor_id)(payload) if compressor_id else payload
            return serializer.loads(body), tags
        except Exception as exc:
            logger.error("Cache value could not be decoded (%s); treated as a miss.", exc)
            raise UndecodableValue(str(exc)) from exc

    def _serializer_for(self, format_id: int) -> Serializer:
        serializer = self._serializers.get(format_id)
        if serializer is None:
            cls = next(
                (cls for cls in set(SERIALIZERS.values()) if cls.format_id == format_id), None
            )
            if cls is None:
                raise UndecodableValue(f"unknown serializer id {format_id}")
            try:
                serializer = self._serializers[format_id] = cls()
            except ImportError as exc:
                raise UndecodableValue(f"serializer {cls.name} not installed") from exc
        return serializer

    def _decompressor(self, compressor_id: int) -> Callable[[bytes | memoryview], bytes]:
        if self.compressor is not None and self.compressor.compressor_id == compressor_id:
            return self.compressor.decompress
        cls = _COMPRESSORS_BY_ID[compressor_id]
        try:
            return cls().decompress
        except ImportError as exc:
            raise UndecodableValue(f"compressor {cls.name} not installed") from exc
