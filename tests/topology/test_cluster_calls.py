"""Multi-key calls on Redis Cluster: grouped by slot, one round trip per node, no CROSSSLOT.

Round trips are counted where they happen, at the socket: every ``send_packed_command`` of a
connection is one request (a pipeline of many commands is sent in one), keyed by the node it
went to.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from redis.connection import AbstractConnection

from django_rediskit.cache import RedisCache


@pytest.fixture
def cluster_cache(cluster_url: str) -> Iterator[RedisCache]:
    cache = RedisCache(cluster_url, {"KEY_PREFIX": f"cc-{uuid.uuid4().hex[:8]}"})
    yield cache
    cache.clear()


@pytest.fixture
def sends(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Requests written per node (``host:port``) while the test runs."""
    counter: Counter[str] = Counter()
    original = AbstractConnection.send_packed_command

    def counting(self: Any, command: Any, check_health: bool = True) -> None:
        counter[f"{self.host}:{self.port}"] += 1
        original(self, command, check_health)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", counting)
    return counter


def test_get_many_of_1000_keys_costs_one_round_trip_per_node(
    cluster_cache: RedisCache, sends: Counter[str]
) -> None:
    data = {f"k{i}": i for i in range(1000)}
    cluster_cache.set_many(data)
    nodes = len(cluster_cache.topology.primaries())
    assert nodes >= 3
    cluster_cache.get_many(list(data))  # a node's first read also loads the script (EVAL)
    sends.clear()
    assert cluster_cache.get_many(list(data)) == data
    assert sum(sends.values()) == nodes  # one request per primary, every key found
    assert max(sends.values()) == 1


def test_set_many_and_delete_many_cost_one_round_trip_per_node(
    cluster_cache: RedisCache, sends: Counter[str]
) -> None:
    data = {f"k{i}": str(i) for i in range(500)}
    nodes = len(cluster_cache.topology.primaries())
    cluster_cache.set_many(data)  # connects to every node (handshakes are not the call's cost)
    sends.clear()
    assert cluster_cache.set_many(data) == []
    assert sum(sends.values()) == nodes
    sends.clear()
    cluster_cache.delete_many(list(data))
    assert sum(sends.values()) == nodes
    assert cluster_cache.get_many(list(data)) == {}


def test_declared_tagged_get_many_costs_one_round_trip_per_node(
    cluster_cache: RedisCache, sends: Counter[str]
) -> None:
    tags = [f"tag{i}" for i in range(12)]  # version keys spread over the nodes
    data = {f"t{i}": i for i in range(200)}
    cluster_cache.set_many(data, tags=tags)
    nodes = len(cluster_cache.topology.primaries())
    sends.clear()
    assert cluster_cache.get_many(list(data), tags=tags) == data
    assert sum(sends.values()) <= nodes
    cluster_cache.invalidate_tags("tag3")
    assert cluster_cache.get_many(list(data), tags=tags) == {}


def test_scans_visit_every_primary(cluster_cache: RedisCache) -> None:
    cluster_cache.set_many({f"p{i}": i for i in range(300)})
    per_node = [
        sum(1 for _ in node.scan_iter(match=f"{cluster_cache.key_prefix}:*", count=1000))
        for node in cluster_cache.topology.primaries()
    ]
    assert all(count > 0 for count in per_node)  # the keys really are spread
    assert sorted(cluster_cache.keys("p*")) == sorted(f"p{i}" for i in range(300))
    assert cluster_cache.delete_pattern("p1*") == 111  # p1, p10-p19, p100-p199
    cluster_cache.clear()
    assert cluster_cache.keys("*") == []
