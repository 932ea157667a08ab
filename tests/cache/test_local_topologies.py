"""The local cache on a private Redis Cluster (one tracking connection per primary) and behind
Sentinel: invalidation from every node, and failovers that flush it and let it recover on the
new primaries."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator

import pytest
import redis

from django_rediskit.cache.local import NOT_HELD, LocalCache
from django_rediskit.cache.local.tracker import primary_ids
from tests import servers
from tests.cache.localtools import fill, local_cache, not_held, poll, settle

pytestmark = pytest.mark.slow

#: keys whose hash tags land on different primaries of a 3-primary cluster
TAGS = ["a", "b", "c", "d", "e", "f"]


def _started(group: servers.RedisCluster | servers.SentinelGroup) -> None:
    try:
        group.start()
    except servers.RedisServerUnavailable as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(str(exc))
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def cluster() -> Iterator[servers.RedisCluster]:
    """One cluster for this module; the destructive tests run last and leave it serving."""
    group = servers.RedisCluster()
    _started(group)
    yield group
    group.close()


@pytest.fixture
def sentinel() -> Iterator[servers.SentinelGroup]:
    group = servers.SentinelGroup()
    _started(group)
    yield group
    group.close()


def _key(tag: str) -> str:
    return f"p:{{{tag}}}:k"


def _check_every_node_invalidates(cache: LocalCache, data: redis.RedisCluster) -> None:
    for tag in TAGS:
        key = _key(tag)
        data.set(key, b"1")
        settle(cache, data, marker=f"p:{{{tag}}}:settle")  # same slot, same node: in order
        assert fill(cache, data, key), key
        assert cache.get(key) == b"1"
        data.set(key, b"2")
        assert poll(not_held(cache, key)), key


def _cluster_cache(cluster: servers.RedisCluster) -> LocalCache:
    return local_cache(cluster.url, ["p:"])


def test_cluster_one_tracking_connection_per_primary(cluster: servers.RedisCluster) -> None:
    cache = _cluster_cache(cluster)
    try:
        ports = sorted(port for _host, port, _id in cache.tracking_clients())
        assert ports == cluster.primary_ports()
        data = cache.topology.client()
        slots = {data.keyslot(_key(tag)) for tag in TAGS}
        nodes = {data.get_node_from_key(_key(tag)).name for tag in TAGS}
        assert len(slots) == len(TAGS) and len(nodes) == 3  # the keys really span the nodes
        _check_every_node_invalidates(cache, data)  # type: ignore[arg-type]
        time.sleep(0.6)  # three role checks (check_interval 0.2 s) in a steady cluster...
        assert cache.stats.tracking_losses == 0  # ...must not flap
        data.flushall()  # FLUSHALL on every primary: each announces a flush
        assert poll(lambda: cache.entries == 0)
    finally:
        cache.close()


def test_cluster_manual_failover_is_noticed(cluster: servers.RedisCluster) -> None:
    """CLUSTER FAILOVER turns a primary into a replica without necessarily closing our
    connection to it; writes then land on the new primary, which we did not track. The tracker
    must notice (closed connection or the periodic role check) and re-track the new set."""
    cache = _cluster_cache(cluster)
    try:
        data = cache.topology.client()
        _check_every_node_invalidates(cache, data)  # type: ignore[arg-type]
        old = cluster.primary_ports()
        with cluster.node(old[0]).client() as primary:
            replica_id = next(
                line.split()[0]
                for line in primary.execute_command("CLUSTER", "NODES").decode().splitlines()
                if "slave" in line.split()[2]
                and line.split()[3] == primary.execute_command("CLUSTER", "MYID").decode()
            )
        replica = next(
            node
            for node in cluster.live()
            if node.client().execute_command("CLUSTER", "MYID").decode() == replica_id
        )
        with replica.client() as promoted:
            promoted.execute_command("CLUSTER", "FAILOVER")
        assert poll(lambda: replica.port in cluster.primary_ports(), deadline=20)
        cluster.wait_ok()
        assert poll(lambda: cache.stats.tracking_losses >= 1, deadline=10)
        assert cache.wait_live(20)
        assert poll(
            lambda: sorted(p for _h, p, _i in cache.tracking_clients()) == cluster.primary_ports(),
            deadline=20,
        )
        _check_every_node_invalidates(cache, data)  # type: ignore[arg-type]
    finally:
        cache.close()


def test_cluster_primary_killed_flushes_and_recovers_on_the_new_primary(
    cluster: servers.RedisCluster,
) -> None:
    cache = _cluster_cache(cluster)
    try:
        data = cache.topology.client()
        _check_every_node_invalidates(cache, data)  # type: ignore[arg-type]
        for tag in TAGS:
            assert fill(cache, data, _key(tag))
        assert cache.entries == len(TAGS)
        victim = cluster.primary_ports()[0]
        cluster.node(victim).kill()
        assert poll(lambda: cache.stats.tracking_losses >= 1, deadline=5)
        assert cache.entries == 0 and not cache.wants(_key("a"))
        assert cache.get(_key("a")) is NOT_HELD
        cluster.kill_primary(victim)  # returns once the replica took over
        assert cache.wait_live(30)
        assert poll(
            lambda: sorted(p for _h, p, _i in cache.tracking_clients()) == cluster.primary_ports(),
            deadline=30,
        )
        _check_every_node_invalidates(cache, data)  # type: ignore[arg-type]
    finally:
        cache.close()


def test_primary_ids_reads_cluster_nodes() -> None:
    text = (
        "a1 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-5460\n"
        "b2 127.0.0.1:7001@17001 master,fail - 0 0 2 connected 5461-10922\n"
        "c3 127.0.0.1:7002@17002 slave a1 0 0 1 connected\n"
        "d4 127.0.0.1:7003@17003 master - 0 0 3 connected 10923-16383\n"
        "e5 127.0.0.1:7004@17004 master - 0 0 4 connected\n"  # a primary with no slots
    )
    assert primary_ids(text) == {"a1", "d4"}


def test_sentinel_failover_flushes_and_recovers_on_the_new_primary(
    sentinel: servers.SentinelGroup,
) -> None:
    cache = local_cache(sentinel.url, ["p:"])
    try:
        data = cache.topology.client()
        old_port = sentinel.primary_port()
        assert [port for _h, port, _i in cache.tracking_clients()] == [old_port]
        data.set("p:k", b"1")
        settle(cache, data)
        assert fill(cache, data, "p:k")
        time.sleep(0.6)  # three address checks against the sentinels must not flap
        assert cache.stats.tracking_losses == 0 and cache.get("p:k") == b"1"
        new_port = sentinel.kill_primary()
        assert poll(lambda: cache.stats.tracking_losses >= 1, deadline=5)
        assert cache.get("p:k") is NOT_HELD
        assert cache.wait_live(30)
        assert poll(
            lambda: [p for _h, p, _i in cache.tracking_clients()] == [new_port], deadline=30
        )
        with redis.Redis(port=new_port) as promoted:
            promoted.set("p:k", b"2")
            settle(cache, promoted)
            assert fill(cache, promoted, "p:k")
            assert cache.get("p:k") == b"2"
            promoted.set("p:k", b"3")
            assert poll(not_held(cache, "p:k"))
        with contextlib.suppress(redis.RedisError):
            data.close()
    finally:
        cache.close()
