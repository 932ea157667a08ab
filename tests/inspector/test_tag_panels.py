"""Tags in the inspector: the value header's tag block and its validity, the tag version panel."""

from __future__ import annotations

import base64
import os
import pickle
import threading
from pathlib import Path
from typing import Any

import pytest
import redis
from django.contrib.admin.models import LogEntry
from django.core.cache import caches
from django.test import Client, override_settings

from django_rediskit.cache import codec as codecs
from django_rediskit.cache.clients import build_codec
from django_rediskit.inspector import decoders, feature_panels
from django_rediskit.inspector.access import Target
from django_rediskit.inspector.config import load
from django_rediskit.inspector.panels import panel_for
from tests.inspector.conftest import ALIAS, BASE, Recorder, make_user

XSS = "<script>alert(1)</script>"


def _ref(key: bytes) -> str:
    return base64.urlsafe_b64encode(key).rstrip(b"=").decode()


def _stored(key: str) -> bytes:
    raw = caches[ALIAS].client.get_client().get(caches[ALIAS].make_key(key))
    assert isinstance(raw, bytes)
    return raw


class _Boom:
    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.path}",))


# --- the header decoder ---------------------------------------------------------------------------


def test_tag_block_is_parsed_and_checked_like_the_cache(inspect_settings: Any) -> None:
    cache = caches[ALIAS]
    cache.set("tagged", {"v": 1}, tags=["news", "sport"])
    data = _stored("tagged")
    codec = cache.client.codec
    view = decoders.read_header(data, codec)
    assert view.extension and view.tags is not None
    assert view.tags.names == ("news", "sport")
    assert view.body.startswith("    0: \\x80 PROTO") and "SETITEM" in view.body
    client = cache.client.get_client()
    check = decoders.check_tags(client, view.tags, cache.tag_key)
    assert check.current and [t.present for t in check.tags] == [True, True]
    assert cache.get("tagged") == {"v": 1}  # the cache agrees: served

    cache.invalidate_tags("news")
    check = decoders.check_tags(client, view.tags, cache.tag_key)
    assert not check.current and [t.present for t in check.tags] == [False, True]
    assert "1 tag(s) invalidated" in check.summary
    assert cache.get("tagged") is None

    cache.tag_versions("news")  # a new random version: the old entry must stay stale
    check = decoders.check_tags(client, view.tags, cache.tag_key)
    assert not check.current and all(t.present for t in check.tags)
    assert "re-created" in check.summary


def test_forged_tag_blocks_never_raise_or_unpickle(tmp_path: Path) -> None:
    codec = build_codec({})
    marker = tmp_path / "pwned"
    pickled = pickle.dumps(_Boom(marker), protocol=5)
    head = bytes((codecs.MARKER | 1 << 4 | codecs.SIGNED | codecs.EXTENSION,))
    block = codecs.TagBlock(("a", XSS), b"\x00" * 8).pack()
    # A valid-looking block before a forged pickle, with a bogus signature.
    view = decoders.read_header(head + b"\x00" * 16 + block + pickled, codec)
    assert view.signature_valid is False and view.tags is not None
    assert view.tags.names == ("a", XSS) and "REDUCE" in view.body
    # Truncated blocks, a count larger than the data, a varint that never ends, bad UTF-8.
    for forged in (b"\x01\x02", b"\x00" * 8 + b"\x05\x01a", b"\x00" * 8 + b"\x01" + b"\xff" * 9):
        broken = decoders.read_header(head + b"\x00" * 16 + forged, codec)
        assert broken.tags is None and any("tag block unreadable" in n for n in broken.notes)
    bad_utf8 = decoders.read_header(head + b"\x00" * 16 + b"\x00" * 8 + b"\x01\x01\xff", codec)
    assert bad_utf8.tags is None
    assert not marker.exists()


@pytest.mark.django_db
def test_key_page_lists_tags_with_one_bounded_read(
    admin_client: Client, recorder: Recorder
) -> None:
    cache = caches[ALIAS]
    names = [f"t{i}" for i in range(200)] + [XSS]
    cache.set("many", "value", tags=names)
    cache.invalidate_tags("t7")
    recorder.reset()
    key = cache.make_key("many").encode()
    page = admin_client.get(BASE + "key/", {"alias": ALIAS, "k": _ref(key)})
    assert page.status_code == 200
    check = page.context["tag_check"]
    assert not check.current
    assert [t.name for t in check.tags if not t.present] == ["t7"]
    assert recorder.count("MGET") == 1  # every version in one command
    assert b"&lt;script&gt;alert(1)&lt;/script&gt;" in page.content
    assert XSS.encode() not in page.content
    assert b"INVALIDATED" in page.content


@pytest.mark.django_db
def test_tag_check_on_redis_down_is_a_503(admin_client: Client, server: Any) -> None:
    cache = caches[ALIAS]
    cache.set("t", "v", tags=["x"])
    data = _stored("t")
    view = decoders.read_header(data, cache.client.codec)
    assert view.tags is not None
    server.stop()
    try:
        with pytest.raises(redis.ConnectionError):
            decoders.check_tags(cache.client.get_client(), view.tags, cache.tag_key)
        page = admin_client.get(BASE + "key/", {"alias": ALIAS, "k": _ref(b"app:1:t")})
        assert page.status_code == 503
    finally:
        server.start()


