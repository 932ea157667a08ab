"""Cache throughput on one server vs a local 3-primary Redis Cluster, in one run.

The same operations through the same ``RedisCache`` class on both topologies, in interleaved
rounds (each round runs every operation on both, in a shuffled order) so machine noise hits both
alike; the median over rounds of per-round ratios is reported. A cluster costs more per call by
nature (slot routing in Python, and ``get_many`` is one pipeline per node instead of one MGET);
the target of issue #11 is ``get_many`` of 1,000 keys within 2x of standalone.

Usage: ``python benchmarks/topology_bench.py [--rounds N] [--cluster-url URL]`` (without
``--cluster-url`` a private cluster is started with the test rig).
"""

from __future__ import annotations

import argparse
import contextlib
import random
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import django  # noqa: E402
from django.conf import settings  # noqa: E402

from tests import servers  # noqa: E402

OPERATIONS = ("get (hit)", "set 100 B", "get_many(1000)", "set_many(1000)")


def measure(run: Callable[[], None], seconds: float) -> float:
    """Calls per second of ``run`` over about ``seconds``."""
    calls = 0
    started = time.perf_counter()
    while True:
        run()
        calls += 1
        elapsed = time.perf_counter() - started
        if elapsed >= seconds:
            return calls / elapsed


def prepare(cache: object) -> dict[str, Callable[[], None]]:
    from django_rediskit.cache import RedisCache

    assert isinstance(cache, RedisCache)
    many = {f"m{i}": "v" * 100 for i in range(1000)}
    cache.set("hot", "x" * 100, 600)
    cache.set_many(many, 600)
    keys = list(many)
    return {
        "get (hit)": lambda: cache.get("hot"),
        "set 100 B": lambda: cache.set("w", "x" * 100, 600),
        "get_many(1000)": lambda: cache.get_many(keys),
        "set_many(1000)": lambda: cache.set_many(many, 600),
    }


@contextlib.contextmanager
def cluster_url(given: str | None) -> Iterator[str]:
    if given:
        yield given
        return
    cluster = servers.RedisCluster().start()
    try:
        yield cluster.url
    finally:
        cluster.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=0.4, help="per operation and round")
    parser.add_argument("--cluster-url")
    args = parser.parse_args()
    settings.configure(SECRET_KEY="bench", CACHES={}, INSTALLED_APPS=[])
    django.setup()
    from django_rediskit.cache import RedisCache

    server = servers.RedisServer().start()
    results: dict[str, dict[str, list[float]]] = {
        op: {"standalone": [], "cluster": []} for op in OPERATIONS
    }
    with cluster_url(args.cluster_url) as url:
        prefix = f"bench-{uuid.uuid4().hex[:6]}"
        caches = {
            "standalone": RedisCache(server.url, {"KEY_PREFIX": prefix}),
            "cluster": RedisCache(url, {"KEY_PREFIX": prefix}),
        }
        runs = {name: prepare(cache) for name, cache in caches.items()}
        for _ in range(args.rounds):
            order = [(op, name) for op in OPERATIONS for name in caches]
            random.shuffle(order)
            for op, name in order:
                results[op][name].append(measure(runs[name][op], args.seconds))
        for cache in caches.values():
            cache.clear()
    server.close()
    print(f"{'operation':<16} {'standalone/s':>13} {'cluster/s':>11} {'cluster/standalone':>19}")
    missed = False
    for op in OPERATIONS:
        alone = statistics.median(results[op]["standalone"])
        clustered = statistics.median(results[op]["cluster"])
        ratio = statistics.median(
            c / s for c, s in zip(results[op]["cluster"], results[op]["standalone"], strict=True)
        )
        print(f"{op:<16} {alone:>13,.0f} {clustered:>11,.0f} {ratio:>19.2f}")
        if op == "get_many(1000)" and ratio < 0.5:
            missed = True
    print("target get_many(1000) within 2x of standalone:", "missed" if missed else "met")
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
