"""The Streams queue on a real redis-server: crash, poison, restart, trimming, bad input."""

from __future__ import annotations

import threading
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import redis
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from django_rediskit.connection.policy import RedisUnavailable
from django_rediskit.messaging import Delivery, Queue
from tests import servers
from tests.messaging import support


def fresh(**options: Any) -> Queue:
    options.setdefault("visibility_timeout", 1.0)
    options.setdefault("handler_deadline", 0.5)
    options.setdefault("retry_backoff", 0.05)
    return Queue(f"t-{uuid.uuid4().hex[:8]}", **options)


def run_until(queue: Queue, handler: Any, done: Any, timeout: float = 20, **kwargs: Any) -> None:
    stop = threading.Event()
    kwargs.setdefault("block_ms", 100)
    worker = threading.Thread(
        target=queue.consume, args=(handler,), kwargs={"stop": stop, **kwargs}
    )
    worker.start()
    try:
        support.wait_for(done, timeout, "the consumer")
    finally:
        stop.set()
        worker.join(timeout=30)
    assert not worker.is_alive()


@pytest.mark.slow
def test_kill_worker_mid_stream_loses_nothing(tmp_path: Path) -> None:
    support.kill_test(settings.REDIS_URL, settings.TEST_PREFIX, tmp_path)


def test_poison_message_is_dead_lettered_and_others_flow() -> None:
    support.poison_test()


def test_round_trip_with_django_types_and_delivery_id() -> None:
    queue = fresh()
    sent = {"price": Decimal("9.99"), "id": uuid.UUID(int=7), "at": time.gmtime(0)[:3]}
    message_id = queue.enqueue(sent)
    got: list[Delivery] = []
    run_until(queue, got.append, lambda: len(got) == 1)
    [delivery] = got
    assert delivery.id == message_id
    assert delivery.deliveries == 1
    assert delivery.payload == {"price": "9.99", "id": str(uuid.UUID(int=7)), "at": [1970, 1, 1]}
    assert abs(delivery.enqueued_at.timestamp() - time.time()) < 60
    assert queue.stats().pending == 0
    queue.delete()


def test_bad_payloads_go_to_dead_letters_and_never_stop_the_loop() -> None:
    queue = fresh()
    queue.ensure_group()
    raw = queue.client
    raw.xadd(queue.stream_key, {"p": b"\xff\xfe not utf-8"})
    raw.xadd(queue.stream_key, {"p": "{not json"})
    raw.xadd(queue.stream_key, {"other": "producer"})
    queue.enqueue({"n": 1})
    got: list[Any] = []
    run_until(queue, lambda d: got.append(d.payload), lambda: got == [{"n": 1}])
    support.wait_for(lambda: queue.stats().dead_letters == 3, 5, "dead letters")
    reasons = [letter.reason for letter in queue.dead_letters()]
    assert reasons[0].startswith("bad payload: not JSON")
    assert reasons[1].startswith("bad payload: not JSON")
    assert reasons[2] == "bad payload: no 'p' field (fields: other)"
    assert queue.dead_letters()[2].fields == {"other": "producer"}
    assert queue.stats().pending == 0
    queue.delete()


def test_unserialisable_payload_raises_before_anything_is_sent() -> None:
    queue = fresh()
    with pytest.raises(TypeError):
        queue.enqueue({"x": object()})
    assert queue.stats().length == 0


@pytest.mark.parametrize("name", ["", "a{b}", "with space", "a:b", "x" * 101, 5])
def test_bad_queue_names_are_refused(name: Any) -> None:
    with pytest.raises(ValueError, match="Queue name"):
        Queue(name)


def test_visibility_timeout_must_exceed_the_handler_deadline() -> None:
    with pytest.raises(ImproperlyConfigured, match="must exceed the handler deadline"):
        Queue("q1", visibility_timeout=5, handler_deadline=5)
    with pytest.raises(ImproperlyConfigured):
        Queue("q1", max_deliveries=0)


def test_keys_share_one_hash_tag() -> None:
    queue = Queue("orders.eu")
    assert queue.stream_key.endswith(":q:{orders.eu}:s")
    assert queue.dead_key.endswith(":q:{orders.eu}:d")
    slots = {redis.crc.key_slot(key.encode()) for key in (queue.stream_key, queue.dead_key)}
    assert slots == {redis.crc.key_slot(b"{orders.eu}")}


def test_a_message_crashed_mid_handler_is_redelivered_after_the_visibility_timeout() -> None:
    queue = fresh(visibility_timeout=0.6, handler_deadline=0.3)
    queue.enqueue({"n": 1})
    queue.ensure_group()
    # A consumer takes it and "dies": never acks.
    queue.client.xreadgroup(queue.group, "dead-consumer", {queue.stream_key: ">"}, count=1)
    got: list[Delivery] = []
    started = time.monotonic()
    run_until(queue, got.append, lambda: len(got) == 1)
    assert time.monotonic() - started >= 0.5  # not before the timeout
    assert got[0].deliveries == 2
    assert queue.stats().pending == 0
    queue.delete()


