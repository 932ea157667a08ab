"""Invalidating a tag carried by 10, 10³ and 10⁶ entries: round trips, Redis time, and the
worst wait of a concurrent PING prober (issue #3; research T1/T2).

    python benchmarks/tags_invalidate.py [--sizes 10,1000,1000000]

Each size: write N entries carrying the tag (one encoded blob, pipelined SETs), start a prober
process that PINGs on its own connection as fast as it can, call ``invalidate_tags`` once, and
report its wall time, its round trips, the UNLINK count and server microseconds from INFO
commandstats, the prober's worst latency from the call's start to 50 ms after its end (UNLINK
frees in the background) next to its worst in an equally long idle window just before (the
machine's own noise), and check that sampled entries now miss.
"""

from __future__ import annotations

import argparse
import threading
import time

from tags_common import Prober, backend, start_server

BATCH = 10_000


def populate(cache: object, size: int) -> None:
    captured = cache.tag_versions("big")  # type: ignore[attr-defined]
    blob = cache.client.codec.encode({"row": "x" * 40}, captured.block())  # type: ignore[attr-defined]
    client = cache._write()  # type: ignore[attr-defined]
    for start in range(0, size, BATCH):
        pipe = client.pipeline(transaction=False)
        for i in range(start, min(size, start + BATCH)):
            pipe.set(cache.make_key(f"e:{i}"), blob, px=3_600_000)  # type: ignore[attr-defined]
        pipe.execute()


def run(size: int, url: str) -> dict[str, float]:
    cache = backend(url, prefix=f"inv{size}")
    populate(cache, size)
    assert cache.get(f"e:{size - 1}", tags=["big"]) == {"row": "x" * 40}
    client = cache._write()
    prober = Prober(url, seconds=2.0)
    time.sleep(1.0)  # the prober process is up and pinging
    sends = [0]
    original = client.connection_pool.connection_class.send_packed_command

    def counting(self, command, check_health=True):  # type: ignore[no-untyped-def]
        if threading.current_thread() is threading.main_thread():
            sends[0] += 1
        return original(self, command, check_health)

    client.connection_pool.connection_class.send_packed_command = counting
    before = client.info("commandstats").get("cmdstat_unlink", {"calls": 0, "usec": 0})
    started = time.perf_counter()
    dropped = cache.invalidate_tags("big")
    ended = time.perf_counter()
    client.connection_pool.connection_class.send_packed_command = original
    after = client.info("commandstats")["cmdstat_unlink"]
    prober.collect()
    worst, pings = prober.worst(started, ended + 0.05)
    # The same length of window just before the call: what the machine's noise alone gives.
    idle, _ = prober.worst(started - 0.3, started - 0.25 + (ended - started))
    sample = [f"e:{i}" for i in range(0, size, max(1, size // 1000))]
    assert dropped == 1
    assert cache.get_many(sample) == {}, "an entry survived invalidation"
    client.flushdb()
    return {
        "size": size,
        "wall_ms": (ended - started) * 1000,
        "round_trips": sends[0] - 1,  # minus the INFO call
        "unlink_calls": after["calls"] - before["calls"],
        "unlink_usec": after["usec"] - before["usec"],
        "probe_worst_ms": worst * 1000,
        "pings": pings,
        "idle_worst_ms": idle * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="10,1000,1000000")
    sizes = [int(size) for size in parser.parse_args().sizes.split(",")]
    server = start_server()
    try:
        print(
            f"{'entries':>9} {'wall':>9} {'RTs':>4} {'UNLINKs':>8} {'server':>9} {'PING worst':>11}"
        )
        for size in sizes:
            started = time.monotonic()
            result = run(size, server.url)
            print(
                f"{result['size']:>9,} {result['wall_ms']:>7.3f}ms {result['round_trips']:>4} "
                f"{result['unlink_calls']:>8} {result['unlink_usec']:>7}µs "
                f"{result['probe_worst_ms']:>9.3f}ms   "
                f"(idle window: {result['idle_worst_ms']:.3f}ms; "
                f"{result['pings']} pings; "
                f"set-up {time.monotonic() - started:.1f}s)"
            )
    finally:
        server.close()


if __name__ == "__main__":
    main()
