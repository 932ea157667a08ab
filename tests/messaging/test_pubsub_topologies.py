"""Pub/sub on a private Redis Cluster (sharded by default, classic for patterns)."""

from __future__ import annotations

import uuid

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from django_rediskit.messaging.pubsub import publish, subscribe
from tests import servers
from tests.messaging import support
from tests.messaging.test_pubsub import drain

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        servers.TOPOLOGY != "standalone", reason="the suite itself runs on this topology"
    ),
]


def test_sharded_pubsub_on_cluster(cluster_url: str) -> None:
    with support.site_on(cluster_url):
        channels = [f"c{i}-{uuid.uuid4().hex[:6]}" for i in range(6)]  # over several shards
        with subscribe(*channels, health_check_interval=0.3) as sub:
            assert sub.sharded
            for i, channel in enumerate(channels):
                assert publish(channel, i) == 1
            got = drain(sub, len(channels))
            assert sorted(m.data for m in got) == list(range(6))
            # idle past several health checks (one PING per node): still subscribed, no renewal
            assert sub.get_message(timeout=1.5) is None
            assert sub.subscriptions == 1
            assert publish(channels[0], "later") == 1
            assert [m.data for m in drain(sub, 1)] == ["later"]
        with pytest.raises(ImproperlyConfigured, match="SHARDED_PUBSUB"):
            subscribe(patterns=["x:*"])


def test_classic_pubsub_with_patterns_on_cluster(cluster_url: str) -> None:
    with (
        support.site_on(cluster_url),
        override_settings(REDISKIT={"MESSAGING": {"SHARDED_PUBSUB": False}}),
    ):
        base = f"p-{uuid.uuid4().hex[:6]}"
        with subscribe(patterns=[f"{base}:*"], health_check_interval=0.3) as sub:
            assert not sub.sharded
            for i in range(5):
                publish(f"{base}:{i}", i)  # broadcast over the cluster bus to every node
            got = drain(sub, 5)
            assert sorted(m.data for m in got) == list(range(5))
