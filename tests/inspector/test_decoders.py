"""Decoders: our value header, safe pickle view (nothing executes), bounded decompression."""

from __future__ import annotations

import base64
import os
import pickle
import zlib
from pathlib import Path
from typing import Any

import pytest
import redis
from django.core.cache import caches
from django.test import Client

from django_rediskit.cache.clients import build_codec
from django_rediskit.inspector import decoders
from tests.inspector.conftest import ALIAS, BASE


class _Boom:
    """Unpickling this runs ``os.system`` (touching a file): the classic forged cache value."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.path}",))


def _ref(key: bytes) -> str:
    return base64.urlsafe_b64encode(key).rstrip(b"=").decode()


@pytest.mark.parametrize("serializer", ["pickle", "json", "msgpack"])
@pytest.mark.parametrize("compressor", [None, "zlib", "zstd", "lz4"])
def test_header_round_trip(serializer: str, compressor: str | None) -> None:
    codec = build_codec(
        {"SERIALIZER": serializer, "COMPRESSOR": compressor, "COMPRESS_MIN_LENGTH": 10}
    )
    value = {"name": "<b>café</b>", "items": ["repeat"] * 200}
    data = codec.encode(value)
    assert isinstance(data, bytes)
    view = decoders.read_header(data, codec)
    assert view.serializer == serializer
    assert view.compressor == compressor
    assert view.signed and view.signature_valid is True
    if serializer == "pickle":
        assert "BINUNICODE" in view.body and "'<b>café</b>'" in view.body
    else:
        assert '"name": "<b>café</b>"' in view.body
    # A foreign signer (another SECRET_KEY) sees the signature as invalid, never "valid".
    other = build_codec({"SERIALIZER": serializer, "SIGNING_SALT": "elsewhere"})
    assert decoders.read_header(data, other).signature_valid is False


def test_forged_pickle_is_disassembled_not_executed(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    forged = pickle.dumps(_Boom(marker), protocol=5)
    # Bare (django-redis style) and inside our header with a bogus signature.
    header = bytes((0x80 | 1 << 4 | 0x02,)) + b"\x00" * 16 + forged
    codec = build_codec({})
    assert decoders.guess(forged) == "pickle"
    used, text, _ = decoders.render(forged, "auto", codec)
    assert used == "pickle" and "system" in text and "REDUCE" in text
    used, text, view = decoders.render(header, "auto", codec)
    assert used == "header" and view is not None and view.signature_valid is False
    assert "REDUCE" in text
    assert not marker.exists()


def test_broken_pickle_shows_partial_disassembly() -> None:
    text = decoders.pickle_disassembly(b"\x80\x05\x95\xff\xff")
    assert "disassembly stopped" in text


def test_compression_bomb_is_cut() -> None:
    bomb = zlib.compress(b"\x00" * (50 * 1024 * 1024))
    data = bytes((0x80 | 2 << 4 | 1 << 2,)) + bomb  # json, zlib, unsigned
    view = decoders.read_header(data, None)
    assert any("cut" in note for note in view.notes)


def test_plain_decoders() -> None:
    assert decoders.guess(b'{"a": 1}') == "json"
    assert decoders.guess(b"hello") == "text"
    assert decoders.guess(b"\xff\xfe\x00") == "hex"
    assert decoders.as_text(b"a\xffb") == "a\\xffb"
    assert "00000000  61 62" in decoders.as_hex(b"ab")
    with pytest.raises(decoders.NotApplicable):
        decoders.as_json(b"{nope")
    with pytest.raises(decoders.NotApplicable):
        decoders.read_header(b"plain text", None)
    assert decoders.read_header(b"42", None).body == "42"


@pytest.mark.django_db
def test_key_page_shows_cache_entry_header(admin_client: Client, raw: redis.Redis) -> None:
    caches[ALIAS].set("entry", {"x": "<i>y</i>"})
    key = caches[ALIAS].make_key("entry").encode()
    page = admin_client.get(BASE + "key/", {"alias": ALIAS, "k": _ref(key)})
    assert page.status_code == 200
    assert page.context["decoded_as"] == "header"
    assert page.context["header"].signature_valid is True
    assert b"&lt;i&gt;y&lt;/i&gt;" in page.content and b"<i>y</i>" not in page.content
    hexed = admin_client.get(BASE + "key/", {"alias": ALIAS, "k": _ref(key), "decoder": "hex"})
    assert hexed.context["decoded_as"] == "hex"
    wrong = admin_client.get(BASE + "key/", {"alias": ALIAS, "k": _ref(key), "decoder": "json"})
    assert wrong.status_code == 200 and wrong.context["decode_error"]
    bogus = admin_client.get(BASE + "key/", {"alias": ALIAS, "k": _ref(key), "decoder": "exec"})
    assert bogus.status_code == 400


@pytest.mark.django_db
def test_forged_pickle_through_the_admin_leaves_no_trace(
    admin_client: Client, raw: redis.Redis, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    raw.set("app:1:forged", pickle.dumps(_Boom(marker), protocol=5))
    page = admin_client.get(BASE + "key/", {"alias": ALIAS, "k": _ref(b"app:1:forged")})
    assert page.status_code == 200 and page.context["decoded_as"] == "pickle"
    assert b"REDUCE" in page.content
    assert not marker.exists()
