"""Admin views: permissions, audit log, read-only, CSRF, escaping, redaction, outages, bulk."""

from __future__ import annotations

import base64
import threading
from typing import Any

import pytest
import redis
from django.contrib.admin.models import LogEntry
from django.test import Client, override_settings

from django_rediskit.inspector.bulk import bulk_step
from tests.inspector.conftest import ALIAS, ALL_PERMS, BASE, make_user

XSS = "<script>alert(1)</script>"


def _ref(key: bytes) -> str:
    return base64.urlsafe_b64encode(key).rstrip(b"=").decode()


def _client(*perms: str) -> Client:
    client = Client()
    client.force_login(make_user("u-" + "-".join(perms or ("none",)), *perms))
    return client


# --- permissions ---------------------------------------------------------------------------------

VIEWS: list[tuple[str, str, str, dict[str, str]]] = [
    # (method, path, permission, extra params)
    ("get", "", "view_keys", {}),
    ("get", "key/", "view_keys", {}),
    ("get", "key/delete/", "delete_keys", {}),
    ("post", "key/delete/", "delete_keys", {"confirm": "yes"}),
    ("get", "key/ttl/", "change_keys", {}),
    ("post", "key/ttl/", "change_keys", {"seconds": "100"}),
    ("get", "bulk-delete/", "delete_keys", {}),
    ("post", "bulk-delete/", "delete_keys", {"action": "start", "q": "perm:*"}),
    ("get", "stats/", "view_stats", {}),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("method", "path", "perm", "extra"), VIEWS)
def test_each_view_needs_its_permission(
    inspect_settings: Any,
    raw: redis.Redis,
    method: str,
    path: str,
    perm: str,
    extra: dict[str, str],
) -> None:
    raw.set("perm:key", "v")
    params = {"alias": ALIAS, "k": _ref(b"perm:key"), **extra}
    others = [p for p in ALL_PERMS if p != perm]
    denied = getattr(_client(*others), method)(BASE + path, params)
    assert denied.status_code in (302, 403), (path, denied.status_code)
    assert raw.get("perm:key") == b"v" and raw.ttl("perm:key") == -1
    allowed = getattr(_client(perm), method)(BASE + path, params)
    assert allowed.status_code in (200, 302), (path, allowed.status_code)
    assert LogEntry.objects.count() == (1 if method == "post" and "bulk" not in path else 0)


@pytest.mark.django_db
def test_values_need_view_values(inspect_settings: Any, raw: redis.Redis) -> None:
    raw.set("plainkey", "the-value")
    page = _client("view_keys").get(BASE + "key/", {"alias": ALIAS, "k": _ref(b"plainkey")})
    assert page.status_code == 200 and b"the-value" not in page.content
    page = _client("view_keys", "view_values").get(
        BASE + "key/", {"alias": ALIAS, "k": _ref(b"plainkey")}
    )
    assert b"the-value" in page.content


@pytest.mark.django_db
def test_not_staff_is_sent_to_login(inspect_settings: Any) -> None:
    assert Client().get(BASE, {"alias": ALIAS}).status_code == 302


@pytest.mark.django_db
def test_alias_not_offered_is_refused(admin_client: Client) -> None:
    assert admin_client.get(BASE, {"alias": "other"}).status_code == 400


# --- mutations: LogEntry, read-only, CSRF --------------------------------------------------------


@pytest.mark.django_db
def test_delete_confirms_then_unlinks_and_logs(admin_client: Client, raw: redis.Redis) -> None:
    raw.set("gone", "v")
    params = {"alias": ALIAS, "k": _ref(b"gone")}
    confirm = admin_client.get(BASE + "key/delete/", params)
    assert confirm.status_code == 200 and raw.exists("gone")
    done = admin_client.post(BASE + "key/delete/", {**params, "confirm": "yes"})
    assert done.status_code == 302 and not raw.exists("gone")
    entry = LogEntry.objects.get()
    assert entry.object_repr == "gone" and entry.is_deletion()


@pytest.mark.django_db
def test_ttl_set_and_persist_are_logged(admin_client: Client, raw: redis.Redis) -> None:
    raw.set("t", "v")
    params = {"alias": ALIAS, "k": _ref(b"t")}
    assert admin_client.post(BASE + "key/ttl/", {**params, "seconds": "50"}).status_code == 302
    assert 0 < raw.pttl("t") <= 50_000
    assert admin_client.post(BASE + "key/ttl/", {**params, "persist": "1"}).status_code == 302
    assert raw.ttl("t") == -1
    bad = admin_client.post(BASE + "key/ttl/", {**params, "seconds": "-3"})
    assert bad.status_code == 400 and raw.ttl("t") == -1
    assert LogEntry.objects.filter(action_flag=2).count() == 2


