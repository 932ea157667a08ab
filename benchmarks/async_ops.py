"""The ASGI benchmark's cache work alone: no HTTP, no Django request handling.

``benchmarks/asgi.py`` measures whole requests, where Django's ASGI handler costs most of the
time; this isolates what the cache backends differ in. For each backend of ``asgi.BACKENDS``, a
fresh process runs 50, then 300, concurrent asyncio tasks on one loop; each "request" is a new
task (so Django builds it a new backend object, as under ASGI) doing the benchmark view's cache
work -- three ``aget`` and one ``aset`` -- and then ``close()``. Reported: requests/s, and the
connections the process holds to the private redis-server this script starts.

Usage (the Python 3.12 venv of ``asgi.py``)::

    python benchmarks/async_ops.py [--requests 6000] [--concurrency 50 300]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from asgi import BACKENDS, caches_setting  # noqa: E402


def child(backend: str, redis_url: str, requests: int, concurrency: int) -> dict[str, Any]:
    """Run in a fresh process: the load on one loop; returns the measurements."""
    import django
    import redis
    from django.conf import settings

    settings.configure(
        SECRET_KEY="async-ops-benchmark",
        INSTALLED_APPS=[],
        CACHES=caches_setting(backend, redis_url, "ops-"),
    )
    django.setup()
    from django.core.cache import caches

    async def request(n: int) -> None:
        cache = caches["default"]
        a, b, c = await cache.aget("a"), await cache.aget("b"), await cache.aget("c")
        if a is None or b is None or c is None:
            await cache.aset_many({"a": {"n": 1}, "b": [1, 2, 3], "c": "x" * 200}, 300)
        await cache.aset(f"w:{n % 1000}", {"count": n, "text": "y" * 100}, 300)
        cache.close()

    async def worker(first: int, count: int) -> None:
        for n in range(first, first + count):
            await asyncio.create_task(request(n))  # a task per request: its own context

    async def load(total: int) -> float:
        share = total // concurrency
        started = time.perf_counter()
        await asyncio.gather(*(worker(w * share, share) for w in range(concurrency)))
        return share * concurrency / (time.perf_counter() - started)

    async def main() -> tuple[float, int]:
        await load(min(requests // 4, 1000) or concurrency)  # warm-up: connections, code paths
        rate = await load(requests)
        with redis.Redis.from_url(redis_url) as admin:
            connections = len(admin.client_list()) - 1
        return rate, connections

    rate, connections = asyncio.run(main())
    return {"rps": rate, "connections": connections}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    parser.add_argument("--requests", type=int, default=6000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[50, 300])
    parser.add_argument("--only", nargs="+", choices=list(BACKENDS), default=list(BACKENDS))
    args = parser.parse_args()
    if args.child:
        backend, url, requests, concurrency = args.child
        print(json.dumps(child(backend, url, int(requests), int(concurrency))))
        return 0

    from tests.servers import RedisServer

    server = RedisServer(["--maxclients", "10000"]).start()
    rows = []
    try:
        for backend in args.only:
            if importlib.util.find_spec(BACKENDS[backend][1]) is None:
                print(f"skipped {backend}: {BACKENDS[backend][1]} is not installed")
                continue
            for concurrency in args.concurrency:
                done = subprocess.run(
                    [
                        *(sys.executable, __file__, "--child", backend, server.url),
                        *(str(args.requests), str(concurrency)),
                    ],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                rows.append((backend, concurrency, json.loads(done.stdout.splitlines()[-1])))
    finally:
        server.close()
    print("| backend | tasks | requests/s (3 aget + 1 aset) | Redis connections |")
    print("| --- | ---: | ---: | ---: |")
    for backend, concurrency, row in rows:
        print(f"| {backend} | {concurrency} | {row['rps']:,.0f} | {row['connections']} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