# --- the tag version panel -----------------------------------------------------------------------


@pytest.mark.django_db
def test_tag_panel_shows_the_name_and_invalidates_through_the_cache(
    admin_client: Client, raw: redis.Redis
) -> None:
    cache = caches[ALIAS]
    tag = "shop {eu}* 50%"  # escaped in the key: braces, glob, space, percent
    cache.set("entry", "v", tags=[tag])
    key = cache.tag_key(tag).encode()
    assert b"{eu}" not in key
    page = admin_client.get(BASE + "key/", {"alias": ALIAS, "k": _ref(key)})
    assert ("Tag", tag) in page.context["panel_rows"]
    assert b"Invalidate tag" in page.content
    confirm = admin_client.get(BASE + "key/delete/", {"alias": ALIAS, "k": _ref(key)})
    assert confirm.status_code == 200 and raw.exists(key)  # GET only confirms
    done = admin_client.post(
        BASE + "key/delete/", {"alias": ALIAS, "k": _ref(key), "confirm": "yes"}
    )
    assert done.status_code == 302 and not raw.exists(key)
    assert cache.get("entry") is None
    log = LogEntry.objects.get()
    assert "Invalidate tag" in log.change_message and '"removed": 1' in log.change_message


@pytest.mark.django_db
def test_tag_panel_escapes_names_and_handles_hashed_and_forged_keys(
    admin_client: Client, raw: redis.Redis
) -> None:
    cache = caches[ALIAS]
    cache.tag_versions(XSS)
    xss_key = cache.tag_key(XSS).encode()
    page = admin_client.get(BASE + "key/", {"alias": ALIAS, "k": _ref(xss_key)})
    assert ("Tag", XSS) in page.context["panel_rows"]
    assert XSS.encode() not in page.content
    long_tag = "n" * 300
    cache.set("long", "v", tags=[long_tag])
    hashed = cache.tag_key(long_tag).encode()
    page = admin_client.get(BASE + "key/", {"alias": ALIAS, "k": _ref(hashed)})
    assert any("not recoverable" in text for _, text in page.context["panel_rows"])
    admin_client.post(BASE + "key/delete/", {"alias": ALIAS, "k": _ref(hashed), "confirm": "yes"})
    assert not raw.exists(hashed) and cache.get("long") is None
    target = Target.for_alias(ALIAS, load())
    # A key the cache would never build (raw "%41" decodes to "A", which is not escaped).
    assert feature_panels.tag_name(target, b"app:tv:{%41}") is None
    assert feature_panels.tag_name(target, b"app:tv:{\xff}") is None
    assert feature_panels.tag_name(target, b"other:tv:{a}") is None


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("perms", "allowed"),
    [
        (("view_keys", "view_values", "change_keys", "view_sensitive", "view_stats"), False),
        (("delete_keys",), True),
    ],
)
def test_invalidate_needs_delete_keys(
    inspect_settings: Any, raw: redis.Redis, perms: tuple[str, ...], allowed: bool
) -> None:
    cache = caches[ALIAS]
    cache.tag_versions("perm")
    key = cache.tag_key("perm").encode()
    client = Client()
    client.force_login(make_user("u" + str(len(perms)), *perms))
    params = {"alias": ALIAS, "k": _ref(key), "confirm": "yes"}
    response = client.post(BASE + "key/delete/", params)
    assert response.status_code == (302 if allowed else 403)
    assert raw.exists(key) == (0 if allowed else 1)
    assert LogEntry.objects.exists() is allowed


@pytest.mark.django_db
def test_invalidate_is_blocked_read_only_and_without_csrf(
    inspect_settings: Any, raw: redis.Redis
) -> None:
    cache = caches[ALIAS]
    cache.tag_versions("ro")
    key = cache.tag_key("ro").encode()
    user = make_user("boss2", "view_keys", "delete_keys")
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(user)
    params = {"alias": ALIAS, "k": _ref(key), "confirm": "yes"}
    assert strict.post(BASE + "key/delete/", params).status_code == 403
    with override_settings(REDISKIT={"INSPECTOR": {**inspect_settings, "READ_ONLY": True}}):
        lax = Client()
        lax.force_login(user)
        assert lax.post(BASE + "key/delete/", params).status_code == 403
    assert raw.exists(key) and not LogEntry.objects.exists()


@pytest.mark.django_db
def test_concurrent_invalidations_remove_the_version_once(inspect_settings: Any) -> None:
    cache = caches[ALIAS]
    cache.tag_versions("race")
    key = cache.tag_key("race").encode()
    target = Target.for_alias(ALIAS, load())
    panel = panel_for("tags")
    assert isinstance(panel, feature_panels.TagPanel)
    results: list[int] = []
    barrier = threading.Barrier(4)

    def worker() -> None:
        barrier.wait()
        results.append(panel.delete(target, key))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [0, 0, 0, 1]
