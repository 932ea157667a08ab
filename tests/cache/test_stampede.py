"""One stampede lock (cache/stampede.py) for get_or_set and @cached, on a real Redis."""

from __future__ import annotations

import threading
import time

import pytest
import redis

from tests.helpers import MakeCache


def test_get_or_set_waits_for_whoever_holds_the_entrys_stampede_lock(
    make_cache: MakeCache,
) -> None:
    cache = make_cache(OPTIONS={"STAMPEDE_LOCK_TIMEOUT": 5})
    lock = cache.stampede_lock("hot")
    assert lock.acquire()
    computed: list[int] = []
    results: list[object] = []

    def reader() -> None:
        results.append(cache.get_or_set("hot", lambda: computed.append(1) or "mine", 60))

    thread = threading.Thread(target=reader)
    thread.start()
    time.sleep(0.3)
    assert computed == [] and thread.is_alive()  # it waits for the lock's holder
    cache.set("hot", "holder's", 60)
    assert lock.release() is True
    thread.join(5)
    assert results == ["holder's"] and computed == []


def test_a_lock_that_expired_and_was_taken_again_is_not_released_by_its_first_holder(
    make_cache: MakeCache,
) -> None:
    cache = make_cache(OPTIONS={"STAMPEDE_LOCK_TIMEOUT": 0.05})
    first = cache.stampede_lock("k")
    assert first.acquire()
    assert not cache.stampede_lock("k").acquire()  # held
    time.sleep(0.1)
    second = cache.stampede_lock("k")
    assert second.acquire()
    assert first.release() is False  # not ours any more
    assert not cache.stampede_lock("k").acquire()  # the second holder still has it
    assert second.release() is True
    with pytest.raises(ValueError, match="never waited"):
        second.acquire(blocking=True)


def test_compute_and_store_captures_tag_versions_before_computing(make_cache: MakeCache) -> None:
    cache = make_cache()

    def compute() -> str:
        cache.invalidate_tags("t")  # an invalidation while computing
        return "stale"

    assert cache.compute_and_store("k", compute, 60, tags=["t"]) == "stale"
    assert cache.get("k", tags=["t"]) is None  # stored, but already invalid
    assert cache.compute_and_store("k", lambda: "fresh", 60, tags=["t"]) == "fresh"
    assert cache.get("k") == "fresh"


def test_an_outage_after_computing_returns_the_value_computed_once(
    make_cache: MakeCache, private_redis: object
) -> None:
    """Redis dies while ``default()`` runs: a muted cache answers with the value it computed
    (never a second computation), and the breaker counts one failure; unmuted, it raises."""
    server = private_redis
    muted = make_cache(server.url, OPTIONS={"IGNORE_EXCEPTIONS": True})  # type: ignore[attr-defined]
    calls: list[int] = []

    def compute() -> str:
        calls.append(1)
        server.stop()  # type: ignore[attr-defined]
        return "computed"

    before = muted.breaker.failures
    assert muted.get_or_set("k", compute, 60) == "computed"
    assert calls == [1]
    assert muted.breaker.failures == before + 1
    server.restart()  # type: ignore[attr-defined]
    from django_rediskit.connection.policy import forget_policies

    forget_policies()
    loud = make_cache(server.url)  # type: ignore[attr-defined]
    calls.clear()
    with pytest.raises(redis.exceptions.ConnectionError) as raised:
        loud.get_or_set("k2", compute, 60)
    assert type(raised.value) is redis.exceptions.ConnectionError  # the outage itself
    assert calls == [1]
    server.restart()  # type: ignore[attr-defined]
