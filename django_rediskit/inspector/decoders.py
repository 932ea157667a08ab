"""Ways to show bytes read from Redis, none of which runs code or trusts the data.

* text: UTF-8 with undecodable bytes shown as ``\\xNN`` escapes;
* hex: an offset / hex / ASCII dump;
* json: pretty-printed if the bytes parse as JSON;
* header: our value header (serializer, compression, signature, tag block), the signature
  checked with the alias's own signer, the tag block read with the codec's own bounds-checked
  ``TagBlock.unpack``, the payload decompressed with a size cap (no zip bombs) and shown as
  JSON / msgpack data, or as a pickle disassembly. ``check_tags`` then says whether each tag is
  still valid, with the cache's own ``tags.is_current`` over one MGET of the version keys;
* pickle: ``pickletools`` disassembly of the opcodes. ``pickle.loads`` is never called here, so
  a forged value written by anyone with Redis access is read, not executed.

Everything returned is plain text; escaping it is the template's job (autoescape is on).
"""

from __future__ import annotations

import io
import json
import pickletools
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from django_rediskit.cache import codec as codecs
from django_rediskit.cache import tags as tagging
from django_rediskit.inspector.display import escape_bytes

if TYPE_CHECKING:
    from redis import Redis

    from django_rediskit.cache.codec import Codec, TagBlock

DECODERS = ("auto", "text", "hex", "json", "header", "pickle")
#: Decoded payloads larger than this are cut off (compression bombs stop here).
MAX_DECODED = 1024 * 1024
MAX_DISASSEMBLY_LINES = 2000
HEX_LIMIT = 16 * 1024


class NotApplicable(ValueError):
    """The chosen decoder cannot read these bytes; the message says why."""


def as_text(data: bytes, limit: int | None = None) -> str:
    """UTF-8 text, undecodable bytes and non-printable characters escaped (LF and TAB kept, so
    a multi-line value stays readable in its ``<pre>``), cut to ``limit`` characters."""
    text = escape_bytes(data, keep_newlines=True)
    if limit is not None and len(text) > limit:
        return text[:limit] + "…"
    return text


def as_hex(data: bytes, limit: int = HEX_LIMIT) -> str:
    lines = []
    for offset in range(0, min(len(data), limit), 16):
        row = data[offset : offset + 16]
        printable = "".join(chr(byte) if 32 <= byte < 127 else "." for byte in row)
        lines.append(f"{offset:08x}  {row.hex(' '):<47}  {printable}")
    if len(data) > limit:
        lines.append(f"… {len(data) - limit} more bytes")
    return "\n".join(lines)


def as_json(data: bytes) -> str:
    try:
        parsed = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise NotApplicable(f"not JSON: {exc}") from None
    return _json_printable(json.dumps(parsed, indent=2, ensure_ascii=False, sort_keys=True))


def _json_printable(text: str) -> str:
    """JSON text with every non-printable character (bidi overrides, zero-width spaces...)
    written as a ``\\uNNNN`` escape: the same JSON, but nothing invisible reaches the page.
    ``json.dumps`` already escapes the ASCII controls; layout newlines stay."""
    if text.isprintable():
        return text
    return "".join(
        char if char.isprintable() or char == "\n" else _json_escape(char) for char in text
    )


def _json_escape(char: str) -> str:
    code = ord(char)
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    code -= 0x10000  # outside the BMP: a UTF-16 surrogate pair, as JSON spells it
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def is_bare_pickle(data: bytes) -> bool:
    """A pickle of protocol 2-5 (as django-redis writes) starts with PROTO 0x80 <2..5>."""
    return len(data) >= 2 and data[0] == 0x80 and 2 <= data[1] <= 5


