"""The inspector on a real private Redis Cluster (3 primaries): browse, long names, bulk delete.

The browse walks every primary from ``backend.topology.primaries()``, and its cursor (node,
that node's SCAN cursor) resumes across requests and nodes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client, override_settings
from redis.cluster import RedisCluster as ClusterClient

from tests import servers
from tests.inspector.conftest import ALL_PERMS, BASE, make_user

ALIAS = "inspect_cluster"
KEYS = 400


@pytest.fixture(scope="module")
def cluster() -> Iterator[servers.RedisCluster]:
    try:
        group = servers.RedisCluster(primaries=3, replicas=0).start()
    except servers.RedisServerUnavailable as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(str(exc))
        pytest.skip(str(exc))
    yield group
    group.close()


@pytest.fixture
def seeded(cluster: servers.RedisCluster, settings: Any) -> Iterator[ClusterClient]:
    client = ClusterClient(host="127.0.0.1", port=cluster.nodes[0].port)
    for node in cluster.nodes:
        with node.client() as plain:
            plain.flushall()
    pipe = client.pipeline()
    for i in range(KEYS):
        pipe.set(f"app:k{i}", i)
    pipe.execute()
    for key in (b"other:1", b"other:2", b"appx:1"):
        client.set(key, b"theirs")
    caches = dict(settings.CACHES)
    caches[ALIAS] = {
        "BACKEND": "django_rediskit.cache.RedisCache",
        "LOCATION": cluster.url,
        "KEY_PREFIX": "app",
    }
    inspector = {"READ_ONLY": False, "ALIASES": [ALIAS], "PAGE_SIZE": 40}
    with override_settings(CACHES=caches, REDISKIT={"INSPECTOR": inspector}):
        yield client
    client.close()


@pytest.fixture
def operator(db: None, seeded: ClusterClient) -> Client:
    client = Client()
    client.force_login(make_user("cluster-op", *ALL_PERMS))
    return client


def _browse_all(client: Client, **params: str) -> tuple[list[bytes], list[str], int]:
    """Every key the browse lists, following the cursors; the cursors it handed out."""
    keys: list[bytes] = []
    cursors: list[str] = []
    cursor, pages = "", 0
    while True:
        page = client.get(BASE, {"alias": ALIAS, "cursor": cursor, **params})
        assert page.status_code == 200
        keys.extend(row["meta"].key for row in page.context["rows"])
        pages += 1
        cursor = page.context["page"].next_cursor
        if not cursor:
            return keys, cursors, pages
        cursors.append(cursor)
        assert pages < 100


@pytest.mark.django_db
def test_browse_walks_every_primary_with_a_resumable_cursor(
    operator: Client, seeded: ClusterClient, cluster: servers.RedisCluster
) -> None:
    # Pages of 10 rows (plus at most one SCAN batch) cannot cover a whole primary's ~130 keys,
    # so the page that enters the last primary hands out a cursor naming it. With 40-row pages
    # a page could step into a node and finish it, depending on the servers' hash seeds.
    inspector = {"READ_ONLY": False, "ALIASES": [ALIAS], "PAGE_SIZE": 10}
    with override_settings(REDISKIT={"INSPECTOR": inspector}):
        keys, cursors, pages = _browse_all(operator)
    assert sorted(keys) == sorted(f"app:k{i}".encode() for i in range(KEYS))  # each once
    nodes = {int(cursor.split("-")[0]) for cursor in cursors}
    assert nodes == {0, 1, 2}, cursors  # the cursor reached the last primary
    assert pages >= KEYS // 30, cursors
    first = operator.get(BASE, {"alias": ALIAS})
    assert first.context["dbsize"] == KEYS + 3  # summed over the primaries
    per_node = []
    for port in cluster.primary_ports():
        with cluster.node(port).client() as plain:
            per_node.append(plain.dbsize())
    assert sum(per_node) == KEYS + 3 and all(0 < n < KEYS for n in per_node)


@pytest.mark.django_db
def test_long_name_on_a_cluster_opens_and_deletes(operator: Client, seeded: ClusterClient) -> None:
    key = b"app:{long}:" + b"n" * (1024 * 1024)
    seeded.set(key, b"v")
    keys_and_rows = []
    cursor = ""
    while True:
        page = operator.get(BASE, {"alias": ALIAS, "q": "{long}:*", "cursor": cursor})
        keys_and_rows.extend(page.context["rows"])
        cursor = page.context["page"].next_cursor
        if not cursor:
            break
    (row,) = keys_and_rows
    opened = operator.get(row["url"])
    assert opened.status_code == 200 and opened.context["meta"].key == key
    ref = opened.context["delete_url"].split("k=")[1]
    done = operator.post(BASE + "key/delete/", {"alias": ALIAS, "k": ref, "confirm": "yes"})
    assert done.status_code == 302 and not seeded.exists(key)


@pytest.mark.django_db
def test_bulk_delete_of_the_whole_alias_on_a_cluster(
    operator: Client, seeded: ClusterClient
) -> None:
    url = BASE + "bulk-delete/"
    job = operator.post(url, {"alias": ALIAS, "action": "start", "q": "*"}).context["job"]
    while job["phase"] == "count":
        job = operator.post(url, {"alias": ALIAS, "action": "count"}).context["job"]
    assert job["matched"] == KEYS and job["broad"]
    refused = operator.post(url, {"alias": ALIAS, "action": "delete"})
    assert refused.status_code == 400
    job = operator.post(
        url, {"alias": ALIAS, "action": "delete", "confirm_count": str(KEYS)}
    ).context["job"]
    while job["phase"] == "delete":
        job = operator.post(url, {"alias": ALIAS, "action": "delete"}).context["job"]
    assert job["deleted"] == KEYS
    assert not any(seeded.exists(f"app:k{i}") for i in range(KEYS))
    assert all(seeded.get(key) == b"theirs" for key in (b"other:1", b"other:2", b"appx:1"))


def test_target_scans_the_topology_primaries(
    seeded: ClusterClient, cluster: servers.RedisCluster
) -> None:
    from django_rediskit.inspector import config
    from django_rediskit.inspector.access import Target

    target = Target.for_alias(ALIAS, config.load())
    ports = [node.connection_pool.connection_kwargs["port"] for node in target.nodes]
    assert sorted(ports) == sorted(cluster.primary_ports())
    assert target.base == b"app:" and target.scope == "prefix"