@pytest.mark.django_db
def test_read_only_blocks_every_mutation(admin_client: Client, raw: redis.Redis) -> None:
    raw.set("app:keep", "v")
    params = {"alias": ALIAS, "k": _ref(b"app:keep")}
    with override_settings(REDISKIT={"INSPECTOR": {"READ_ONLY": True, "ALIASES": [ALIAS]}}):
        page = admin_client.get(BASE + "key/", params)
        assert page.status_code == 200 and b"rk-delete" not in page.content
        for path, data in (
            ("key/delete/", {"confirm": "yes"}),
            ("key/ttl/", {"seconds": "5"}),
            ("bulk-delete/", {"action": "start", "q": "keep"}),
        ):
            assert admin_client.post(BASE + path, {**params, **data}).status_code == 403
    assert raw.get("app:keep") == b"v" and raw.ttl("app:keep") == -1
    assert not LogEntry.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("debug", [False, True])
def test_read_only_is_the_default_even_with_debug(
    admin_client: Client, raw: redis.Redis, debug: bool
) -> None:
    raw.set("app:keep", "v")
    with override_settings(REDISKIT={"INSPECTOR": {"ALIASES": [ALIAS]}}, DEBUG=debug):
        response = admin_client.post(
            BASE + "key/delete/", {"alias": ALIAS, "k": _ref(b"app:keep"), "confirm": "yes"}
        )
        page = admin_client.get(BASE + "key/", {"alias": ALIAS, "k": _ref(b"app:keep")})
    assert response.status_code == 403 and raw.exists("app:keep")
    assert b"rk-delete" not in page.content and b"<strong>read-only</strong>" in page.content


@pytest.mark.django_db
def test_post_without_csrf_token_is_refused(inspect_settings: Any, raw: redis.Redis) -> None:
    raw.set("victim", "v")
    client = Client(enforce_csrf_checks=True)
    client.force_login(make_user("csrf", *ALL_PERMS))
    response = client.post(
        BASE + "key/delete/", {"alias": ALIAS, "k": _ref(b"victim"), "confirm": "yes"}
    )
    assert response.status_code == 403 and raw.exists("victim")


# --- escaping and redaction ----------------------------------------------------------------------


@pytest.mark.django_db
def test_key_names_values_and_slowlog_are_escaped(admin_client: Client, raw: redis.Redis) -> None:
    name = f"x:{XSS}".encode()
    raw.set(name, XSS)
    raw.hset(b"h:" + XSS.encode(), XSS, XSS)
    raw.config_set("slowlog-log-slower-than", 0)
    raw.get(name)  # lands in SLOWLOG with the script in its arguments
    raw.config_set("slowlog-log-slower-than", 10_000)
    pages = [
        admin_client.get(BASE, {"alias": ALIAS}),
        admin_client.get(BASE + "key/", {"alias": ALIAS, "k": _ref(name)}),
        admin_client.get(BASE + "key/", {"alias": ALIAS, "k": _ref(b"h:" + XSS.encode())}),
        admin_client.get(BASE + "stats/", {"alias": ALIAS}),
        admin_client.get(BASE + "stats/", {"alias": ALIAS, "sample": "1"}),
    ]
    for page in pages:
        assert page.status_code == 200
        assert XSS.encode() not in page.content
        assert b"&lt;script&gt;alert(1)&lt;/script&gt;" in page.content


@pytest.mark.django_db
def test_session_keys_are_redacted_without_view_sensitive(
    inspect_settings: Any, raw: redis.Redis
) -> None:
    sid = "abcdef0123456789abcdef0123456789"
    raw.set(f"app:s:{sid}", "session-payload")
    raw.set("app:csrf_token", "tok-value")
    viewer = _client("view_keys", "view_values", "view_stats")
    listing = viewer.get(BASE, {"alias": ALIAS, "ns": "sessions"})
    assert sid.encode() not in listing.content and b"app:s:&lt;" in listing.content
    stats = viewer.get(BASE + "stats/", {"alias": ALIAS, "sample": "1"})
    assert sid.encode() not in stats.content and b"tok-value" not in stats.content
    hidden = viewer.get(BASE + "key/", {"alias": ALIAS, "k": _ref(f"app:s:{sid}".encode())})
    assert hidden.status_code == 403
    trusted = _client("view_keys", "view_values", "view_sensitive")
    shown = trusted.get(BASE + "key/", {"alias": ALIAS, "k": _ref(f"app:s:{sid}".encode())})
    assert b"session-payload" in shown.content


@pytest.mark.django_db
def test_namespace_panel_names_the_action(admin_client: Client, raw: redis.Redis) -> None:
    raw.set("app:tv:{news}", b"\x01" * 12)
    page = admin_client.get(BASE + "key/", {"alias": ALIAS, "k": _ref(b"app:tv:{news}")})
    assert b"Invalidate tag" in page.content
    admin_client.post(
        BASE + "key/delete/", {"alias": ALIAS, "k": _ref(b"app:tv:{news}"), "confirm": "yes"}
    )
    assert not raw.exists("app:tv:{news}")
    assert "Invalidate tag" in LogEntry.objects.get().change_message