def pickle_disassembly(data: bytes) -> str:
    """The opcodes of a pickle, as ``pickletools.dis`` prints them; nothing is unpickled."""
    out = io.StringIO()
    try:
        pickletools.dis(data[:MAX_DECODED], out=out)
        error = ""
    except Exception as exc:  # a forged or cut-off pickle: show what was read
        error = f"\n[disassembly stopped: {type(exc).__name__}: {exc}]"
    lines = out.getvalue().splitlines()
    if len(lines) > MAX_DISASSEMBLY_LINES:
        lines = [*lines[:MAX_DISASSEMBLY_LINES], f"… {len(lines) - MAX_DISASSEMBLY_LINES} more"]
    return "\n".join(lines) + error


def _bounded_zlib(data: bytes) -> bytes:
    return zlib.decompressobj().decompress(data, MAX_DECODED)


def _bounded_zstd(data: bytes) -> bytes:
    import pyzstd

    return bytes(pyzstd.ZstdDecompressor().decompress(data, MAX_DECODED))


def _bounded_lz4(data: bytes) -> bytes:
    import lz4.frame

    return bytes(lz4.frame.LZ4FrameDecompressor().decompress(data, max_length=MAX_DECODED))


_DECOMPRESSORS: dict[int, tuple[str, Callable[[bytes], bytes]]] = {
    codecs.ZlibCompressor.compressor_id: ("zlib", _bounded_zlib),
    codecs.ZstdCompressor.compressor_id: ("zstd", _bounded_zstd),
    codecs.Lz4Compressor.compressor_id: ("lz4", _bounded_lz4),
}
_SERIALIZER_NAMES = {cls.format_id: cls.name for cls in set(codecs.SERIALIZERS.values())}


@dataclass(frozen=True)
class TagState:
    """One tag of an entry: ``present`` is whether its version key exists now (a missing key
    means the tag was invalidated or its version expired: the entry is stale)."""

    name: str
    key: str
    present: bool


@dataclass(frozen=True)
class TagCheck:
    """Whether a tagged entry would still be served, judged as the cache judges it."""

    tags: list[TagState]
    current: bool

    @property
    def summary(self) -> str:
        if self.current:
            return "current: every tag version matches, the cache serves this entry"
        missing = [tag.name for tag in self.tags if not tag.present]
        if missing:
            return f"stale: {len(missing)} tag(s) invalidated or expired; a read is a miss"
        return "stale: a tag was invalidated and re-created since the entry was written"


@dataclass
class HeaderView:
    """Our value header, taken apart. ``signature_valid`` is None for an unsigned value;
    ``tags`` is the entry's tag block when the extension bit is set and the block parses."""

    serializer: str
    compressor: str | None
    signed: bool
    signature_valid: bool | None
    extension: bool
    body: str
    notes: list[str] = field(default_factory=list)
    tags: TagBlock | None = None


def read_header(data: bytes, codec: Codec | None) -> HeaderView:
    """Take a value written by our cache backend apart without trusting any of it.

    ``Codec.decode_entry`` cannot be reused whole: it refuses what fails to verify (the
    inspector must still show it) and unpickles what verifies (the inspector never does). The
    pieces it shares with the codec are the codec's own: the bit constants, the signer, the
    serializer registry and ``TagBlock.unpack``.
    """
    if not data:
        raise NotApplicable("empty value")
    header = data[0]
    if header < codecs.MARKER:
        try:
            return HeaderView("int", None, False, None, False, str(int(data)))
        except ValueError:
            raise NotApplicable("no rediskit header (first byte < 0x80)") from None
    format_id = header >> 4 & 0x07
    if format_id == 0:
        raise NotApplicable("no rediskit header (serializer id 0: a bare pickle?)")
    view = HeaderView(
        serializer=_SERIALIZER_NAMES.get(format_id, f"unknown serializer #{format_id}"),
        compressor=None,
        signed=bool(header & codecs.SIGNED),
        signature_valid=None,
        extension=bool(header & codecs.EXTENSION),
        body="",
    )
    payload = data[1:]
    if view.signed:
        signature, payload = data[1 : 1 + codecs.SIGNATURE_SIZE], data[1 + codecs.SIGNATURE_SIZE :]
        if codec is None or codec.signer is None:
            view.signature_valid = False
            view.notes.append("this alias does not sign values, so the signature cannot be checked")
        else:
            view.signature_valid = len(data) > codecs.SIGNATURE_SIZE and codec.signer.verify(
                signature, data[:1], memoryview(payload)
            )
    if view.extension:
        try:
            view.tags, start = codecs.TagBlock.unpack(payload, 0)
        except codecs.UndecodableValue as exc:
            view.notes.append(f"tag block unreadable ({exc}); shown raw")
            view.body = as_hex(payload)
            return view
        payload = payload[start:]
    compressor_id = header >> 2 & 0x03
    if compressor_id:
        name, decompress = _DECOMPRESSORS.get(compressor_id, (f"#{compressor_id}", None))
        view.compressor = name
        if decompress is None:
            view.body = as_hex(payload)
            return view
        try:
            payload = decompress(payload)
        except Exception as exc:
            view.notes.append(f"decompression failed: {exc}")
            view.body = as_hex(payload)
            return view
        if len(payload) >= MAX_DECODED:
            view.notes.append(f"payload cut at {MAX_DECODED} bytes")
    view.body = _payload_body(format_id, payload)
    return view


