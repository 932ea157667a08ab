"""Cache benchmark: ops/s through Django's cache API, ours vs django-redis vs Django's RedisCache.

All three backends and the raw redis-py floor talk to ONE private redis-server started here, in
interleaved rounds (every round runs every operation on every target, in a shuffled order), so a
noisy neighbour slows all of them alike. Per-round ratios are taken inside one round and the
median over rounds is reported with its spread.

The client and the server are pinned to one CPU: on a small VM a wake-up across CPUs costs more
than the whole command, and it lands on whichever side happens to be unlucky.

Two floors send the same commands with redis-py directly (GET, SET PX, SET NX PX, MGET, a
pipeline of SET PX, INCRBY, UNLINK): "raw" on ready-made bytes, the round trip alone, and
"raw+pickle", which adds only pickling, the least work that caches Python objects. The targets of
issue #2 are checked against "raw+pickle"; the script exits with status 1 when one is missed.

Usage: ``python benchmarks/run.py [--rounds N] [--cpu N] [--batch-seconds S] [--json FILE]``
(``make bench`` runs it with the defaults).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import pickle
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's django_rediskit and tests.servers, not an install

import django  # noqa: E402
import redis  # noqa: E402
from django.conf import settings  # noqa: E402

from tests.servers import RedisServer  # noqa: E402

TIMEOUT = 300  # seconds, Django's default; every write below carries it as PX
BACKENDS = {
    "rediskit": "django_rediskit.cache.RedisCache",
    "django-redis": "django_redis.cache.RedisCache",
    "django": "django.core.cache.backends.redis.RedisCache",
}
#: "raw" is redis-py on bytes; "raw+pickle" adds pickling: the floor the targets are set against.
FLOOR = "raw+pickle"
TARGETS = ("raw", FLOOR, *BACKENDS)
SMALL = "x" * 100
LARGE = "y" * 10_000
MANY = 100

#: Operation -> minimum ratio to the floor that this backend must reach (from issue #2), or
#: None for rows shown for information only.
RAW_TARGETS: dict[str, float | None] = {
    "get (hit)": 0.93,
    "get (miss)": 0.93,
    "set 100 B": 0.93,
    "set 10 KB": 0.93,
    "get_many(100)": 0.90,
    "set_many(100)": 0.90,
    "incr": 0.90,
    "delete": 0.93,
    "add": 0.93,
    "get_or_set (hit)": 0.90,
    "get_or_set (miss)": None,
}
#: Rows where being at least as fast as django-redis is a target (all but the informational one).
DJANGO_REDIS_TARGETS = {op for op, floor in RAW_TARGETS.items() if floor is not None}

#: A prepared operation: ``setup(n, tag)`` is untimed and returns the timed ``run()``.
Prepare = Callable[[int, str], Callable[[], None]]


@dataclass
class Result:
    ops_per_s: dict[tuple[str, str], list[float]]

    def median(self, op: str, target: str) -> float:
        return statistics.median(self.ops_per_s[op, target])

    def spread(self, op: str, target: str) -> float:
        """Half the interquartile range as a fraction of the median (0.02 = ±2 %)."""
        values = sorted(self.ops_per_s[op, target])
        if len(values) < 4:
            return (values[-1] - values[0]) / 2 / statistics.median(values)
        q1, _, q3 = statistics.quantiles(values, n=4)
        return (q3 - q1) / 2 / statistics.median(values)

    def ratios(self, op: str, target: str, base: str) -> list[float]:
        return [
            a / b for a, b in zip(self.ops_per_s[op, target], self.ops_per_s[op, base], strict=True)
        ]


# --- setup -----------------------------------------------------------------------------------


def least_busy_cpu(sample: float = 0.5) -> int:
    """The CPU that was idle the most over ``sample`` seconds (other work shares this box)."""

    def idle() -> dict[int, int]:
        found: dict[int, int] = {}
        with open("/proc/stat") as stat:
            for line in stat:
                name, *fields = line.split()
                if name.startswith("cpu") and name != "cpu":
                    found[int(name[3:])] = int(fields[3]) + int(fields[4])
        return found

    allowed = os.sched_getaffinity(0)
    before = idle()
    time.sleep(sample)
    after = idle()
    return max(allowed, key=lambda cpu: after.get(cpu, 0) - before.get(cpu, 0))


def configure_django(url: str) -> None:
    settings.configure(
        SECRET_KEY="benchmark-secret-key",
        INSTALLED_APPS=[],
        CACHES={
            name: {"BACKEND": path, "LOCATION": url, "KEY_PREFIX": f"bench-{name}"}
            for name, path in BACKENDS.items()
        },
    )
    django.setup()


def machine_description(cpu: int, server: RedisServer) -> dict[str, str]:
    import django_redis

    model = "unknown"
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    try:
        import hiredis

        parser = f"hiredis {hiredis.__version__}"
    except ImportError:
        parser = "pure-Python parser"
    info = server.client().info("server")
    return {
        "cpu": f"{model}, {os.cpu_count()} vCPU ({platform.machine()}), client+server pinned "
        f"to CPU {cpu}",
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "django": django.get_version(),
        "django-redis": ".".join(map(str, django_redis.VERSION)),
        "redis-py": f"{redis.__version__} ({parser})",
        "redis-server": f"{info['redis_version']} over TCP loopback",
        "load average": " ".join(f"{load:.2f}" for load in os.getloadavg()),
    }


# --- the operations --------------------------------------------------------------------------


def repeat(call: Callable[[], Any]) -> Prepare:
    """``n`` calls of ``call`` on the same key(s)."""

    def prepare(n: int, tag: str) -> Callable[[], None]:
        def run() -> None:
            for _ in range(n):
                call()

        return run

    return prepare


def each_key(
    make_keys: Callable[..., list[str]], present: bool, call: Callable[[str], Any]
) -> Prepare:
    """One call per key on ``n`` fresh keys that exist (or not) before the timed batch starts."""

    def prepare(n: int, tag: str) -> Callable[[], None]:
        names = make_keys(n, tag, present=present)

        def run() -> None:
            for key in names:
                call(key)

        return run

    return prepare


def cache_ops(cache: Any) -> dict[str, Prepare]:
    """Each operation through the Django cache API of one backend."""
    cache.set("hit", SMALL)
    cache.set("counter", 0, None)
    cache.set("gos-hit", SMALL)
    many_keys = [f"many:{i}" for i in range(MANY)]
    many_data = {key: SMALL for key in many_keys}
    cache.set_many(many_data)
    get, set_, add, delete = cache.get, cache.set, cache.add, cache.delete
    get_or_set, incr = cache.get_or_set, cache.incr

    def produce() -> str:
        return SMALL

    def keys(n: int, tag: str, *, present: bool) -> list[str]:
        names = [f"{tag}:{i}" for i in range(n)]
        if present:
            cache.set_many(dict.fromkeys(names, SMALL))
        else:
            cache.delete_many(names)
        return names

    return {
        "get (hit)": repeat(lambda: get("hit")),
        "get (miss)": repeat(lambda: get("absent")),
        "set 100 B": repeat(lambda: set_("small", SMALL)),
        "set 10 KB": repeat(lambda: set_("large", LARGE)),
        "get_many(100)": repeat(lambda: cache.get_many(many_keys)),
        "set_many(100)": repeat(lambda: cache.set_many(many_data)),
        "incr": repeat(lambda: incr("counter")),
        "delete": each_key(keys, True, delete),
        "add": each_key(keys, False, lambda key: add(key, SMALL)),
        "get_or_set (hit)": repeat(lambda: get_or_set("gos-hit", produce)),
        "get_or_set (miss)": each_key(keys, False, lambda key: get_or_set(key, produce)),
    }


def raw_ops(client: redis.Redis, *, pickled: bool) -> dict[str, Prepare]:
    """The same commands sent directly with redis-py: the floor no backend can beat.

    ``pickled=False`` sends ready-made bytes and returns bytes (the round trip alone);
    ``pickled=True`` adds only ``pickle.dumps``/``loads`` and building the ``get_many`` dict, the
    least work that caches Python objects.
    """
    px, ns = TIMEOUT * 1000, "rawp" if pickled else "raw"
    small: Any
    large: Any
    get: Callable[[str], Any]
    get_many: Callable[[list[str]], Any]
    if pickled:
        small, large = SMALL, LARGE

        def dumps(value: Any) -> bytes:
            return pickle.dumps(value, pickle.HIGHEST_PROTOCOL)

        def get(key: str) -> Any:
            raw: Any = client.get(key)
            return None if raw is None else pickle.loads(raw)

        def get_many(keys: list[str]) -> dict[str, Any]:
            found: list[Any] = client.mget(keys)
            return {
                key: pickle.loads(raw)
                for key, raw in zip(keys, found, strict=True)
                if raw is not None
            }
    else:
        small, large = SMALL.encode(), LARGE.encode()

        def dumps(value: Any) -> bytes:
            return value  # type: ignore[no-any-return]

        get, get_many = client.get, client.mget

    hit, absent, counter = f"{ns}:hit", f"{ns}:absent", f"{ns}:counter"
    small_key, large_key = f"{ns}:small", f"{ns}:large"
    client.set(hit, dumps(small), px=px)
    client.set(counter, 0)
    many_keys = [f"{ns}:many:{i}" for i in range(MANY)]
    client.mset(dict.fromkeys(many_keys, dumps(small)))

    def set_(key: str, value: Any) -> None:
        client.set(key, dumps(value), px=px)

    def add(key: str) -> None:
        client.set(key, dumps(small), nx=True, px=px)

    def set_many() -> None:
        pipe = client.pipeline(transaction=False)
        for key in many_keys:
            pipe.set(key, dumps(small), px=px)
        pipe.execute()

    def get_or_add(key: str) -> None:
        if get(key) is None:
            add(key)

    def keys(n: int, tag: str, *, present: bool) -> list[str]:
        names = [f"{ns}:{tag}:{i}" for i in range(n)]
        if present:
            client.mset(dict.fromkeys(names, dumps(small)))
        else:
            client.unlink(*names)
        return names

    return {
        "get (hit)": repeat(lambda: get(hit)),
        "get (miss)": repeat(lambda: get(absent)),
        "set 100 B": repeat(lambda: set_(small_key, small)),
        "set 10 KB": repeat(lambda: set_(large_key, large)),
        "get_many(100)": repeat(lambda: get_many(many_keys)),
        "set_many(100)": repeat(set_many),
        "incr": repeat(lambda: client.incrby(counter, 1)),
        "delete": each_key(keys, True, client.unlink),
        "add": each_key(keys, False, add),
        "get_or_set (hit)": repeat(lambda: get(hit)),
        "get_or_set (miss)": each_key(keys, False, get_or_add),
    }


# --- measuring -------------------------------------------------------------------------------


def timed(prepare: Prepare, n: int, tag: str) -> float:
    """Seconds for one batch of ``n`` calls, with the collector off as ``timeit`` does."""
    run = prepare(n, tag)
    gc.collect()
    gc.disable()
    try:
        start = time.perf_counter()
        run()
        return time.perf_counter() - start
    finally:
        gc.enable()


def calibrate(ops: dict[str, dict[str, Prepare]], batch_seconds: float) -> dict[str, int]:
    """Batch size per operation, sized on the slowest target so no batch is trivially short."""
    sizes: dict[str, int] = {}
    for op in RAW_TARGETS:
        slowest = max(timed(ops[target][op], 50, "cal") / 50 for target in TARGETS)
        sizes[op] = max(20, min(20_000, int(batch_seconds / slowest)))
    return sizes


def measure(
    ops: dict[str, dict[str, Prepare]], sizes: dict[str, int], rounds: int, seed: int
) -> Result:
    shuffle = random.Random(seed).shuffle
    result = Result({(op, target): [] for op in RAW_TARGETS for target in TARGETS})
    for round_no in range(rounds):
        order = list(TARGETS)
        for op_no, op in enumerate(RAW_TARGETS):
            shuffle(order)
            for target in order:
                n = sizes[op]
                seconds = timed(ops[target][op], n, f"r{round_no}o{op_no}")
                result.ops_per_s[op, target].append(n / seconds)
        print(f"  round {round_no + 1}/{rounds} done", file=sys.stderr, flush=True)
    return result


# --- reporting -------------------------------------------------------------------------------


def ratio_cell(values: list[float]) -> str:
    """Median and interquartile range: a neighbour's burst hits single batches, not quartiles."""
    q1, median, q3 = statistics.quantiles(values, n=4) if len(values) > 1 else values * 3
    return f"{median:.2f} ({q1:.2f}-{q3:.2f})"