def test_extend_keeps_the_claim_and_reports_a_lost_one() -> None:
    queue = fresh(visibility_timeout=0.5, handler_deadline=0.25)
    queue.enqueue({"n": 1})
    seen: list[tuple[str, int]] = []
    extended: list[bool] = []

    def slow(delivery: Delivery) -> None:
        seen.append((delivery.consumer, delivery.deliveries))
        for _ in range(6):  # 1.2 s in all, more than twice the visibility timeout
            time.sleep(0.2)
            extended.append(delivery.extend())

    rival: list[Delivery] = []
    stop = threading.Event()
    rival_thread = threading.Thread(
        target=queue.consume, args=(rival.append,), kwargs={"stop": stop, "block_ms": 50}
    )
    run_until(queue, slow, lambda: len(extended) == 6, consumer="slow")
    rival_thread.start()  # would reclaim the message if the claim had lapsed
    time.sleep(0.8)
    stop.set()
    rival_thread.join(timeout=30)
    assert extended == [True] * 6
    assert seen == [("slow", 1)] and rival == []
    # A delivery reclaimed by someone else: extend() says so.
    queue.enqueue({"n": 2})
    queue.client.xreadgroup(queue.group, "a", {queue.stream_key: ">"}, count=1)
    [[_name, [(entry_id, _fields)]]] = queue.client.xreadgroup(
        queue.group, "a", {queue.stream_key: "0"}, count=1
    )
    queue.client.xclaim(queue.stream_key, queue.group, "b", 0, [entry_id])
    lost = Delivery(entry_id.decode(), {}, 1, queue, "a")
    assert lost.extend() is False
    queue.delete()


def test_a_slow_batch_keeps_its_claims_and_acks_so_a_rival_reclaims_nothing() -> None:
    """Five 0.25 s handlers in one batch take twice the 0.6 s visibility timeout: done messages
    are acknowledged and waiting ones re-claimed on the way, so a rival never reruns any."""
    queue = fresh(visibility_timeout=0.6, handler_deadline=0.3)
    queue.enqueue_many([{"n": n} for n in range(5)])
    runs: list[tuple[str, int]] = []
    lock = threading.Lock()

    def slow(delivery: Delivery) -> None:
        time.sleep(0.25)
        with lock:
            runs.append((delivery.consumer, delivery.payload["n"]))

    stop = threading.Event()
    first = threading.Thread(
        target=queue.consume, args=(slow,), kwargs={"stop": stop, "batch": 5, "consumer": "a"}
    )
    first.start()
    support.wait_for(lambda: len(runs) >= 1, 5, "the slow batch to start")
    rival = threading.Thread(
        target=queue.consume,
        args=(slow,),
        kwargs={"stop": stop, "batch": 5, "block_ms": 50, "consumer": "b"},
    )
    rival.start()
    try:
        support.wait_for(lambda: len(runs) >= 5, 10, "the batch")
        time.sleep(1.0)  # a lapsed claim would be reclaimed and rerun by now
    finally:
        stop.set()
        first.join(timeout=30)
        rival.join(timeout=30)
    assert sorted(n for _, n in runs) == list(range(5))  # each ran once
    assert {consumer for consumer, _ in runs} == {"a"}
    assert queue.stats().pending == 0
    queue.delete()


def test_graceful_stop_finishes_the_current_message_and_hands_back_the_rest() -> None:
    queue = fresh(visibility_timeout=5, handler_deadline=1)
    queue.enqueue_many([{"n": n} for n in range(10)])
    stop = threading.Event()
    handled: list[int] = []

    def handler(delivery: Delivery) -> None:
        if delivery.payload["n"] == 2:
            stop.set()  # SIGTERM arrives while message 2 runs
            time.sleep(0.2)
        handled.append(delivery.payload["n"])

    queue.consume(handler, batch=10, block_ms=100, stop=stop, consumer="stopping")
    assert handled == [0, 1, 2]  # the current message finished
    stats = queue.stats()
    assert stats.pending == 7  # unstarted ones are not acknowledged...
    # ...and are handed back: another consumer gets them now, not after the 5 s timeout.
    rest: list[int] = []
    started = time.monotonic()
    run_until(queue, lambda d: rest.append(d.payload["n"]), lambda: len(rest) == 7)
    assert sorted(rest) == list(range(3, 10))
    assert time.monotonic() - started < 4
    queue.delete()


def test_concurrent_consumers_share_the_work_without_double_processing() -> None:
    queue = fresh(visibility_timeout=10, handler_deadline=5)
    total = 400
    queue.enqueue_many([{"n": n} for n in range(total)])
    seen: list[int] = []
    lock = threading.Lock()

    def handler(delivery: Delivery) -> None:
        with lock:
            seen.append(delivery.payload["n"])

    stop = threading.Event()
    workers = [
        threading.Thread(
            target=queue.consume,
            args=(handler,),
            kwargs={"stop": stop, "block_ms": 50, "batch": 7, "consumer": f"c{i}"},
        )
        for i in range(4)
    ]
    for worker in workers:
        worker.start()
    try:
        support.wait_for(lambda: len(seen) >= total, 30, "all messages")
    finally:
        stop.set()
        for worker in workers:
            worker.join(timeout=30)
    assert sorted(seen) == list(range(total))  # no visibility lapse: exactly once each
    assert queue.stats().pending == 0
    queue.delete()


