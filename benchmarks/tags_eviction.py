"""Eviction safety (issue #3; research T6/T7): under ``maxmemory 32mb`` with ``allkeys-lru``
(and ``volatile-lru``), 10⁶ tagged writes mixed with invalidations never return a value from
before an invalidation, and the tag system never leaves a key without a TTL.

    python benchmarks/tags_eviction.py [--writes 1000000] [--policies allkeys-lru,volatile-lru]

Model: G tag groups, each with a generation number standing for "the DB". A writer captures the
group's tag version, reads the generation, and writes a batch of entries carrying that
generation; an invalidation bumps the generation and then calls ``invalidate_tags`` (one write
in five is overtaken by one between capture and write: its entries must never be served). Every read
(``get_many`` with the tag declared) must return only the current generation. Values are ~200 B,
so 10⁶ writes are ~6x maxmemory and Redis evicts items and version keys alike.
"""

from __future__ import annotations

import argparse
import random
import time

from tags_common import backend, start_server

GROUPS = 200
ENTRIES_PER_GROUP = 2000
BATCH = 200


def run(policy: str, writes: int, seed: int) -> dict[str, object]:
    server = start_server("--maxmemory", "32mb", "--maxmemory-policy", policy)
    try:
        cache = backend(server.url, prefix="evict")
        rng = random.Random(seed)
        generation = [0] * GROUPS
        written = reads = hits = stale = invalidations = 0
        started = time.monotonic()
        while written < writes:
            group = rng.randrange(GROUPS)
            tag = f"group:{group}"
            roll = rng.random()
            if roll < 0.05:
                generation[group] += 1  # "commit" first, then invalidate
                cache.invalidate_tags(tag)
                invalidations += 1
            elif roll < 0.55:
                captured = cache.tag_versions(tag)
                current = generation[group]
                if rng.random() < 0.2:  # the data changes while this writer "computes"
                    generation[group] += 1
                    cache.invalidate_tags(tag)
                    invalidations += 1
                start = rng.randrange(ENTRIES_PER_GROUP - BATCH)
                cache.set_many(
                    {
                        f"e:{group}:{i}": {"g": group, "gen": current, "pad": "x" * 160}
                        for i in range(start, start + BATCH)
                    },
                    3600,
                    versions=captured,
                )
                written += BATCH
            else:
                keys = [f"e:{group}:{i}" for i in rng.sample(range(ENTRIES_PER_GROUP), 50)]
                found = cache.get_many(keys, tags=[tag])
                reads += len(keys)
                hits += len(found)
                stale += sum(1 for value in found.values() if value["gen"] != generation[group])
        elapsed = time.monotonic() - started
        client = server.client()
        persistent = sum(
            1 for key in client.scan_iter(match="evict:*", count=1000) if client.pttl(key) == -1
        )
        info = client.info()
        return {
            "policy": policy,
            "writes": written,
            "invalidations": invalidations,
            "reads": reads,
            "hits": hits,
            "stale": stale,
            "evicted_keys": info["evicted_keys"],
            "used_memory_peak_mb": info["used_memory_peak"] / 2**20,
            "keys_without_ttl": persistent,
            "seconds": elapsed,
        }
    finally:
        server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--writes", type=int, default=1_000_000)
    parser.add_argument("--policies", default="allkeys-lru,volatile-lru")
    parser.add_argument("--seed", type=int, default=random.randrange(1 << 30))
    args = parser.parse_args()
    print(f"seed {args.seed}")
    failed = False
    for policy in args.policies.split(","):
        result = run(policy, args.writes, args.seed)
        print(
            f"{result['policy']:<13} writes {result['writes']:,}  invalidations "
            f"{result['invalidations']:,}  reads {result['reads']:,} (hits {result['hits']:,})  "
            f"STALE {result['stale']}  evicted {result['evicted_keys']:,}  peak "
            f"{result['used_memory_peak_mb']:.1f} MB  keys without TTL "
            f"{result['keys_without_ttl']}  ({result['seconds']:.0f} s)"
        )
        failed |= bool(result["stale"] or result["keys_without_ttl"])
    raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
    main()