def markdown(result: Result) -> tuple[str, list[str]]:
    """The two results tables (ops/s, ratios) and the list of missed targets."""
    rate_lines = [
        "| operation | " + " | ".join(f"{target} ops/s" for target in TARGETS) + " |",
        "|---" * (len(TARGETS) + 1) + "|",
    ]
    ratio_lines = [
        f"| operation | rediskit / {FLOOR} | django-redis / {FLOOR} | django / {FLOOR} "
        "| rediskit / django-redis | rediskit / raw |",
        "|---" * 6 + "|",
    ]
    misses: list[str] = []
    for op, floor in RAW_TARGETS.items():
        name = op if floor is not None else f"{op} †"
        rates = (
            f"{result.median(op, target):,.0f} ±{result.spread(op, target) * 100:.0f}%"
            for target in TARGETS
        )
        rate_lines.append(f"| {name} | " + " | ".join(rates) + " |")
        vs_floor = result.ratios(op, "rediskit", FLOOR)
        vs_peer = result.ratios(op, "rediskit", "django-redis")
        ratios = [
            vs_floor,
            result.ratios(op, "django-redis", FLOOR),
            result.ratios(op, "django", FLOOR),
            vs_peer,
            result.ratios(op, "rediskit", "raw"),
        ]
        ratio_lines.append(f"| {name} | " + " | ".join(map(ratio_cell, ratios)) + " |")
        if floor is not None and statistics.median(vs_floor) < floor:
            misses.append(f"{op}: rediskit / {FLOOR} {statistics.median(vs_floor):.3f} < {floor}")
        if op in DJANGO_REDIS_TARGETS and statistics.median(vs_peer) < 1.0:
            misses.append(f"{op}: rediskit / django-redis {statistics.median(vs_peer):.3f} < 1.0")
    return "\n".join(rate_lines) + "\n\n" + "\n".join(ratio_lines), misses


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=30, help="interleaved rounds (default 30)")
    parser.add_argument("--cpu", type=int, help="CPU to pin to (default: the least busy one)")
    parser.add_argument(
        "--batch-seconds", type=float, default=0.03, help="target length of one timed batch"
    )
    parser.add_argument("--seed", type=int, default=2, help="seed of the per-round shuffles")
    parser.add_argument("--json", type=Path, help="also write raw per-round numbers here")
    args = parser.parse_args()

    cpu = least_busy_cpu() if args.cpu is None else args.cpu
    os.sched_setaffinity(0, {cpu})  # redis-server, started next, inherits the pinning
    server = RedisServer().start()
    try:
        configure_django(server.url)
        from django.core.cache import caches

        machine = machine_description(cpu, server)
        client = redis.Redis.from_url(server.url)
        ops = {
            "raw": raw_ops(client, pickled=False),
            FLOOR: raw_ops(client, pickled=True),
            **{name: cache_ops(caches[name]) for name in BACKENDS},
        }
        print("calibrating and warming up...", file=sys.stderr, flush=True)
        sizes = calibrate(ops, args.batch_seconds)
        result = measure(ops, sizes, args.rounds, args.seed)
        table, misses = markdown(result)
    finally:
        server.close()

    print("## Machine\n")
    for name, value in machine.items():
        print(f"- {name}: {value}")
    print(
        f"\n## Results ({args.rounds} interleaved rounds; median ops/s ± half the IQR; ratios "
        "are medians of per-round ratios with their interquartile range)\n"
    )
    print(table)
    print("\n† information only: no target (see docs/benchmarks.md).")
    print("\n## Targets (issue #2)\n")
    print("\n".join(f"- MISSED {miss}" for miss in misses) or "- all met")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "machine": machine,
                    "sizes": sizes,
                    "ops_per_s": {
                        f"{op} | {target}": values
                        for (op, target), values in result.ops_per_s.items()
                    },
                },
                indent=2,
            )
        )
    return 1 if misses else 0


if __name__ == "__main__":
    sys.exit(main())