# --- Redis down ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_redis_down_gives_a_clear_503(admin_client: Client, server: Any) -> None:
    server.stop()
    for path in ("", "key/", "stats/"):
        response = admin_client.get(BASE + path, {"alias": ALIAS, "k": _ref(b"k")})
        assert response.status_code == 503
        assert b"Redis is unavailable" in response.content
        assert b"Traceback" not in response.content
    server.start()
    assert admin_client.get(BASE, {"alias": ALIAS}).status_code == 200


# --- bulk delete ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_bulk_delete_counts_first_then_deletes_in_steps(
    admin_client: Client, raw: redis.Redis
) -> None:
    raw.execute_command("DEBUG", "POPULATE", 1200, "app:bulk")
    raw.set("app:keep", "v")
    url = BASE + "bulk-delete/"
    page = admin_client.post(url, {"alias": ALIAS, "action": "start", "ns": "alias", "q": "bulk:*"})
    job = page.context["job"]
    assert job["phase"] in ("count", "counted") and raw.dbsize() == 1202
    while job["phase"] == "count":
        job = admin_client.post(url, {"alias": ALIAS, "action": "count"}).context["job"]
    assert job["matched"] == 1200
    steps = 0
    job = admin_client.post(url, {"alias": ALIAS, "action": "delete"}).context["job"]
    while job["phase"] == "delete":
        job = admin_client.post(url, {"alias": ALIAS, "action": "delete"}).context["job"]
        steps += 1
    assert job["deleted"] == 1200 and steps >= 2  # batches of <= 500
    assert raw.get("app:keep") == b"v" and raw.dbsize() == 2
    assert LogEntry.objects.count() >= 3
    everything = admin_client.post(url, {"alias": ALIAS, "action": "start", "q": "*"})
    assert everything.context["job"]["broad"] == "the database"  # needs the count typed back


def test_concurrent_bulk_deletes_remove_each_key_once(server: Any) -> None:
    clients = [server.client() for _ in range(4)]
    clients[0].execute_command("DEBUG", "POPULATE", 5000, "c")
    totals: list[int] = []
    errors: list[BaseException] = []

    def worker(client: redis.Redis) -> None:
        try:
            cursor, deleted = None, 0
            while True:
                step = bulk_step(client, [client], "c:*", cursor, dry_run=False)
                deleted += step.deleted
                cursor = step.next_cursor
                if cursor is None:
                    break
            totals.append(deleted)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(client,)) for client in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert sum(totals) == 5000 and clients[0].dbsize() == 1


@pytest.mark.django_db
def test_lost_script_is_reloaded(admin_client: Client, raw: redis.Redis) -> None:
    raw.set("app:x", "1")
    assert admin_client.get(BASE, {"alias": ALIAS}).status_code == 200
    raw.script_flush()  # what a restart or failover does to the script cache
    response = admin_client.get(BASE, {"alias": ALIAS})
    assert response.status_code == 200
    assert b"app:x" in [row["meta"].key for row in response.context["rows"]]


@pytest.mark.django_db
def test_paused_redis_times_out_into_a_503(
    admin_client: Client, server: Any, settings: Any
) -> None:
    settings.CACHES[ALIAS]["OPTIONS"]["SOCKET_TIMEOUT"] = 0.3
    with server.paused(2):
        response = admin_client.get(BASE, {"alias": ALIAS})
    assert response.status_code == 503 and b"Redis is unavailable" in response.content


@pytest.mark.django_db
def test_a_feature_panel_takes_over_the_delete_action(
    admin_client: Client, raw: redis.Redis
) -> None:
    from django_rediskit.inspector import panels

    revoked: list[bytes] = []

    class SessionPanel(panels.Panel):
        def describe(self, space: Any, key: bytes, meta: Any) -> list[tuple[str, str]]:
            return [("Owner", "user 7")]

        def delete(self, space: Any, key: bytes) -> int:
            revoked.append(key)
            return int(space.client.unlink(key))

    generic = panels.panel_for("sessions")
    assert generic is not None
    panels.register_panel(
        SessionPanel("sessions", "Session", sensitive_names=True, delete_label="Revoke it")
    )
    try:
        raw.set("app:s:abc", "x")
        ref = _ref(b"app:s:abc")
        page = admin_client.get(BASE + "key/", {"alias": ALIAS, "k": ref})
        assert b"user 7" in page.content and b"Revoke it" in page.content
        admin_client.post(BASE + "key/delete/", {"alias": ALIAS, "k": ref, "confirm": "yes"})
        assert revoked == [b"app:s:abc"] and not raw.exists("app:s:abc")
    finally:
        panels.register_panel(generic)
