"""The kill and poison tests on a private Redis Cluster and behind Sentinel (with a failover
while the second worker consumes: nothing lost, duplicates counted and printed).

When the whole suite already runs on a cluster or behind Sentinel (``REDISKIT_TEST_TOPOLOGY``),
tests/messaging/test_queue.py runs there itself, so these are skipped to save the time.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests import servers
from tests.messaging import support

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        servers.TOPOLOGY != "standalone", reason="the suite itself runs on this topology"
    ),
]


def test_kill_and_poison_on_cluster(cluster_url: str, tmp_path: Path) -> None:
    with support.site_on(cluster_url) as prefix:
        support.poison_test(label="cluster")
        result = support.kill_test(cluster_url, prefix, tmp_path, label="cluster")
    assert result["processed"] == 1000


def _replicated(group: servers.SentinelGroup) -> None:
    """Until the replica has every write the primary has taken so far (the 1,000 XADDs): a
    failover may then lose group state (acks, reads: duplicates), never a message."""
    with group.primary().client() as primary:
        offset = int(primary.info("replication")["master_repl_offset"])
    other = next(
        s for s in (group.primary_server, group.replica_server) if s is not group.primary()
    )
    deadline = time.monotonic() + 10
    while True:
        with other.client() as replica:
            if int(replica.info("replication").get("slave_repl_offset", -1)) >= offset:
                return
        if time.monotonic() > deadline:
            raise AssertionError("the replica did not catch up")
        time.sleep(0.05)


def test_kill_poison_and_failover_behind_sentinel(
    sentinel_group: servers.SentinelGroup, tmp_path: Path
) -> None:
    url = sentinel_group.url
    first_primary = sentinel_group.primary_port()
    failovers: list[float] = []

    def failover() -> None:
        _replicated(sentinel_group)
        started = time.monotonic()
        sentinel_group.kill_primary()
        failovers.append(time.monotonic() - started)

    with support.site_on(url, SOCKET_TIMEOUT=1.0) as prefix:
        support.poison_test(label="sentinel")
        result = support.kill_test(
            url, prefix, tmp_path, during_second=failover, label="sentinel + failover"
        )
    print(
        f"sentinel failover during consume: promoted in {failovers[0]:.1f} s; "
        f"{result['duplicates']} duplicate deliveries, 0 lost"
    )
    assert failovers and result["processed"] == 1000
    assert sentinel_group.primary_port() != first_primary  # the failover did happen


def test_cluster_primary_killed_under_a_consumer_and_a_sharded_subscriber(
    cluster_group: servers.RedisCluster,
) -> None:
    """The primary that owns a queue's slot (and its channel's) is SIGKILLed mid-consume: its
    replica takes over, the consumer and the sharded subscriber follow, nothing is lost."""
    import threading

    from redis.crc import key_slot

    from django_rediskit.messaging import Delivery, Queue, publish, subscribe
    from django_rediskit.messaging.pubsub import channel_name

    with support.site_on(cluster_group.url, SOCKET_TIMEOUT=1.0):
        queue = Queue("failover", visibility_timeout=2.0, handler_deadline=1.0)
        channel = "{failover}:events"  # the queue's hash tag: same slot, same primary
        assert key_slot(channel_name(channel).encode()) == key_slot(queue.stream_key.encode())
        ids = queue.enqueue_many([{"n": n} for n in range(600)])
        seen: list[int] = []
        lock = threading.Lock()

        def handler(delivery: Delivery) -> None:
            time.sleep(0.002)
            with lock:
                seen.append(delivery.payload["n"])

        stop = threading.Event()
        consumer = threading.Thread(
            target=queue.consume, args=(handler,), kwargs={"stop": stop, "block_ms": 100}
        )
        sub = subscribe(channel, health_check_interval=0.3)
        heard: list[object] = []
        listener = sub.run_in_thread(lambda m: heard.append(m.data))
        consumer.start()
        try:
            support.wait_for(lambda: len(seen) >= 150, 30, "consumption")
            owner = _owner(cluster_group, key_slot(queue.stream_key.encode()))
            _replicated_cluster(cluster_group, owner)
            cluster_group.kill_primary(owner)
            support.wait_for(lambda: len(set(seen)) == 600, 90, "every message after failover")
            support.wait_for(lambda: queue.stats().pending == 0, 30, "every ack")
            delivered = []
            deadline = time.monotonic() + 30
            n = 0
            while len(delivered) < 3 and time.monotonic() < deadline:
                n += 1
                try:
                    if publish(channel, n) == 1:
                        delivered.append(n)
                except Exception:  # the routing client refreshes its slot map meanwhile
                    pass
                time.sleep(0.1)
            assert len(delivered) == 3, "the sharded subscriber did not come back"
            support.wait_for(lambda: set(delivered) <= set(heard), 10, "messages after failover")
        finally:
            stop.set()
            consumer.join(timeout=30)
            listener.stop()
        duplicates = len(seen) - len(set(seen))
        print(f"\ncluster failover during consume: 600 messages, {duplicates} duplicates, 0 lost")
        assert sorted(set(seen)) == list(range(600)) and len(ids) == 600
        queue.delete()


def _owner(cluster: servers.RedisCluster, slot: int) -> int:
    """The port of the primary that serves ``slot`` (CLUSTER SHARDS, as the cluster says)."""
    with cluster.live()[0].client(decode_responses=True) as client:
        shards = client.execute_command("CLUSTER", "SHARDS")  # parsed into dicts by redis-py
    for shard in shards:
        ranges = shard["slots"]
        if any(int(a) <= slot <= int(b) for a, b in zip(ranges[::2], ranges[1::2], strict=True)):
            for node in shard["nodes"]:
                if node["role"] == "master" and node["health"] == "online":
                    return int(node["port"])
    raise AssertionError(f"no primary serves slot {slot}")


def _replicated_cluster(cluster: servers.RedisCluster, port: int) -> None:
    """Until the killed primary's replica has every write so far (the 600 XADDs)."""
    with cluster.node(port).client() as primary:
        offset = int(primary.info("replication")["master_repl_offset"])
        replicas = [
            int(value["port"])
            for name, value in primary.info("replication").items()
            if name.startswith("slave") and isinstance(value, dict)
        ]
    deadline = time.monotonic() + 10
    while True:
        done = True
        for replica_port in replicas:
            with cluster.node(replica_port).client() as replica:
                if int(replica.info("replication").get("slave_repl_offset", -1)) < offset:
                    done = False
        if done:
            return
        if time.monotonic() > deadline:
            raise AssertionError("the replica did not catch up")
        time.sleep(0.05)
