"""Browse budget and cursor: real redis-server, commands counted by the recording connection."""

from __future__ import annotations

import re
from typing import Any

import pytest
import redis
from django.test import Client

from django_rediskit.inspector.scan import BadCursor, Budget, Cursor, has_glob, scan_page
from tests.inspector.conftest import ALIAS, BASE, Recorder


def _browse(client: Client, **params: str) -> Any:
    return client.get(BASE, {"alias": ALIAS, **params})


@pytest.mark.django_db
def test_first_page_at_100k_keys_is_within_budget(
    admin_client: Client, raw: redis.Redis, recorder: Recorder
) -> None:
    raw.execute_command("DEBUG", "POPULATE", 100_000, "app:pop")
    assert _browse(admin_client).status_code == 200  # connects and loads the script once
    recorder.reset()
    response = _browse(admin_client)
    assert response.status_code == 200
    assert recorder.count("SCAN") <= 20
    # SCANs plus exactly one pipeline (row metadata + DBSIZE), nothing else.
    assert recorder.round_trips == recorder.count("SCAN") + 1
    rows = response.context["rows"]
    assert 50 <= len(rows) <= 100  # a page, not the database
    assert response.context["dbsize"] == 100_001
    assert response.context["page"].next_cursor


@pytest.mark.django_db
def test_sparse_filter_stops_at_call_budget_and_resumes(
    admin_client: Client, raw: redis.Redis, recorder: Recorder
) -> None:
    raw.execute_command("DEBUG", "POPULATE", 100_000, "app:pop")
    raw.set("app:needle:1", "x")
    recorder.reset()
    seen: list[bytes] = []
    cursor = ""
    pages = 0
    while True:
        recorder.reset()
        response = _browse(admin_client, q="app:needle:*", cursor=cursor)
        assert response.status_code == 200
        assert recorder.count("SCAN") <= 20
        assert response.context["page"].stopped in ("calls", "time", "done", "full")
        seen.extend(row["meta"].key for row in response.context["rows"])
        pages += 1
        cursor = response.context["page"].next_cursor
        if not cursor:
            break
        assert pages < 200
    assert seen == [b"app:needle:1"]
    assert pages >= 5  # 100k keys cannot be covered in one budget of 20 x 1000


def test_pages_cover_every_key_exactly_once(raw: redis.Redis) -> None:
    raw.execute_command("DEBUG", "POPULATE", 3000, "k")
    seen: set[bytes] = set()
    cursor = None
    while True:
        page = scan_page([raw], match="k:*", cursor=cursor, budget=Budget(page_size=50))
        assert len(page.keys) <= 50 + 60  # a page overshoots by at most one adaptive COUNT
        seen.update(page.keys)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == {f"k:{i}".encode() for i in range(3000)}


def test_type_filter_and_time_budget(raw: redis.Redis) -> None:
    raw.execute_command("DEBUG", "POPULATE", 2000, "s")
    raw.hset("h:1", "f", "v")
    page = scan_page([raw], type_="hash", budget=Budget(max_calls=20))
    assert page.keys == [b"h:1"] or page.next_cursor  # found, or more to scan
    ticks = iter(range(0, 10_000, 100))  # each clock call advances 100 ms
    page = scan_page(
        [raw], match="nomatch*", budget=Budget(max_ms=150), clock=lambda: next(ticks) / 1000
    )
    assert page.stopped == "time" and page.calls <= 2


def test_exact_name_skips_the_scan(
    admin_client: Client, raw: redis.Redis, recorder: Recorder
) -> None:
    raw.set("app:exact[1]", "v")
    recorder.reset()
    response = _browse(admin_client, q="app:exact[1]", literal="1")
    assert response.status_code == 200
    assert recorder.count("SCAN") == 0
    assert [row["meta"].key for row in response.context["rows"]] == [b"app:exact[1]"]


@pytest.mark.django_db
def test_bad_cursor_and_type_are_400(admin_client: Client) -> None:
    for params in ({"cursor": "zzz"}, {"cursor": "9-0-0"}, {"type": "nope"}, {"ns": "bogus"}):
        response = _browse(admin_client, **params)
        assert response.status_code == 400, params
        assert b"Traceback" not in response.content


def test_cursor_and_glob_helpers() -> None:
    assert Cursor.decode(Cursor(1, 42, 7).encode(), 2) == Cursor(1, 42, 7)
    with pytest.raises(BadCursor):
        Cursor.decode("1-2", 1)
    assert has_glob("a*") and not has_glob(r"a\*") and not has_glob("abc")
    assert re.fullmatch(r"\d+-\d+-\d+", Cursor().encode())


def test_cluster_style_node_list_walks_every_node(server: Any) -> None:
    """Two standalone servers stand in for two primaries: the compound cursor spans both."""
    from tests.servers import RedisServer

    second = RedisServer().start()
    try:
        first_client, second_client = server.client(), second.client()
        first_client.execute_command("DEBUG", "POPULATE", 120, "a")
        second_client.execute_command("DEBUG", "POPULATE", 130, "b")
        seen: set[bytes] = set()
        cursor = None
        while True:
            page = scan_page([first_client, second_client], match="[ab]:*", cursor=cursor)
            seen.update(page.keys)
            cursor = page.next_cursor
            if cursor is None:
                break
        assert len(seen) == 250
    finally:
        second.close()
