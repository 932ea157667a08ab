"""What metrics cost a cache ``get``: off (no exporter) vs Prometheus on, in one run.

Starts a private redis-server, then alternates rounds of ``cache.get`` on one key with metrics
off and with ``REDISKIT["METRICS"]["PROMETHEUS"] = True`` (interleaved, so drift of the machine
hits both sides alike) and prints the median ops/s of each and the cost of "on" in percent
(target: <= 5 %). It also times the hooks' fast path alone with metrics off: the guard's
``ENABLED`` test and a throttle hook call, in nanoseconds.

Run: ``.venv/bin/python benchmarks/metrics_overhead.py [--ops 2000] [--rounds 40]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import timeit
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.servers import RedisServer  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=2_000)
    parser.add_argument("--rounds", type=int, default=40)
    options = parser.parse_args()
    server = RedisServer().start()
    os.environ["REDIS_URL"] = server.url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    try:
        run(options.ops, options.rounds)
    finally:
        server.close()


def run(ops: int, rounds: int) -> None:
    import django

    django.setup()
    from django.core.cache import caches
    from django.test import override_settings

    from django_rediskit.metrics import events

    cache = caches["default"]
    cache.set("bench", b"x" * 100)

    def measure() -> tuple[float, float]:
        """(wall seconds, client CPU seconds) per get over ``ops`` gets."""
        get = cache.get
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(ops):
            get("bench")
        return (time.perf_counter() - wall) / ops, (time.process_time() - cpu) / ops

    measure()  # warm up the connection and the code paths
    from django_rediskit.metrics import setup

    results: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
    for index in range(rounds):
        # ABBA order: a slow spell of this shared machine lands on both sides alike
        for enabled in (False, True) if index % 2 == 0 else (True, False):
            with override_settings(REDISKIT={"METRICS": {"PROMETHEUS": enabled}}):
                assert (
                    events.ENABLED is enabled and (setup.prometheus_sink() is not None) is enabled
                )
                results[enabled].append(measure())

    def summary(enabled: bool) -> tuple[float, float, float]:
        walls = [wall for wall, _ in results[enabled]]
        cpus = [cpu for _, cpu in results[enabled]]
        return 1 / statistics.median(walls), 1 / min(walls), statistics.median(cpus)

    off_median, off_best, off_cpu = summary(False)
    on_median, on_best, on_cpu = summary(True)
    print(f"cache.get: {rounds} interleaved rounds of {ops} gets each side, private redis-server")
    print("                      median ops/s   best ops/s   client CPU per get")
    print(f"  metrics off         {off_median:12.0f} {off_best:12.0f}   {off_cpu * 1e6:8.2f} us")
    print(f"  Prometheus on       {on_median:12.0f} {on_best:12.0f}   {on_cpu * 1e6:8.2f} us")
    print(
        f"  cost of on          {(off_median - on_median) / off_median * 100:+11.1f} %"
        f" {(off_best - on_best) / off_best * 100:+11.1f} %"
        f"   {(on_cpu - off_cpu) * 1e6:+8.2f} us ({(on_cpu - off_cpu) / off_cpu * 100:+.1f} % CPU)"
    )
    print("  target: on costs <= 5 % of get throughput")

    off_rate = off_median
    namespace = {"m": events, "decision": object()}
    n = 1_000_000
    guard = timeit.timeit(
        "s = m.cache_started() if m.ENABLED else None\nif s is not None: pass",
        globals=namespace,
        number=n,
    )
    hook = timeit.timeit("m.throttle_decision('s', decision)", globals=namespace, number=n)
    print("fast path with metrics off (per event)")
    print(f"  guard ENABLED test  {guard / n * 1e9:6.1f} ns")
    print(f"  throttle hook call  {hook / n * 1e9:6.1f} ns")
    print(f"  share of one get    {guard / n / (1 / off_rate) * 100:.2f} %")


if __name__ == "__main__":
    main()
