"""Value header, signing, serializers and compression, through the backend and a real Redis."""

from __future__ import annotations

import logging
import os
import pickle
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings
from hypothesis import given, settings
from hypothesis import strategies as st

from django_rediskit.cache.codec import (
    MARKER,
    SHA256_FROM,
    Codec,
    JSONSerializer,
    PickleSerializer,
    Signer,
    UndecodableValue,
    ValueTooLarge,
    ZlibCompressor,
)
from tests.helpers import MakeCache


class _FileCreator:
    """Unpickling this creates a file: what an attacker with Redis write access would plant."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> Any:
        return (Path.touch, (Path(self.path),))


def test_forged_pickle_is_a_miss_never_unpickled(
    make_cache: MakeCache, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = make_cache()
    target = tmp_path / "pwned"
    payload = pickle.dumps(_FileCreator(str(target)))
    raw = cache.client.get_client()
    full = cache.make_key("victim")
    # Every way an attacker might dress it up: bare (django-redis style), with our header but no
    # signature, and with our "signed" header and a made-up signature.
    attempts = [
        payload,
        bytes((MARKER | PickleSerializer.format_id << 4,)) + payload,
        bytes((MARKER | PickleSerializer.format_id << 4 | 0x02,)) + b"\x00" * 16 + payload,
    ]
    with caplog.at_level(logging.WARNING, logger="django_rediskit.security"):
        for forged in attempts:
            raw.set(full, forged)
            assert cache.get("victim", "miss") == "miss"
            assert cache.get_many(["victim"]) == {}
    assert not target.exists()
    assert any("signature" in r.message or "refused" in r.message for r in caplog.records)


def test_value_signed_with_another_secret_is_a_miss(make_cache: MakeCache) -> None:
    cache = make_cache()
    cache.set("k", "secret data")
    with override_settings(SECRET_KEY="a-completely-different-key"):
        rotated = make_cache(prefix=cache.key_prefix)
        assert rotated.get("k", "miss") == "miss"


def test_secret_key_fallbacks_keep_old_values_readable(make_cache: MakeCache) -> None:
    with override_settings(SECRET_KEY="old-key-1234567890"):
        old = make_cache()
        old.set("k", {"kept": True})
    with override_settings(
        SECRET_KEY="new-key-0987654321", SECRET_KEY_FALLBACKS=["old-key-1234567890"]
    ):
        new = make_cache(prefix=old.key_prefix)
        assert new.get("k") == {"kept": True}
        new.set("k2", 2)
    with override_settings(SECRET_KEY="new-key-0987654321"):
        assert make_cache(prefix=old.key_prefix).get("k", "gone") == "gone"


@pytest.mark.parametrize("serializer", ["json", "msgpack"])
def test_json_and_msgpack_round_trip_their_types(make_cache: MakeCache, serializer: str) -> None:
    cache = make_cache(OPTIONS={"SERIALIZER": serializer})
    value = {"s": "ü", "i": 1, "f": 1.5, "b": True, "n": None, "l": [1, "2", [3]], "d": {"x": {}}}
    cache.set("k", value)
    assert cache.get("k") == value
    assert cache.incr("counter", ignore_key_check=True) == 1


def test_json_refuses_what_it_cannot_represent_and_writes_nothing(make_cache: MakeCache) -> None:
    cache = make_cache(OPTIONS={"SERIALIZER": "json"})
    with pytest.raises(TypeError):
        cache.set("k", {1, 2})
    assert not cache.has_key("k")


def test_unsigned_json_is_allowed_but_unsigned_pickle_is_refused(make_cache: MakeCache) -> None:
    cache = make_cache(OPTIONS={"SERIALIZER": "json", "SIGN_VALUES": False})
    cache.set("k", [1])
    assert cache.client.get_client().get(cache.make_key("k")) == bytes((MARKER | 2 << 4,)) + b"[1]"
    assert cache.get("k") == [1]
    with pytest.raises(ImproperlyConfigured, match="signed"):
        make_cache(OPTIONS={"SIGN_VALUES": False}).get("x")


def test_changing_serializer_keeps_old_values_readable(make_cache: MakeCache) -> None:
    pickled = make_cache()
    pickled.set("k", {"a": 1})
    as_json = make_cache(prefix=pickled.key_prefix, OPTIONS={"SERIALIZER": "json"})
    assert as_json.get("k") == {"a": 1}


@pytest.mark.parametrize("compressor", ["zlib", "zstd", "lz4"])
def test_compression_threshold_and_round_trip(make_cache: MakeCache, compressor: str) -> None:
    cache = make_cache(
        OPTIONS={"COMPRESSOR": compressor, "COMPRESS_MIN_LENGTH": 100, "COMPRESS_LEVEL": 3}
    )
    raw = cache.client.get_client()
    big = "abc" * 1000
    cache.set("big", big)
    cache.set("small", "abc")
    stored_big = raw.get(cache.make_key("big"))
    assert len(stored_big) < 200
    assert stored_big[0] >> 2 & 0x03 != 0  # compressor bits set
    assert raw.get(cache.make_key("small"))[0] >> 2 & 0x03 == 0
    assert cache.get("big") == big
    assert cache.get("small") == "abc"
    # Switching compressor off leaves compressed values readable (the header says how).
    assert make_cache(prefix=cache.key_prefix).get("big") == big


def test_max_value_size_refuses_and_writes_nothing(make_cache: MakeCache) -> None:
    cache = make_cache(OPTIONS={"MAX_VALUE_SIZE": 1000})
    cache.set("k", "small")
    with pytest.raises(ValueTooLarge):
        cache.set("k", os.urandom(2000))
    assert cache.get("k") == "small"
    with pytest.raises(ValueTooLarge):
        cache.set_many({"a": 1, "b": "x" * 5000})
    assert cache.get_many(["a", "b"]) == {}


def test_bad_options_are_configuration_errors(make_cache: MakeCache) -> None:
    for options, message in [
        ({"SERIALIZER": "yaml"}, "cannot be imported"),
        ({"SERIALIZER": "json.JSONDecoder"}, "Serializer subclass"),
        ({"COMPRESSOR": "brotli"}, "Unknown COMPRESSOR"),
        ({"CLIENT_CLASS": "django_redis.client.DefaultClient"}, "CLIENT_CLASS"),
    ]:
        with pytest.raises(ImproperlyConfigured, match=message):
            make_cache(OPTIONS=options).get("x")


def test_empty_secret_key_is_refused() -> None:
    with pytest.raises(ImproperlyConfigured, match="SECRET_KEY"):
        Signer([""], "salt")


def test_truncated_and_foreign_bytes_are_misses() -> None:
    codec = Codec(PickleSerializer(), Signer(["k"], "s"))
    for data in (b"", b"\x92", b"\x92" + b"\x00" * 5, b"not a number", b"\xf2garbage", b"\x81x"):
        with pytest.raises(UndecodableValue):
            codec.decode(data)


values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=5), children, max_size=5)
    ),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(values)
def test_codec_round_trips_any_json_value(value: Any) -> None:
    for codec in (
        Codec(PickleSerializer(), Signer(["k"], "s"), ZlibCompressor(), compress_min_length=10),
        Codec(JSONSerializer(), None),
    ):
        encoded = codec.encode(value)
        decoded = codec.decode(str(encoded).encode() if isinstance(encoded, int) else encoded)
        assert decoded == value


@pytest.mark.parametrize("size", [10, SHA256_FROM - 20, SHA256_FROM, 50_000])
def test_signatures_on_both_sides_of_the_algorithm_switch(make_cache: MakeCache, size: int) -> None:
    value = "v" * size
    with override_settings(SECRET_KEY="old-key-1234567890"):
        old = make_cache()
        old.set("k", value)
    with override_settings(
        SECRET_KEY="new-key-0987654321", SECRET_KEY_FALLBACKS=["old-key-1234567890"]
    ):
        rotated = make_cache(prefix=old.key_prefix)
        assert rotated.get("k") == value
        raw = rotated.client.get_client()
        stored = bytearray(raw.get(rotated.make_key("k")))
        stored[-1] ^= 0x01  # one flipped bit in the payload
        raw.set(rotated.make_key("k"), bytes(stored))
        assert rotated.get("k", "miss") == "miss"
