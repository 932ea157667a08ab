"""HTTP load on the example shop served by gunicorn (4 workers) on a private Redis.

    .venv/bin/python benchmarks/load.py [--topology standalone|cluster|sentinel] [--json FILE]

What it measures and checks, in this order, against one gunicorn master and its workers:

1. **Throughput**: requests/s and p50/p99 latency for a product page served from its cached
   fragment (``/product/1/``), the same page computed from the database on every request
   (``/product/1/uncached/``) and the throttled, cached API (``/api/products/``: anon throttle
   on every request). Target: the cached page serves >= 3x the uncached one.
2. **Exactness**: ``/api/limited/`` (limit L per hour) gets 20*L requests from 64 concurrent
   clients over HTTP; exactly L are admitted (200), the rest are 429.
3. **Outage**: under load, the Redis server is stopped for 5 s and started again (standalone), or
   the primary is killed and a replica promoted (``--topology sentinel``/``cluster``). Counted per
   phase: no HTTP 500, cached pages keep answering (from the database), the fail-open API keeps
   answering, the fail-closed ``/api/limited/`` answers 503 + Retry-After; afterwards the site
   caches again with the same worker processes (no restart).

The load generator is a bounded asyncio HTTP/1.1 client (one connection per request, as
gunicorn's sync workers close each connection): ``--concurrency`` clients, each sending its next
request when the previous one is answered. The script exits 1 if a check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "example_project"
sys.path.insert(0, str(ROOT))  # tests.servers: the suite's private servers

from tests.servers import RedisCluster, RedisServer, SentinelGroup, free_port  # noqa: E402

HOST = "127.0.0.1"
CACHED = "/product/1/"
UNCACHED = "/product/1/uncached/"
API = "/api/products/"
LIMITED = "/api/limited/"


# --- the load generator --------------------------------------------------------------------------


@dataclass
class Sample:
    path: str
    status: int  # 0: no HTTP answer (refused, reset, timed out)
    started: float
    seconds: float


async def fetch(port: int, path: str, timeout: float = 30.0) -> Sample:
    started = time.perf_counter()
    status = 0
    writer = None
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST, port), timeout)
        request = f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n"
        writer.write(request.encode())
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
        status = int(head.split(b" ", 2)[1])
        await asyncio.wait_for(reader.read(), timeout)  # to EOF: the whole body
    except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError):
        pass
    finally:
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
    return Sample(path, status, started, time.perf_counter() - started)


async def timed_load(
    port: int, paths: list[str], seconds: float, concurrency: int
) -> tuple[list[Sample], float]:
    """``concurrency`` clients cycling through ``paths`` for ``seconds``."""
    deadline = time.perf_counter() + seconds
    samples: list[Sample] = []

    async def client(number: int) -> None:
        turn = number
        while time.perf_counter() < deadline:
            samples.append(await fetch(port, paths[turn % len(paths)]))
            turn += 1

    started = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(concurrency)))
    return samples, time.perf_counter() - started


async def counted_load(port: int, path: str, total: int, concurrency: int) -> list[Sample]:
    """Exactly ``total`` requests, ``concurrency`` in flight at once."""
    queue: asyncio.Queue[int] = asyncio.Queue()
    for number in range(total):
        queue.put_nowait(number)
    samples: list[Sample] = []

    async def client() -> None:
        while True:
            try:
                queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            samples.append(await fetch(port, path))

    await asyncio.gather(*(client() for _ in range(concurrency)))
    return samples


def percentile(values: list[float], share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def summary(samples: list[Sample], elapsed: float) -> dict[str, Any]:
    ok = [s.seconds for s in samples if s.status == 200]
    return {
        "requests": len(samples),
        "rps": round(len(samples) / elapsed, 1),
        "p50_ms": round(1000 * percentile(ok, 0.50), 2),
        "p99_ms": round(1000 * percentile(ok, 0.99), 2),
        "status": dict(sorted(Counter(str(s.status) for s in samples).items())),
    }


# --- the site ------------------------------------------------------------------------------------


@dataclass
class Site:
    port: int
    process: subprocess.Popen[bytes]
    env: dict[str, str] = field(default_factory=dict)

    def workers(self) -> list[int]:
        path = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return sorted(int(pid) for pid in path.read_text().split())


def _manage(env: dict[str, str], *args: str) -> None:
    subprocess.run(
        [sys.executable, "manage.py", *args], cwd=EXAMPLE, env=env, check=True, timeout=300
    )


@contextlib.contextmanager
def gunicorn(redis_url: str, workers: int, limit: int, folder: Path) -> Iterator[Site]:
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "DATABASE_URL": f"sqlite:///{folder / 'shop.sqlite3'}",
        "DEMO_STATE_DIR": str(folder / "state"),
        "SECRET_KEY": secrets.token_urlsafe(50),
        "DEBUG": "0",
        "PYTHONPATH": str(EXAMPLE),
        # The throttles run on every API request, at rates no load run reaches: the cost of the
        # decision is measured, not the share of 429s. /api/limited/ keeps its exact limit.
        "SHOP_ANON_RATE": "10000000/min",
        "SHOP_USER_RATE": "10000000/min",
        "SHOP_LIMITED_RATE": f"{limit}/h",
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    _manage(env, "migrate", "--verbosity", "0")
    _manage(env, "seed_shop", "--reviews", "40")
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "example.wsgi:application",
            "--bind",
            f"{HOST}:{port}",
            "--workers",
            str(workers),
            "--log-level",
            "warning",
            "--timeout",
            "60",
        ],
        cwd=EXAMPLE,
        env=env,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(OSError), socket.create_connection((HOST, port), 0.5):
                break
            if time.monotonic() > deadline or process.poll() is not None:
                raise SystemExit("gunicorn did not start")
            time.sleep(0.2)
        site = Site(port, process, env)
        while len(site.workers()) < workers:
            time.sleep(0.1)
        yield site
    finally:
        process.terminate()
        process.wait(30)


# --- the topologies ------------------------------------------------------------------------------


class Topology:
    """A private Redis and how to take it away under load."""

    kind = "standalone"
    disruption = "redis-server stopped for 5 s, then started again"

    def __init__(self) -> None:
        self.server = RedisServer(mark=False)

    def start(self) -> str:
        self.server.start()
        return self.server.url

    def disrupt(self, seconds: float) -> None:
        self.server.stop()
        time.sleep(seconds)
        self.server.start()

    def keys(self) -> int:
        client = self.server.client()
        try:
            return int(client.dbsize())
        finally:
            client.close()

    def close(self) -> None:
        self.server.close()


class ClusterTopology(Topology):
    kind = "cluster"
    disruption = "a primary SIGKILLed; its replica promoted by the cluster"

    def __init__(self) -> None:
        self.cluster = RedisCluster()

    def start(self) -> str:
        self.cluster.start()
        return self.cluster.url

    def disrupt(self, seconds: float) -> None:
        self.cluster.kill_primary()

    def keys(self) -> int:
        total = 0
        for node in self.cluster.live():
            client = node.client()
            try:
                if client.info("replication")["role"] == "master":
                    total += int(client.dbsize())
            finally:
                client.close()
        return total

    def close(self) -> None:
        self.cluster.close()


class SentinelTopology(Topology):
    kind = "sentinel"
    disruption = "the primary SIGKILLed; Sentinel promotes the replica"

    def __init__(self) -> None:
        self.group = SentinelGroup()

    def start(self) -> str:
        self.group.start()
        return self.group.url

    def disrupt(self, seconds: float) -> None:
        self.group.kill_primary()

    def keys(self) -> int:
        client = self.group.primary().client()
        try:
            return int(client.dbsize())
        finally:
            client.close()

    def close(self) -> None:
        self.group.close()


TOPOLOGIES: dict[str, Callable[[], Topology]] = {
    "standalone": Topology,
    "cluster": ClusterTopology,
    "sentinel": SentinelTopology,
}


# --- the runs ------------------------------------------------------------------------------------


async def throughput(site: Site, seconds: float, concurrency: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for path in (CACHED, UNCACHED, API, CACHED, UNCACHED, API):  # twice, interleaved
        await fetch(site.port, path)  # warm: the cached page is cached
        samples, elapsed = await timed_load(site.port, [path], seconds / 2, concurrency)
        run = summary(samples, elapsed)
        if path in results:  # the two halves: keep the sum of requests, the median latency
            first = results[path]
            run = {
                "requests": first["requests"] + run["requests"],
                "rps": round((first["rps"] + run["rps"]) / 2, 1),
                "p50_ms": round((first["p50_ms"] + run["p50_ms"]) / 2, 2),
                "p99_ms": max(first["p99_ms"], run["p99_ms"]),
                "status": dict(Counter(first["status"]) + Counter(run["status"])),
            }
        results[path] = run
    return results


async def exactness(site: Site, limit: int, concurrency: int) -> dict[str, Any]:
    samples = await counted_load(site.port, LIMITED, 20 * limit, concurrency)
    codes = Counter(s.status for s in samples)
    return {
        "limit": limit,
        "sent": len(samples),
        "concurrency": concurrency,
        "admitted": codes.get(200, 0),
        "refused_429": codes.get(429, 0),
        "other": {str(k): v for k, v in codes.items() if k not in (200, 429)},
        "exact": codes.get(200, 0) == limit and codes.get(429, 0) == 19 * limit,
    }


async def outage(
    site: Site, topology: Topology, concurrency: int, pause: float, before: float, after: float
) -> dict[str, Any]:
    paths = [CACHED, "/shop/", API, LIMITED]
    workers_before = site.workers()
    marks: dict[str, float] = {}

    async def disrupt() -> None:
        await asyncio.sleep(before)
        marks["down"] = time.perf_counter()
        await asyncio.to_thread(topology.disrupt, pause)
        marks["up"] = time.perf_counter()

    load = asyncio.create_task(timed_load(site.port, paths, before + pause + after, concurrency))
    await disrupt()
    samples, _ = await load
    # in case the disruption outlasted the load (a slow failover): a little more, after it
    if time.perf_counter() - marks["up"] < 2:
        extra, _ = await timed_load(site.port, paths, 3, concurrency)
        samples += extra

    def phase(sample: Sample) -> str:
        ended = sample.started + sample.seconds
        if ended < marks["down"]:
            return "before"
        if sample.started >= marks["down"] and ended <= marks["up"]:
            return "during"
        if sample.started >= marks["up"]:
            return "after"
        return "edge"  # in flight when Redis went away or came back: either answer is right

    table: dict[str, dict[str, dict[str, int]]] = {}
    for sample in samples:
        cell = table.setdefault(phase(sample), {}).setdefault(sample.path, {})
        cell[str(sample.status)] = cell.get(str(sample.status), 0) + 1
    # recovered: pages are cached again (Redis got keys back) with the same worker processes
    await fetch(site.port, "/shop/")
    await fetch(site.port, CACHED)
    keys_after = await asyncio.to_thread(topology.keys)
    # The fail-closed endpoint answers 503 until the circuit breaker's probe succeeds
    # (RECOVERY_TIME after the server is back): how long that took.
    answered = [
        s.started - marks["up"]
        for s in samples
        if s.path == LIMITED and s.started >= marks["up"] and s.status in (200, 429)
    ]
    errors_500 = sum(s.status >= 500 and s.status != 503 for s in samples)
    no_answer = sum(s.status == 0 for s in samples)
    return {
        "disruption": topology.disruption,
        "disrupted_seconds": round(marks["up"] - marks["down"], 2),
        "phases": table,
        "http_500": errors_500,
        "no_answer": no_answer,
        "limited_recovered_after_s": round(min(answered), 2) if answered else None,
        "workers_unchanged": site.workers() == workers_before,
        "keys_after": keys_after,
    }


def check(results: dict[str, Any]) -> list[str]:
    failures: list[str] = []
    speed = results["throughput"]
    ratio = speed[CACHED]["rps"] / max(speed[UNCACHED]["rps"], 0.1)
    results["cached_vs_uncached"] = round(ratio, 2)
    if ratio < 3:
        failures.append(f"cached page only {ratio:.2f}x the uncached one (target 3x)")
    for path, run in speed.items():
        if set(run["status"]) != {"200"}:
            failures.append(f"{path}: non-200 answers under load: {run['status']}")
    if not results["exactness"]["exact"]:
        failures.append(f"throttle not exact: {results['exactness']}")
    down = results["outage"]
    if down["http_500"] or down["no_answer"]:
        failures.append(f"outage: {down['http_500']} HTTP 5xx, {down['no_answer']} unanswered")
    during = down["phases"].get("during", {})
    for path in (CACHED, "/shop/", API):
        if set(during.get(path, {"none": 1})) != {"200"}:
            failures.append(f"outage: {path} answered {during.get(path)} (expected only 200)")
    limited = set(during.get(LIMITED, {}))
    if results["topology"] == "standalone" and limited != {"503"}:
        failures.append(f"outage: /api/limited/ answered {limited} (fail closed: only 503)")
    if not limited <= {"200", "429", "503"}:
        failures.append(f"outage: /api/limited/ answered {limited}")
    after = down["phases"].get("after", {})
    for path in (CACHED, "/shop/", API):
        if set(after.get(path, {"none": 1})) != {"200"}:
            failures.append(f"after the outage: {path} answered {after.get(path)}")
    if down["limited_recovered_after_s"] is None:
        failures.append("after the outage: /api/limited/ never admitted or refused again")
    if not down["workers_unchanged"]:
        failures.append("gunicorn workers were replaced during the outage")
    if down["keys_after"] <= 0:
        failures.append("nothing was cached again after the outage")
    return failures


def machine() -> dict[str, str]:
    import django
    import gunicorn  # type: ignore[import-untyped]
    import redis

    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    server = subprocess.run(
        [RedisServer(mark=False).binary, "--version"], capture_output=True, text=True
    ).stdout.split()
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpu": f"{cpu}, {os.cpu_count()} vCPU",
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "django": django.get_version(),
        "gunicorn": gunicorn.__version__,
        "redis-py": redis.__version__,
        "redis-server": next((w[2:] for w in server if w.startswith("v=")), "?"),
        "load average": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def print_report(results: dict[str, Any]) -> None:
    print(f"\n== {results['topology']}: gunicorn {results['workers']} workers ==")
    print(f"{'page':<24}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}  status")
    for path, run in results["throughput"].items():
        print(f"{path:<24}{run['rps']:>9}{run['p50_ms']:>9}{run['p99_ms']:>9}  {run['status']}")
    print(f"cached / uncached: {results['cached_vs_uncached']}x")
    exact = results["exactness"]
    print(
        f"exactness: limit {exact['limit']}, {exact['sent']} requests from "
        f"{exact['concurrency']} clients: {exact['admitted']} admitted, "
        f"{exact['refused_429']} refused, other {exact['other']} -> "
        f"{'EXACT' if exact['exact'] else 'NOT EXACT'}"
    )
    down = results["outage"]
    print(f"outage ({down['disruption']}; {down['disrupted_seconds']} s):")
    for name in ("before", "edge", "during", "after"):
        for path, codes in down["phases"].get(name, {}).items():
            print(f"  {name:<7} {path:<16} {codes}")
    print(
        f"  errors: HTTP 500 = {down['http_500']}, unanswered = {down['no_answer']}; "
        f"workers unchanged: {down['workers_unchanged']}; keys cached after: {down['keys_after']}"
    )
    print(
        f"  /api/limited/ decided again {down['limited_recovered_after_s']} s after Redis was back"
    )


async def run(args: argparse.Namespace, topology: Topology, folder: Path) -> dict[str, Any]:
    url = await asyncio.to_thread(topology.start)
    with gunicorn(url, args.workers, args.limit, folder) as site:
        results: dict[str, Any] = {"topology": topology.kind, "workers": args.workers}
        results["throughput"] = await throughput(site, args.seconds, args.concurrency)
        results["exactness"] = await exactness(site, args.limit, 64)
        results["outage"] = await outage(
            site, topology, args.concurrency, args.pause, before=3, after=6
        )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--topology", choices=sorted(TOPOLOGIES), default="standalone")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=32, help="clients in the load runs")
    parser.add_argument("--seconds", type=float, default=10, help="per page in the load runs")
    parser.add_argument("--limit", type=int, default=50, help="L of the exactness check")
    parser.add_argument("--pause", type=float, default=5, help="seconds Redis is stopped")
    parser.add_argument("--json", type=Path, help="write the results here (benchmarks/charts.py)")
    args = parser.parse_args()
    if args.workers < 1 or args.concurrency < 1 or args.limit < 1 or args.seconds <= 0:
        parser.error("--workers, --concurrency, --limit and --seconds must be positive")
    topology = TOPOLOGIES[args.topology]()
    try:
        with tempfile.TemporaryDirectory(prefix="rediskit-load-") as folder:
            results = asyncio.run(run(args, topology, Path(folder)))
    finally:
        topology.close()
    results["machine"] = machine()
    failures = check(results)
    results["failures"] = failures
    print_report(results)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    for failure in failures:
        print(f"FAIL: {failure}")
    print("all checks passed" if not failures else f"{len(failures)} check(s) failed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
