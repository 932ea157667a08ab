"""Local cache: hot-key read speed and invalidation delay, on one private redis-server.

1. Hot key, ops/s, in interleaved rounds (each round runs every target in a shuffled order, so
   machine noise hits all alike; medians over rounds): redis-py ``GET`` of ready bytes (the
   network floor), ``GET`` + ``pickle.loads``, and ``LocalCache.get`` + ``pickle.loads`` (a
   local hit, decoded into a fresh object, as the cache facade will serve it), and the cache
   backend's own ``get`` without and with ``OPTIONS["LOCAL_CACHE"]`` (signed pickle: key,
   policy, signature check and decode included). Target: local ≥ 10x raw ``GET``.
2. Invalidation delay over N writes (default 10,000): process B holds the key in its
   LocalCache and tells process A; A notes the time and writes the key; B polls its LocalCache
   until the key is no longer held and notes the time (CLOCK_MONOTONIC is one clock for every
   process on the host). Delay = B's time - A's time *before* its SET was sent, so the SET's own
   round trip is included. B's poll loop yields the GIL (``time.sleep(0)``) between polls, as a
   worker that does I/O would; ``--spin`` polls without yielding (the tracker thread then waits
   for CPython's 5 ms switch interval). Target: p99 ≤ 5 ms on loopback.

Usage: ``python benchmarks/local_cache.py [--rounds N] [--writes N] [--spin]``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import pickle
import random
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from django_rediskit.cache.local import NOT_HELD, LocalCache  # noqa: E402
from django_rediskit.connection.topology import topology_for  # noqa: E402
from tests.servers import RedisServer  # noqa: E402

KEY = "bench:1:hot"
VALUE = pickle.dumps({"id": 42, "name": "product", "price": "19.99", "tags": ["a", "b"]})


def local_cache(url: str) -> LocalCache:
    cache = LocalCache(topology_for(url, {}, scope=f"bench-{uuid.uuid4().hex[:6]}"), ["bench:"])
    assert cache.wait_live(10), "tracking did not come up"
    return cache


def fill(cache: LocalCache, client: redis.Redis) -> None:
    while True:
        ticket = cache.begin(KEY)
        if cache.put(KEY, client.get(KEY), ticket):
            return


def backends(url: str) -> tuple[object, object]:
    """Two cache backends on the server, the second with the local cache on."""
    import django
    from django.conf import settings

    if not settings.configured:
        settings.configure(SECRET_KEY="benchmark-" + uuid.uuid4().hex, USE_TZ=True)
        django.setup()
    from django_rediskit.cache.backend import RedisCache

    plain = RedisCache(url, {"KEY_PREFIX": "bk"})
    with_local = RedisCache(url, {"KEY_PREFIX": "bk", "OPTIONS": {"LOCAL_CACHE": True}})
    assert with_local.local_cache is not None and with_local.local_cache.wait_live(10)
    return plain, with_local


def ops_per_second(run: Callable[[], object], seconds: float) -> float:
    calls, started = 0, time.perf_counter()
    while True:
        for _ in range(100):
            run()
        calls += 100
        elapsed = time.perf_counter() - started
        if elapsed >= seconds:
            return calls / elapsed


def hot_key(url: str, rounds: int, seconds: float) -> dict[str, float]:
    client = redis.Redis.from_url(url)
    client.set(KEY, VALUE)
    cache = local_cache(url)
    fill(cache, client)

    def local_get() -> object:
        raw = cache.get(KEY)
        assert raw is not NOT_HELD and raw is not None
        return pickle.loads(raw)

    plain, with_local = backends(url)
    plain.set("hot", {"id": 42, "name": "product", "price": "19.99", "tags": ["a", "b"]})
    assert with_local.get("hot") == plain.get("hot")
    targets: dict[str, Callable[[], object]] = {
        "redis-py GET": lambda: client.get(KEY),
        "redis-py GET + loads": lambda: pickle.loads(client.get(KEY)),  # type: ignore[arg-type]
        "LocalCache.get + loads": local_get,
        "rediskit get": lambda: plain.get("hot"),
        "rediskit get, LOCAL_CACHE": lambda: with_local.get("hot"),
    }
    results: dict[str, list[float]] = {name: [] for name in targets}
    for _ in range(rounds):
        order = list(targets)
        random.shuffle(order)
        for name in order:
            results[name].append(ops_per_second(targets[name], seconds))
    hits = cache.stats.hits
    cache.close()
    client.close()
    assert hits > 0
    return {name: statistics.median(values) for name, values in results.items()}


def _writer(url: str, pipe: Connection, writes: int) -> None:
    with redis.Redis.from_url(url) as client:
        for i in range(writes):
            pipe.recv()
            before = time.monotonic_ns()
            client.set(KEY, b"%d" % i)
            pipe.send(before)


def invalidation_delays(url: str, writes: int, spin: bool) -> list[float]:
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    writer = context.Process(target=_writer, args=(url, theirs, writes), daemon=True)
    writer.start()
    client = redis.Redis.from_url(url)
    cache = local_cache(url)
    delays: list[float] = []
    try:
        for _ in range(writes):
            fill(cache, client)
            ours.send(None)
            while cache.get(KEY) is not NOT_HELD:
                if not spin:
                    time.sleep(0)
            gone = time.monotonic_ns()
            before = ours.recv()
            delays.append((gone - before) / 1e6)
    finally:
        writer.join(10)
        cache.close()
        client.close()
    return delays


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--seconds", type=float, default=0.5, help="per target per round")
    parser.add_argument("--writes", type=int, default=10_000)
    parser.add_argument("--spin", action="store_true", help="poll without yielding the GIL")
    args = parser.parse_args()

    server = RedisServer().start()
    try:
        speeds = hot_key(server.url, args.rounds, args.seconds)
        floor = speeds["redis-py GET"]
        print(f"Hot key, ops/s (median of {args.rounds} interleaved rounds, loopback):")
        for name, value in speeds.items():
            print(f"  {name:<24} {value:>12,.0f}   {value / floor:6.1f}x raw GET")
        ratio = speeds["LocalCache.get + loads"] / floor
        print(f"  target local >= 10x raw GET: {'met' if ratio >= 10 else 'MISSED'} ({ratio:.1f}x)")

        delays = sorted(invalidation_delays(server.url, args.writes, args.spin))
        pick = lambda q: delays[min(len(delays) - 1, int(q * len(delays)))]  # noqa: E731
        mode = "spinning reader" if args.spin else "reader yields the GIL between polls"
        print(f"\nInvalidation delay over {len(delays):,} writes (write in A, gone in B; {mode}):")
        print(
            f"  p50 {pick(0.50):.3f} ms   p99 {pick(0.99):.3f} ms   max {delays[-1]:.3f} ms"
            f"   mean {statistics.fmean(delays):.3f} ms"
        )
        print(f"  target p99 <= 5 ms: {'met' if pick(0.99) <= 5 else 'MISSED'}")
    finally:
        server.close()


if __name__ == "__main__":
    main()