def check_tags(client: Redis, block: TagBlock, key_for: Callable[[str], str]) -> TagCheck:
    """Read the block's tag versions (one MGET, split per slot on a cluster; the block's count
    byte bounds it to ``MAX_TAGS_PER_VALUE`` keys) and judge them with the cache's own
    ``tags.is_current``. ``key_for`` is the alias's ``RedisCache.tag_key``.
    """
    keys = {name: key_for(name) for name in block.names}
    versions = tagging.mget(client, list(keys.values())) if keys else []
    current = dict(zip(keys, versions, strict=True))
    states = [TagState(name, key, current[name] is not None) for name, key in keys.items()]
    return TagCheck(states, tagging.is_current(block, current))


def _payload_body(format_id: int, payload: bytes) -> str:
    if format_id == codecs.PickleSerializer.format_id:
        return pickle_disassembly(payload)
    if format_id == codecs.JSONSerializer.format_id:
        try:
            return as_json(payload)
        except NotApplicable:
            return as_text(payload)
    if format_id == codecs.MsgPackSerializer.format_id:
        try:
            data = codecs.MsgPackSerializer().loads(payload)  # msgpack never runs code
            return _json_printable(json.dumps(data, indent=2, default=repr, ensure_ascii=False))
        except Exception as exc:
            return f"[msgpack: {exc}]\n" + as_hex(payload)
    return as_hex(payload)


def guess(data: bytes) -> str:
    """The decoder that most likely fits ``data``."""
    if data and data[0] >= codecs.MARKER and (data[0] >> 4 & 0x07) in _SERIALIZER_NAMES:
        return "header"
    if is_bare_pickle(data):
        return "pickle"
    stripped = data.lstrip()
    if stripped[:1] in (b"{", b"[", b'"'):
        try:
            json.loads(data)
            return "json"
        except (ValueError, UnicodeDecodeError):
            pass
    try:
        data.decode("utf-8")
        return "text"
    except UnicodeDecodeError:
        return "hex"


def render(data: bytes, decoder: str, codec: Codec | None) -> tuple[str, str, HeaderView | None]:
    """``(decoder used, text, header)`` for ``data``; ``auto`` picks with ``guess``."""
    chosen = guess(data) if decoder == "auto" else decoder
    if chosen == "text":
        return chosen, as_text(data), None
    if chosen == "hex":
        return chosen, as_hex(data), None
    if chosen == "json":
        return chosen, as_json(data), None
    if chosen == "pickle":
        return chosen, pickle_disassembly(data), None
    if chosen == "header":
        view = read_header(data, codec)
        return chosen, view.body, view
    raise NotApplicable(f"unknown decoder {decoder!r}")
