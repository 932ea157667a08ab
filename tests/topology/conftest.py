"""Private clusters and sentinel groups for the topology tests, whatever the suite runs on.

``cluster_url`` is one cluster shared by the non-destructive tests; ``cluster_group`` and
``sentinel_group`` are fresh groups per test, for tests that kill or reshard them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import TypeVar

import pytest

from tests import servers

G = TypeVar("G", servers.RedisCluster, servers.SentinelGroup)


def _started(make: Callable[[], G]) -> G:
    try:
        return make().start()  # type: ignore[return-value]
    except servers.RedisServerUnavailable as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(str(exc))
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def shared_cluster() -> Iterator[servers.RedisCluster]:
    cluster = _started(servers.RedisCluster)
    yield cluster
    cluster.close()


@pytest.fixture
def cluster_url(shared_cluster: servers.RedisCluster) -> str:
    return shared_cluster.url


@pytest.fixture
def cluster_group() -> Iterator[servers.RedisCluster]:
    cluster = _started(servers.RedisCluster)
    yield cluster
    cluster.close()


@pytest.fixture
def sentinel_group() -> Iterator[servers.SentinelGroup]:
    group = _started(servers.SentinelGroup)
    yield group
    group.close()
