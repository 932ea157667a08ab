"""Write-behind counters and values, and write-through, on a real redis-server and the DB."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.cache import cache
from django.core.exceptions import FieldDoesNotExist
from django.db import transaction
from django.test import override_settings

from django_rediskit.connection.policy import RedisUnavailable
from django_rediskit.messaging import Delivery, Queue
from django_rediskit.messaging.writebehind import (
    WriteBehind,
    apply,
    write_behind,
    write_through,
)
from tests import servers
from tests.messaging import handlers, support
from tests.testapp.models import Category, Product

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def wb_queue() -> Iterator[str]:
    """A write-behind queue of this test's own (short timeouts)."""
    name = f"wb-{uuid.uuid4().hex[:8]}"
    conf = {"MESSAGING": {"WRITE_BEHIND_QUEUE": name, "RETRY_BACKOFF": 0.05}}
    with override_settings(REDISKIT=conf):
        yield name
        Queue(name).delete()


def product() -> Product:
    return Product.objects.create(name="p", price=0, category=Category.objects.create(name="c"))


class Worker:
    """A write-behind worker in a thread, stoppable (a restart is stop + start)."""

    def __init__(self, name: str, handler: Any = apply) -> None:
        self.queue = Queue(name, visibility_timeout=2, handler_deadline=1)
        self.stop = threading.Event()
        self.thread = threading.Thread(
            target=self.queue.consume,
            args=(handler,),
            kwargs={"stop": self.stop, "block_ms": 50, "batch": 20},
        )
        self.thread.start()

    def halt(self) -> None:
        self.stop.set()
        self.thread.join(timeout=30)
        assert not self.thread.is_alive()


def drained(views: WriteBehind, key: Any, queue: str) -> bool:
    return not views.pending(key) and Queue(queue).stats().pending == 0


def test_10000_increments_from_8_threads_exact_across_worker_restarts(wb_queue: str) -> None:
    item = product()
    views = write_behind(Product, "price")
    writes: list[int] = []
    crashes: list[int] = []

    def counting(delivery: Delivery) -> None:
        writes.append(1)
        apply(delivery)

    def crashing(delivery: Delivery) -> None:
        """Applies to the database, then dies before the ack: the redelivery must not add."""
        writes.append(1)
        target = views.record_key(item.pk)
        value = int(views.queue.client.hget(target, "v"))
        Product.objects.filter(pk=item.pk).update(price=value)
        if len(crashes) < 3:
            crashes.append(value)
            raise RuntimeError("worker died after its database write")
        apply(delivery)

    start = threading.Barrier(9)
    totals: list[int] = []

    def bump() -> None:
        start.wait()
        for _ in range(1250):
            totals.append(views.incr(item.pk))

    threads = [threading.Thread(target=bump) for _ in range(8)]
    for thread in threads:
        thread.start()
    first = Worker(wb_queue, counting)
    start.wait()
    support.wait_for(lambda: len(totals) >= 3000, 60, "a third of the increments")
    first.halt()  # restart 1: graceful stop mid-stream
    second = Worker(wb_queue, crashing)
    support.wait_for(lambda: len(totals) >= 7000 and len(crashes) == 3, 60, "crashes")
    second.halt()  # restart 2, after three deliveries that wrote the DB but never acked
    for thread in threads:
        thread.join()
    third = Worker(wb_queue, counting)
    try:
        support.wait_for(lambda: drained(views, item.pk, wb_queue), 60, "the worker to drain")
    finally:
        third.halt()
    item.refresh_from_db()
    assert sorted(totals) == list(range(1, 10_001))  # every increment counted once, in Redis
    assert item.price == 10_000  # and exactly once in the database
    assert views.get(item.pk) == 10_000
    assert len(writes) < 2_000  # coalesced: far fewer database writes than increments
    print(f"\nwrite-behind: 10000 increments, {len(writes)} database writes, 2 restarts")


