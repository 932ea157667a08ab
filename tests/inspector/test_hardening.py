"""Issue 14: control bytes shown escaped, long names reachable, scope, the bulk-delete guard.

Every test runs the admin views through the Django test client against a private redis-server.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import pytest
import redis
from django.contrib.admin.models import LogEntry
from django.contrib.messages import get_messages
from django.core.exceptions import ImproperlyConfigured
from django.test import Client, override_settings

from django_rediskit.inspector import config
from django_rediskit.inspector.access import key_ref
from tests.inspector.conftest import ALIAS, BASE

#: The defaults except READ_ONLY: SCOPE is "prefix" (KEY_PREFIX "app" in conftest).
WRITABLE = {"INSPECTOR": {"READ_ONLY": False, "ALIASES": [ALIAS]}}


@pytest.fixture(autouse=True)
def _default_scope(inspect_settings: Any) -> Any:
    with override_settings(REDISKIT=WRITABLE):
        yield


CONTROL_KEYS = {
    b"app:a\x00b": "app:a\\x00b",
    b"app:a\rb": "app:a\\rb",
    b"app:a\nb": "app:a\\nb",
    b"app:\x1b[31mred": "app:\\x1b[31mred",
    b"app:a\\x00b": "app:a\\\\x00b",  # a real backslash: must not look like the NUL above
    b"app:\xffz": "app:\\xffz",
    "app:\u202eevil".encode(): "app:\\u202eevil",
}


def _ref(key: bytes) -> str:
    return base64.urlsafe_b64encode(key).rstrip(b"=").decode()


def _title(response: Any) -> str:
    match = re.search(rb"<title>(.*?)</title>", response.content, re.S)
    assert match is not None
    return match.group(1).decode()


# --- 1. escaping ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_control_bytes_in_names_are_escaped_in_the_list(
    admin_client: Client, raw: redis.Redis
) -> None:
    for key in CONTROL_KEYS:
        raw.set(key, "v")
    page = admin_client.get(BASE, {"alias": ALIAS})
    assert page.status_code == 200
    names = sorted(row["name"] for row in page.context["rows"])
    assert names == sorted(CONTROL_KEYS.values())
    assert len(set(names)) == len(CONTROL_KEYS)  # injective: no two keys read the same
    for raw_byte in (b"\x00", b"\r", b"\x1b", "\u202e".encode()):
        assert raw_byte not in page.content
    for shown in CONTROL_KEYS.values():
        assert shown.encode() in page.content


@pytest.mark.django_db
def test_control_bytes_are_escaped_on_the_key_page_title_message_and_log(
    admin_client: Client, raw: redis.Redis
) -> None:
    key = b"app:bell\x07<b>\r\n\x00"
    shown = "app:bell\\x07<b>\\r\\n\\x00"
    raw.set(key, b"line one\nNUL\x00 ESC\x1b CR\r <i>")
    page = admin_client.get(BASE + "key/", {"alias": ALIAS, "k": _ref(key)})
    assert page.status_code == 200
    assert page.context["name"] == shown
    assert _title(page).startswith("Key app:bell\\x07&lt;b&gt;\\r\\n\\x00")  # HTML-escaped too
    assert b"<b>" not in page.content and b"<i>" not in page.content
    for raw_byte in (b"\x00", b"\x07", b"\x1b", b"\r"):
        assert raw_byte not in page.content
    assert page.context["decoded"] == "line one\nNUL\\x00 ESC\\x1b CR\\r <i>"
    done = admin_client.post(
        BASE + "key/delete/", {"alias": ALIAS, "k": _ref(key), "confirm": "yes"}
    )
    assert done.status_code == 302 and not raw.exists(key)
    flashed = [str(message) for message in get_messages(done.wsgi_request)]
    assert flashed == [f"Delete: {shown} (1 key removed)."]
    entry = LogEntry.objects.get()
    assert entry.object_repr == shown
    details = json.loads(entry.change_message)[0]["rediskit"]
    assert details["key"] == shown and details["bytes"] == len(key)


@pytest.mark.django_db
def test_hash_fields_and_members_are_escaped(admin_client: Client, raw: redis.Redis) -> None:
    raw.hset("app:h", b"f\x00ield", b"v\x1balue")
    page = admin_client.get(BASE + "key/", {"alias": ALIAS, "k": _ref(b"app:h")})
    assert page.context["items"] == [{"label": "f\\x00ield", "value": "v\\x1balue", "score": None}]
    assert b"\x00" not in page.content and b"\x1b" not in page.content


@pytest.mark.django_db
def test_json_values_show_invisible_characters_as_escapes(
    admin_client: Client, raw: redis.Redis
) -> None:
    raw.set("app:j", json.dumps({"name": "admin\u202e\u200b"}, ensure_ascii=False))
    page = admin_client.get(BASE + "key/", {"alias": ALIAS, "k": _ref(b"app:j")})
    assert page.context["decoded_as"] == "json"
    assert "\u202e" not in page.context["decoded"] and "\\u202e\\u200b" in page.context["decoded"]
    assert json.loads(page.context["decoded"]) == {"name": "admin\u202e\u200b"}  # same JSON


# --- 2. long names -------------------------------------------------------------------------------


def _listed(client: Client, raw_key: bytes, **params: str) -> dict[str, Any]:
    """The browse row of ``raw_key`` (scanning on until it shows up)."""
    cursor = ""
    for _ in range(50):
        page = client.get(BASE, {"alias": ALIAS, "cursor": cursor, **params})
        assert page.status_code == 200
        for row in page.context["rows"]:
            if row["meta"].key == raw_key:
                return dict(row)
        cursor = page.context["page"].next_cursor
        if not cursor:
            break
    raise AssertionError("key not listed")


@pytest.mark.django_db
@pytest.mark.parametrize("size", [7_000, 100_000, 1024 * 1024])
def test_a_long_name_is_listed_short_and_can_be_opened_and_deleted(
    admin_client: Client, raw: redis.Redis, size: int
) -> None:
    key = b"app:long:" + b"\x00x" * ((size - 9) // 2)
    raw.set(key, "the-long-value")
    raw.execute_command("DEBUG", "POPULATE", 3000, "app:filler")
    row = _listed(admin_client, key, q="long:*")
    assert row["name"].endswith(f"… ({len(key):,} bytes, sha256 {_sha(key)[:12]})")
    assert len(row["name"]) < 300
    assert len(row["url"]) < 600  # a link, not the name
    page = admin_client.get(row["url"])
    assert page.status_code == 200 and page.context["meta"].key == key
    assert b"the-long-value" in page.content
    assert len(page.content) < 400_000  # the full name is shown cut at 64 KiB
    assert page.context["short"] == row["name"]
    assert _title(page).startswith("Key app:long:\\x00x")
    delete_url = page.context["delete_url"]
    confirm = admin_client.get(delete_url)
    assert confirm.status_code == 200 and raw.exists(key)
    ref = confirm.context["ref"]
    done = admin_client.post(BASE + "key/delete/", {"alias": ALIAS, "k": ref, "confirm": "yes"})
    assert done.status_code == 302 and not raw.exists(key)
    assert raw.dbsize() == 3001  # only that key went (the fillers and the server's marker stay)
    entry = LogEntry.objects.get()
    assert entry.is_deletion() and json.loads(entry.change_message)[0]["rediskit"]["bytes"] == len(
        key
    )
    gone = admin_client.get(row["url"])
    assert gone.status_code == 404 and b"Traceback" not in gone.content


def _sha(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


@pytest.mark.django_db
def test_long_name_ttl_and_value_pages_keep_the_reference(
    admin_client: Client, raw: redis.Redis
) -> None:
    key = b"app:lh:" + b"y" * 5000
    raw.hset(key, mapping={f"f{i}": i for i in range(300)})
    row = _listed(admin_client, key)
    page = admin_client.get(row["url"])
    assert page.status_code == 200
    following = admin_client.get(page.context["next_value_url"])
    assert following.status_code == 200 and following.context["meta"].key == key
    ref = page.context["delete_url"].split("k=")[1]
    assert ref.startswith("~")
    done = admin_client.post(BASE + "key/ttl/", {"alias": ALIAS, "k": ref, "seconds": "90"})
    assert done.status_code == 302 and 0 < raw.ttl(key) <= 90


@pytest.mark.django_db
def test_forged_long_references_are_refused(admin_client: Client, raw: redis.Redis) -> None:
    key = b"app:forge:" + b"z" * 3000
    raw.set(key, "v")
    row = _listed(admin_client, key)
    good = row["url"].split("k=")[1]
    node, position, size, digest, head = good[1:].split(".")
    other = "0" * 64
    for bad in (
        f"~9.{position}.{size}.{digest}.{head}",  # no such node
        f"~{node}.{position}.{size}.{digest[:10]}.{head}",  # not a digest
        "~1.2",
        "~" + "9" * 30,
    ):
        response = admin_client.get(BASE + "key/", {"alias": ALIAS, "k": bad})
        assert response.status_code == 400, bad
    wrong = admin_client.post(
        BASE + "key/delete/",
        {"alias": ALIAS, "k": f"~{node}.{position}.{size}.{other}.{head}", "confirm": "yes"},
    )
    assert wrong.status_code == 404 and raw.exists(key)  # a wrong digest names no key
    assert not LogEntry.objects.exists()


# --- 3. scope and read-only ----------------------------------------------------------------------

#: Keys of "another application" on the same database; some look like the prefix but are not
#: under ``app:``.
OUTSIDE = [b"other:1", b"other:{x}", b"appx:1", b"ap:1", b"app", b":app:1", b"APP:1"]
OUTSIDE_LONG = b"other:long:" + b"q" * 5000


def _plant_outside(raw: redis.Redis) -> None:
    for key in [*OUTSIDE, OUTSIDE_LONG]:
        raw.set(key, b"theirs")


def _assert_outside_untouched(raw: redis.Redis) -> None:
    for key in [*OUTSIDE, OUTSIDE_LONG]:
        assert raw.get(key) == b"theirs", key
        assert raw.ttl(key) == -1, key


@pytest.mark.django_db
def test_default_view_lists_only_the_alias_prefix_and_says_so(
    admin_client: Client, raw: redis.Redis
) -> None:
    _plant_outside(raw)
    raw.set("app:mine", "v")
    for params in ({}, {"ns": ""}, {"q": "*"}, {"q": "other:*"}, {"q": "*other*"}):
        page = admin_client.get(BASE, {"alias": ALIAS, **params})
        assert page.status_code == 200, params
        listed = [row["meta"].key for row in page.context["rows"]]
        assert all(key.startswith(b"app:") for key in listed), (params, listed)
        assert b'id="rk-scope"' in page.content and b"keys of this alias, app:*" in page.content
    assert [r["meta"].key for r in admin_client.get(BASE, {"alias": ALIAS}).context["rows"]] == [
        b"app:mine"
    ]
    assert "" not in [value for value, _ in page.context["presets"]]  # no "whole database"


@pytest.mark.django_db
def test_no_key_action_reaches_outside_the_prefix(admin_client: Client, raw: redis.Redis) -> None:
    _plant_outside(raw)
    refs = [_ref(key) for key in OUTSIDE]
    refs.append(key_ref(OUTSIDE_LONG, (0, 0)))  # a long-name reference built by hand
    for ref in refs:
        params = {"alias": ALIAS, "k": ref}
        assert admin_client.get(BASE + "key/", params).status_code == 403
        assert admin_client.get(BASE + "key/delete/", params).status_code == 403
        for path, data in (
            ("key/delete/", {"confirm": "yes"}),
            ("key/ttl/", {"seconds": "5"}),
            ("key/ttl/", {"persist": "1"}),
        ):
            response = admin_client.post(BASE + path, {**params, **data})
            assert response.status_code == 403, (ref[:20], path)
    stats = admin_client.get(BASE + "stats/", {"alias": ALIAS, "sample": "1"})
    assert stats.status_code == 200 and b"other:" not in stats.content
    _assert_outside_untouched(raw)
    assert not LogEntry.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("debug", [False, True])
def test_default_settings_allow_no_change_at_all(
    admin_client: Client, raw: redis.Redis, debug: bool
) -> None:
    raw.set("app:mine", "v")
    params = {"alias": ALIAS, "k": _ref(b"app:mine")}
    with override_settings(REDISKIT={"INSPECTOR": {"ALIASES": [ALIAS]}}, DEBUG=debug):
        for path, data in (
            ("key/delete/", {"confirm": "yes"}),
            ("key/ttl/", {"seconds": "5"}),
            ("bulk-delete/", {"action": "start", "q": "mine"}),
        ):
            assert admin_client.post(BASE + path, {**params, **data}).status_code == 403
        listing = admin_client.get(BASE, {"alias": ALIAS})
    assert b"<strong>read-only</strong>" in listing.content
    assert b"Bulk delete by pattern" not in listing.content
    assert raw.get("app:mine") == b"v" and raw.ttl("app:mine") == -1


@pytest.mark.django_db
def test_database_scope_widens_browse_and_writes(admin_client: Client, raw: redis.Redis) -> None:
    _plant_outside(raw)
    inspector = {"READ_ONLY": False, "SCOPE": "database", "ALIASES": [ALIAS]}
    with override_settings(REDISKIT={"INSPECTOR": inspector}):
        page = admin_client.get(BASE, {"alias": ALIAS, "q": "other:*"})
        assert {row["meta"].key for row in page.context["rows"]} == {
            b"other:1",
            b"other:{x}",
            OUTSIDE_LONG,
        }
        assert b"every key of the database" in page.content
        done = admin_client.post(
            BASE + "key/delete/", {"alias": ALIAS, "k": _ref(b"other:1"), "confirm": "yes"}
        )
    assert done.status_code == 302 and not raw.exists("other:1")


@pytest.mark.parametrize(
    ("setting", "value"),
    [("READ_ONLY", None), ("READ_ONLY", "no"), ("READ_ONLY", 0), ("SCOPE", "all")],
)
def test_bad_read_only_and_scope_settings_are_refused(setting: str, value: Any) -> None:
    with (
        override_settings(REDISKIT={"INSPECTOR": {setting: value}}),
        pytest.raises(ImproperlyConfigured, match=setting),
    ):
        config.load()


def test_scope_and_read_only_defaults() -> None:
    with override_settings(REDISKIT={}, DEBUG=True):
        loaded = config.load()
    assert loaded.read_only is True and loaded.scope == "prefix"


# --- 4. bulk delete guard ------------------------------------------------------------------------

BULK = BASE + "bulk-delete/"
IN_SCOPE = 700


def _plant_for_bulk(raw: redis.Redis) -> None:
    _plant_outside(raw)
    raw.execute_command("DEBUG", "POPULATE", IN_SCOPE, "app:pop")


def _counted(client: Client, **start: str) -> dict[str, Any]:
    response = client.post(BULK, {"alias": ALIAS, "action": "start", **start})
    assert response.status_code == 200, start
    job = dict(response.context["job"])
    for _ in range(100):
        if job["phase"] != "count":
            break
        job = dict(client.post(BULK, {"alias": ALIAS, "action": "count"}).context["job"])
    assert job["phase"] == "counted"
    return job


def _delete_all(client: Client, **confirm: str) -> dict[str, Any]:
    response = client.post(BULK, {"alias": ALIAS, "action": "delete", **confirm})
    assert response.status_code == 200
    job = dict(response.context["job"])
    for _ in range(100):
        if job["phase"] != "delete":
            break
        job = dict(client.post(BULK, {"alias": ALIAS, "action": "delete"}).context["job"])
    assert job["phase"] == "done"
    return job


ALL_WILDCARD = [
    {"q": "**"},
    {"q": "*?*"},
    {"q": "[^]*"},
    {"q": "?*"},
    {"ns": "alias", "q": "*"},  # the alias's own "<prefix>:*"
    {"ns": "alias", "q": "**?**"},
]


@pytest.mark.django_db
@pytest.mark.parametrize("start", ALL_WILDCARD, ids=lambda start: start["q"])
def test_all_wildcard_patterns_need_the_count_typed_back(
    admin_client: Client, raw: redis.Redis, start: dict[str, str]
) -> None:
    _plant_for_bulk(raw)
    before = raw.dbsize()
    job = _counted(admin_client, **start)
    assert job["matched"] == IN_SCOPE and job["broad"] == "this alias (app:*)"
    for typed in (
        {},
        {"confirm_count": ""},
        {"confirm_count": str(IN_SCOPE + 1)},
        {"confirm_count": "all"},
    ):
        refused = admin_client.post(BULK, {"alias": ALIAS, "action": "delete", **typed})
        assert refused.status_code == 400, typed
        assert b"type the number of keys counted (700)" in refused.content
        assert refused.context["job"]["phase"] == "counted"
    assert raw.dbsize() == before and not LogEntry.objects.exists()
    job = _delete_all(admin_client, confirm_count=f"{IN_SCOPE:,}")  # "700"; "1,000" would do too
    assert job["deleted"] == IN_SCOPE
    assert raw.dbsize() == before - IN_SCOPE  # only the alias's keys went
    _assert_outside_untouched(raw)
    assert raw.exists("__rediskit_test_server__")
    entry = LogEntry.objects.first()
    assert entry is not None
    assert json.loads(entry.change_message)[0]["rediskit"]["confirmed_count"] == IN_SCOPE


@pytest.mark.django_db
def test_a_narrow_pattern_deletes_without_typing_and_only_in_scope(
    admin_client: Client, raw: redis.Redis
) -> None:
    _plant_for_bulk(raw)
    raw.set("app:keep:1", "v")
    job = _counted(admin_client, q="pop:*")
    assert job["matched"] == IN_SCOPE and job["broad"] == ""
    page = admin_client.post(BULK, {"alias": ALIAS, "action": "start", "q": "pop:*"})
    assert b"rk-confirm-count" not in page.content
    _counted(admin_client, q="pop:*")
    assert _delete_all(admin_client)["deleted"] == IN_SCOPE
    assert raw.get("app:keep:1") == b"v"
    _assert_outside_untouched(raw)


ESCAPES = ["*", "**", "?*", "[^]*", "*other*", "../*", "\\", "[", "]*", "\\*", "*\\"]


@pytest.mark.django_db
def test_no_bulk_pattern_deletes_outside_the_prefix(admin_client: Client, raw: redis.Redis) -> None:
    """Every pattern, namespace and literal flag, confirmed with the right count: the keys of
    the other application are all still there."""
    _plant_outside(raw)
    victims = 0
    for ns in ("", "alias", "cache", "sessions"):
        for literal in ("", "1"):
            for query in ESCAPES:
                raw.set("app:victim", "v")
                start = {"ns": ns, "q": query, "literal": literal}
                job = _counted(admin_client, **start)
                if job["matched"]:
                    _delete_all(admin_client, confirm_count=str(job["matched"]))
                _assert_outside_untouched(raw)
                victims += not raw.exists("app:victim")
    assert victims == 8  # *, **, ?*, [^]* under "" and "alias": the scope guards, not refusal


@pytest.mark.django_db
def test_database_scope_still_needs_the_count_for_everything(
    admin_client: Client, raw: redis.Redis
) -> None:
    _plant_for_bulk(raw)
    inspector = {"READ_ONLY": False, "SCOPE": "database", "ALIASES": [ALIAS]}
    with override_settings(REDISKIT={"INSPECTOR": inspector}):
        job = _counted(admin_client, q="?*")
        assert job["broad"] == "the database" and job["matched"] == raw.dbsize()
        wrong = admin_client.post(BULK, {"alias": ALIAS, "action": "delete", "confirm_count": "1"})
        assert wrong.status_code == 400
        job = _counted(admin_client, q="other:*")
        assert job["broad"] == "" and job["matched"] == 3
        _delete_all(admin_client)
    assert not raw.exists("other:1") and raw.exists("appx:1")
    assert raw.dbsize() == IN_SCOPE + 1 + 5  # the alias, the marker, the other look-alikes


@pytest.mark.django_db
def test_bulk_delete_with_redis_down_is_a_503(
    admin_client: Client, raw: redis.Redis, server: Any
) -> None:
    _plant_for_bulk(raw)
    admin_client.post(BULK, {"alias": ALIAS, "action": "start", "q": "pop:*"})
    server.stop()
    response = admin_client.post(BULK, {"alias": ALIAS, "action": "count"})
    assert response.status_code == 503 and b"Redis is unavailable" in response.content
    assert not LogEntry.objects.exists()


def test_bulk_step_refuses_everything_unless_confirmed(raw: redis.Redis) -> None:
    from django_rediskit.inspector.bulk import bulk_step

    raw.set("x", "1")
    for pattern in ("", "*", "**", "?*", "*?*", "[^]*"):
        with pytest.raises(ValueError, match="every key"):
            bulk_step(raw, [raw], pattern, None, dry_run=False)
    assert raw.exists("x")


def test_concurrent_confirmed_bulk_steps_stay_in_scope(server: Any) -> None:
    import threading

    from django_rediskit.inspector.bulk import bulk_step

    clients = [server.client() for _ in range(4)]
    clients[0].execute_command("DEBUG", "POPULATE", 3000, "app:c")
    clients[0].execute_command("DEBUG", "POPULATE", 500, "zz")
    totals: list[int] = []

    def worker(client: redis.Redis) -> None:
        cursor, deleted = None, 0
        while True:
            step = bulk_step(
                client, [client], "*", cursor, dry_run=False, scope=b"app:", confirmed=True
            )
            deleted += step.deleted
            cursor = step.next_cursor
            if cursor is None:
                break
        totals.append(deleted)

    threads = [threading.Thread(target=worker, args=(client,)) for client in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(totals) == 3000 and len(totals) == 4  # each key once, by one of the four
    assert clients[0].dbsize() == 501
    for client in clients:
        client.close()


@pytest.mark.django_db
def test_long_reference_with_redis_down_is_a_503(
    admin_client: Client, raw: redis.Redis, server: Any
) -> None:
    key = b"app:down:" + b"d" * 4000
    raw.set(key, "v")
    row = _listed(admin_client, key)
    server.stop()
    for response in (
        admin_client.get(row["url"]),
        admin_client.post(
            BASE + "key/delete/",
            {"alias": ALIAS, "k": row["url"].split("k=")[1], "confirm": "yes"},
        ),
    ):
        assert response.status_code == 503 and b"Redis is unavailable" in response.content
    assert not LogEntry.objects.exists()
