"""A tagged hit with declared tags, with undeclared tags, and a plain hit (issue #3; T3/T4).

    python benchmarks/tags_get.py [--samples 20000] [--tags 3]

Interleaves the three reads (so machine noise hits all alike) and prints p50 / p99 / max per
kind and the round trips each made, on a private redis-server over loopback.
"""

from __future__ import annotations

import argparse
import time

from tags_common import backend, percentiles, start_server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=20_000)
    parser.add_argument("--tags", type=int, default=3)
    args = parser.parse_args()
    server = start_server()
    try:
        cache = backend(server.url)
        tags = [f"product:{i}" for i in range(args.tags)]
        value = {"name": "lamp", "price": "9.99", "stock": 3}
        cache.set("plain", value, 600)
        cache.set("tagged", value, 600, tags=tags)
        reads = {
            "plain get": lambda: cache.get("plain"),
            f"tagged, {args.tags} declared": lambda: cache.get("tagged", tags=tags),
            "tagged, undeclared": lambda: cache.get("tagged"),
        }
        for read in reads.values():  # warm up connections and code paths
            for _ in range(500):
                assert read() == value
        samples: dict[str, list[float]] = {name: [] for name in reads}
        for _ in range(args.samples):
            for name, read in reads.items():
                started = time.perf_counter()
                read()
                samples[name].append(time.perf_counter() - started)
        for name, values in samples.items():
            print(f"{name:<24} {percentiles(values)}")
    finally:
        server.close()


if __name__ == "__main__":
    main()