def test_set_coalesces_and_the_latest_value_wins(wb_queue: str) -> None:
    views: WriteBehind = handlers.save_last_seen
    assert write_behind(views) is views
    key = f"u{uuid.uuid4().hex[:6]}"
    for n in range(50):
        views.set(key, {"n": n})
    assert views.get(key) == {"n": 49}  # the cache has it at once
    assert Queue(wb_queue).stats().length == 1  # one queued write for 50 sets
    worker = Worker(wb_queue)
    try:
        support.wait_for(lambda: not views.pending(key), 10, "the write")
    finally:
        worker.halt()
    assert handlers.LAST_SEEN[key] == {"n": 49}


def test_counter_starts_from_the_database_value(wb_queue: str) -> None:
    item = product()
    Product.objects.filter(pk=item.pk).update(price=40)
    views = write_behind(Product, "price")
    assert views.get(item.pk) == 40  # no record yet: read from the database
    assert views.incr(item.pk, 2) == 42
    record = views.record_key(item.pk)
    assert views.queue.client.pttl(record) == -1  # dirty: never expires before it is applied
    # deleting the queue takes its records too (same hash tag): stream + record
    assert Queue(wb_queue).delete() == 2
    assert not views.queue.client.exists(record)


def test_messages_cannot_name_arbitrary_functions(wb_queue: str) -> None:
    queue = Queue(wb_queue, visibility_timeout=1, handler_deadline=0.5, max_deliveries=1)
    queue.enqueue({"w": "tests.messaging.handlers.not_marked", "k": "x"})
    queue.enqueue({"w": "no.such.Model.field", "k": "x"})
    queue.enqueue(["not", "a", "write"])
    stop = threading.Event()
    worker = threading.Thread(target=queue.consume, args=(apply,), kwargs={"stop": stop})
    worker.start()
    try:
        support.wait_for(lambda: queue.stats().dead_letters == 3, 10, "dead letters")
    finally:
        stop.set()
        worker.join(timeout=30)
    reasons = [letter.reason for letter in queue.dead_letters()]
    assert "is not a @write_behind function" in reasons[0]
    assert reasons[1].startswith("LookupError")
    assert reasons[2].startswith("ValueError: not a write-behind message")
    assert "hacked" not in handlers.LAST_SEEN


def test_bad_input(wb_queue: str) -> None:
    with pytest.raises(FieldDoesNotExist):
        write_behind(Product, "nope")
    with pytest.raises(TypeError):
        write_behind(Product)
    with pytest.raises(TypeError):
        write_behind(42)  # type: ignore[arg-type]
    views = write_behind(Product, "price")
    with pytest.raises(ValueError):
        views.incr("has space")
    with pytest.raises(TypeError):
        views.incr(1, 1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        views.set(1, object())


def test_redis_down_raises_and_nothing_is_buffered(
    private_redis: servers.RedisServer, wb_queue: str
) -> None:
    item = product()
    with support.site_on(private_redis.url):
        views = write_behind(Product, "price")
        assert views.incr(item.pk) == 1
        private_redis.stop()
        with pytest.raises(RedisUnavailable):
            views.incr(item.pk)
        with pytest.raises(RedisUnavailable):
            views.set(item.pk, 5)


def test_write_through_sets_the_cache_on_commit_only() -> None:
    key = f"wt-{uuid.uuid4().hex[:6]}"
    item = product()

    def save() -> int:
        Product.objects.filter(pk=item.pk).update(price=7)
        return 7

    with transaction.atomic():
        assert write_through(key, save) == 7
        assert cache.get(key) is None  # not before the outer commit
    assert cache.get(key) == 7

    class Boom(Exception):
        pass

    def fail() -> int:
        Product.objects.filter(pk=item.pk).update(price=99)
        raise Boom

    with pytest.raises(Boom):
        write_through(key, fail)
    item.refresh_from_db()
    assert item.price == 7 and cache.get(key) == 7  # rolled back: neither changed

    with pytest.raises(Boom), transaction.atomic():
        write_through(key, lambda: 8)
        raise Boom  # the outer transaction rolls back after fn() ran
    assert cache.get(key) == 7