def test_trim_never_drops_unacknowledged_or_unread_entries() -> None:
    queue = fresh(visibility_timeout=30, handler_deadline=10)
    ids = queue.enqueue_many([{"n": n} for n in range(1000)])
    queue.ensure_group()
    assert queue.trim() == 0  # nothing read yet: nothing trimmable
    # consumer "a" reads 600 and acks all but message 250; nothing after 600 is read
    reply = queue.client.xreadgroup(queue.group, "a", {queue.stream_key: ">"}, count=600)
    read = [entry_id.decode() for entry_id, _ in reply[0][1]]
    queue.client.xack(queue.stream_key, queue.group, *[i for i in read if i != ids[250]])
    removed = queue.trim()
    remaining = {entry_id.decode() for entry_id, _ in queue.client.xrange(queue.stream_key)}
    assert 0 < removed <= 250
    assert ids[250] in remaining  # the pending one stays
    assert set(ids[250:]) <= remaining  # and everything after it, read or not
    # once 250 is acked, trimming goes up to the first unread entry and no further
    queue.client.xack(queue.stream_key, queue.group, ids[250])
    queue.trim()
    remaining = {entry_id.decode() for entry_id, _ in queue.client.xrange(queue.stream_key)}
    assert set(ids[600:]) <= remaining
    # a second group that read nothing holds everything from its start
    queue.client.xgroup_create(queue.stream_key, "audit", id="0")
    before = queue.client.xlen(queue.stream_key)
    assert queue.trim() == 0
    assert queue.client.xlen(queue.stream_key) == before
    queue.delete()


def test_stats_of_a_queue_that_does_not_exist_yet() -> None:
    stats = fresh().stats()
    assert (stats.length, stats.pending, stats.dead_letters, stats.consumers) == (0, 0, 0, 0)


def test_requeue_dead_letters() -> None:
    queue = fresh(max_deliveries=1)
    queue.enqueue({"n": 1})
    run_until(queue, lambda d: 1 / 0, lambda: queue.stats().dead_letters == 1)
    letters = queue.dead_letters()
    assert letters[0].reason == "ZeroDivisionError: division by zero"
    queue.requeue_dead(letters)
    got: list[Any] = []
    run_until(queue, lambda d: got.append(d.payload), lambda: got == [{"n": 1}])
    assert queue.stats().dead_letters == 0
    queue.delete()


def test_redis_restart_during_consume_and_producers_while_down(
    private_redis: servers.RedisServer,
) -> None:
    options = {"CIRCUIT_BREAKER": {"FAILURE_THRESHOLD": 2, "RECOVERY_TIME": 0.2}}
    with support.site_on(private_redis.url, **options):
        queue = fresh(visibility_timeout=2, handler_deadline=1)
        seen: list[int] = []
        stop = threading.Event()
        worker = threading.Thread(
            target=queue.consume,
            args=(lambda d: seen.append(d.payload["n"]),),
            kwargs={"stop": stop, "block_ms": 200},
        )
        worker.start()
        try:
            queue.enqueue_many([{"n": n} for n in range(50)])
            support.wait_for(lambda: len(seen) == 50, 20, "before the restart")
            private_redis.stop()
            with pytest.raises(RedisUnavailable):  # a clear error, nothing silently dropped
                queue.enqueue({"n": -1})
            with pytest.raises(redis.ConnectionError):  # the same, as redis-py's type
                queue.enqueue({"n": -1})
            time.sleep(0.5)  # the consumer is now failing and backing off
            private_redis.start()  # empty: the restart lost the stream and its group
            support.wait_for(lambda: _enqueue_ok(queue), 10, "the producer to reconnect")
            queue.enqueue_many([{"n": n} for n in range(51, 100)])
            support.wait_for(lambda: len(seen) >= 100, 30, "after the restart")
        finally:
            stop.set()
            worker.join(timeout=30)
        assert not worker.is_alive()
        assert sorted(seen) == [*range(50), *range(50, 100)]
        assert queue.stats().pending == 0


def _enqueue_ok(queue: Queue) -> bool:
    try:
        queue.enqueue({"n": 50})
    except RedisUnavailable:
        return False
    return True


def test_async_handlers_run_to_completion_before_the_ack() -> None:
    queue = fresh()
    queue.enqueue_many([{"n": 1}, {"n": 2}])
    done: list[int] = []

    async def handler(delivery: Delivery) -> None:
        import asyncio

        await asyncio.sleep(0.01)
        if delivery.payload["n"] == 2 and delivery.deliveries == 1:
            raise RuntimeError("async failure is a failure")
        done.append(delivery.payload["n"])

    run_until(queue, handler, lambda: sorted(done) == [1, 2])
    assert queue.stats().pending == 0
    queue.delete()
