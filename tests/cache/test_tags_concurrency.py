"""Tags under concurrency, at scale and with Redis down (real redis-server)."""

from __future__ import annotations

import logging
import random
import threading
import time

import pytest
import redis
from django.core.cache import cache, caches

from tests.cache.tagtools import RoundTrips, private_cache, round_trips  # noqa: F401
from tests.servers import RedisServer
from tests.settings import REDIS_URL


def test_randomised_16_workers_never_read_stale_after_invalidate_returns() -> None:
    """Writers bump a row and invalidate its tag; readers get_or_set from the "DB".

    A read that starts after ``invalidate_tags`` returned for value v must see >= v. Compute
    paths sleep at random to widen the read-compute-write window.
    """
    rows = 4
    db = [0] * rows
    invalidated = [0] * rows  # highest value whose invalidation has returned
    lock = threading.Lock()
    stale: list[tuple[int, int, int]] = []
    reads = [0]
    stop = time.monotonic() + 3.0
    rng_seed = random.randrange(1 << 30)

    def writer(seed: int) -> None:
        rng = random.Random(seed)
        backend = caches["default"]
        while time.monotonic() < stop:
            row = rng.randrange(rows)
            with lock:
                db[row] += 1
                written = db[row]
            backend.invalidate_tags(f"row:{row}")
            with lock:
                invalidated[row] = max(invalidated[row], written)
            time.sleep(rng.random() * 0.004)

    def reader(seed: int) -> None:
        rng = random.Random(seed)
        backend = caches["default"]
        while time.monotonic() < stop:
            row = rng.randrange(rows)
            with lock:
                floor = invalidated[row]

            def compute(row: int = row) -> int:
                with lock:
                    value = db[row]
                time.sleep(rng.random() * 0.003)
                return value

            seen = [backend.get_or_set(f"row:{row}", compute, 60, tags=[f"row:{row}"])]
            if rng.random() < 0.5:
                seen.append(backend.get(f"row:{row}", floor, tags=[f"row:{row}"]))
            stale.extend((row, got, floor) for got in seen if got < floor)
            reads[0] += 1

    threads = [threading.Thread(target=writer, args=(rng_seed + i,)) for i in range(4)]
    threads += [threading.Thread(target=reader, args=(rng_seed + 100 + i,)) for i in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert reads[0] > 200, reads
    assert sum(db) > 50
    assert stale == [], f"seed {rng_seed}: {stale[:5]}"


@pytest.mark.standalone_only
def test_invalidating_10k_entries_is_one_trip_and_never_blocks_a_prober(
    round_trips: RoundTrips,  # noqa: F811
) -> None:
    captured = cache.tag_versions("big")
    assert captured is not None
    data = {f"big:{i}": i for i in range(10_000)}
    cache.set_many(data, 300, versions=captured)
    client = cache._write()
    assert cache.get("big:9999") == 9999

    prober = redis.Redis.from_url(REDIS_URL)
    worst = [0.0]
    done = threading.Event()

    def probe() -> None:
        while not done.is_set():
            started = time.perf_counter()
            prober.ping()
            worst[0] = max(worst[0], time.perf_counter() - started)
            time.sleep(0.0005)

    thread = threading.Thread(target=probe)
    thread.start()
    time.sleep(0.05)
    before = client.info("commandstats")["cmdstat_unlink"]
    with round_trips.measure() as trips:
        assert cache.invalidate_tags("big") == 1
    after = client.info("commandstats")["cmdstat_unlink"]
    time.sleep(0.05)
    done.set()
    thread.join()
    prober.close()
    assert trips.count == 1
    assert after["calls"] - before["calls"] == 1
    assert after["usec"] - before["usec"] < 1000  # server time: O(1), not O(entries)
    assert worst[0] < 0.25  # generous: a shared 2-core machine, but never seconds
    assert cache.get_many(list(data)[::97]) == {}


@pytest.fixture
def server(private_redis: RedisServer) -> RedisServer:
    return private_redis


def test_redis_down_fails_open_with_ignore_exceptions(
    server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    # No breaker here: its half-open probe is tested by the backend's own suite.
    backend = private_cache(server.url, IGNORE_EXCEPTIONS=True, CIRCUIT_BREAKER=False)
    assert backend.set("k", "v", 60, tags=["t"])
    server.stop()
    calls: list[int] = []
    assert backend.get("k", "fallback", tags=["t"]) == "fallback"
    assert backend.get("k", "fallback") == "fallback"
    assert backend.set("k", "v2", 60, tags=["t"]) is False
    assert backend.tag_versions("t") is None
    with caplog.at_level(logging.ERROR, logger="django_rediskit.cache"):
        assert backend.invalidate_tags("t") == 0
    assert "Tag invalidation failed" in caplog.text
    assert backend.get_many(["k"], tags=["t"]) == {}
    assert backend.get_or_set("k", lambda: calls.append(1) or "computed", 60, tags=["t"]) == (
        "computed"
    )
    assert calls == [1]  # the caller still gets a value, computed once
    server.start()
    # A restart lost every version key: old entries (if any survived) could only miss.
    assert backend.get("k", "miss", tags=["t"]) == "miss"
    assert backend.set("k", "v3", 60, tags=["t"])
    assert backend.get("k", tags=["t"]) == "v3"


def test_failed_invalidation_is_logged_with_its_tags(
    server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    backend = private_cache(server.url, CIRCUIT_BREAKER=False)
    backend.set("k", "v", 60, tags=["product:1"])
    server.stop()
    with (
        caplog.at_level(logging.ERROR, logger="django_rediskit.cache"),
        pytest.raises(redis.ConnectionError),
    ):
        backend.invalidate_tags("product:1")
    assert "product:1" in caplog.text
    with pytest.raises(redis.ConnectionError):
        backend.get("k", tags=["product:1"])


def test_version_keys_lost_on_restart_make_entries_miss(server: RedisServer) -> None:
    """A server restarted without persistence but with entries restored elsewhere (e.g. a
    replica promoted late) behaves like eviction: versions gone means invalidated."""
    backend = private_cache(server.url)
    backend.set("k", "v", 60, tags=["t"])
    raw = server.client().get(backend.make_key("k"))
    server.restart()
    server.client().set(backend.make_key("k"), raw, px=60_000)  # the entry survives, tags don't
    assert backend.get("k", "miss") == "miss"
    assert backend.get("k", "miss", tags=["t"]) == "miss"
