"""ASGI benchmark: one uvicorn worker, an async view doing 3 cache reads and 1 write.

For each backend -- ours, Django's built-in ``RedisCache``, django-redis and django-vcache (when
it is installed; it needs Python >= 3.12) -- a fresh uvicorn worker (one process) serves::

    async def view(request):
        a, b, c = await cache.aget("a"), await cache.aget("b"), await cache.aget("c")
        await cache.aset(f"w:{n % 1000}", {...}, 300)

and a bounded asyncio load generator on loopback keeps 50, then 300, HTTP/1.1 keep-alive
connections busy (each sends its next request when the previous answer arrived) for a fixed time
after a warm-up. Reported: answered requests/s (200s only), their p50 / p99 latency, errors
(other answers, failed connections), and the number of connections
the worker holds to Redis (``CLIENT LIST`` on the private redis-server this script starts,
sampled during the run; the peak is shown).

Every backend talks to the same private redis-server; nothing else is touched. The load
generator shares the machine's CPUs with the worker and Redis, so the numbers compare backends
with each other on one machine, not with other machines.

Usage (in a Python 3.12 venv with this checkout, uvicorn, django-redis and django-vcache)::

    python benchmarks/asgi.py [--seconds 8] [--warmup 2] [--concurrency 50 300]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

#: name -> (BACKEND, module that must be importable, OPTIONS). Defaults everywhere; ours once
#: more with ``ASYNC_MULTIPLEX`` off (its bounded pool of ``ASYNC_MAX_CONNECTIONS`` = 10) to show
#: what the shared pipelined connection (``connection/multiplex.py``) brings.
BACKENDS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "rediskit": ("django_rediskit.cache.RedisCache", "django_rediskit", {}),
    "rediskit, ASYNC_MULTIPLEX off": (
        "django_rediskit.cache.RedisCache",
        "django_rediskit",
        {"ASYNC_MULTIPLEX": False},
    ),
    "django RedisCache": ("django.core.cache.backends.redis.RedisCache", "redis", {}),
    "django-redis": ("django_redis.cache.RedisCache", "django_redis", {}),
    "django-vcache": ("django_vcache.backend.ValkeyCache", "django_vcache", {}),
}
#: a bound on what one run may send, whatever the speed (the load generator always stops)
MAX_REQUESTS_PER_RUN = 2_000_000
REQUEST = b"GET /view/ HTTP/1.1\r\nHost: bench\r\n\r\n"


# --- the worker ------------------------------------------------------------------------------


def caches_setting(backend: str, redis_url: str, prefix: str) -> dict[str, Any]:
    """``CACHES`` for ``backend`` on the private server, under a key prefix of its own."""
    return {
        "default": {
            "BACKEND": BACKENDS[backend][0],
            "LOCATION": redis_url,
            "KEY_PREFIX": prefix + "".join(c if c.isalnum() else "-" for c in backend),
            "OPTIONS": BACKENDS[backend][2],
        }
    }


def serve(backend: str, redis_url: str, port: int) -> None:
    """Run one uvicorn worker for ``backend`` (called in a child process)."""
    import django
    import uvicorn
    from django.conf import settings

    settings.configure(
        DEBUG=False,
        ALLOWED_HOSTS=["*"],
        SECRET_KEY="asgi-benchmark",
        ROOT_URLCONF=__name__,
        MIDDLEWARE=[],
        INSTALLED_APPS=[],
        LOGGING={  # a failed request's traceback on the worker's stderr
            "version": 1,
            "handlers": {"stderr": {"class": "logging.StreamHandler"}},
            "loggers": {"django.request": {"handlers": ["stderr"], "level": "ERROR"}},
        },
        CACHES=caches_setting(backend, redis_url, "asgi-"),
    )
    django.setup()
    from django.core.asgi import get_asgi_application

    uvicorn.run(
        get_asgi_application(),
        host="127.0.0.1",
        port=port,
        workers=1,
        log_level="warning",
        access_log=False,
        lifespan="off",
    )


_counter = 0


async def view(request: Any) -> Any:
    from django.core.cache import cache
    from django.http import HttpResponse

    global _counter
    _counter += 1
    a = await cache.aget("a")
    b = await cache.aget("b")
    c = await cache.aget("c")
    if a is None or b is None or c is None:
        await cache.aset_many({"a": {"n": 1}, "b": [1, 2, 3], "c": "x" * 200}, 300)
    await cache.aset(f"w:{_counter % 1000}", {"count": _counter, "text": "y" * 100}, 300)
    response = HttpResponse(b"ok")
    response["Content-Length"] = "2"  # else uvicorn sends it chunked
    return response


def _urlpatterns() -> list[Any]:
    from django.urls import path

    return [path("view/", view)]


def __getattr__(name: str) -> Any:  # ROOT_URLCONF reads urlpatterns lazily, after setup
    if name == "urlpatterns":
        return _urlpatterns()
    raise AttributeError(name)


# --- the load generator ----------------------------------------------------------------------


async def _client(port: int, deadline: float, latencies: list[float], errors: list[int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.perf_counter() < deadline and len(latencies) < MAX_REQUESTS_PER_RUN:
            start = time.perf_counter()
            writer.write(REQUEST)
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await asyncio.wait_for(reader.readexactly(length), 10)
            if head.startswith(b"HTTP/1.1 200"):
                latencies.append(time.perf_counter() - start)
            else:  # a 500 (an exception in the view): not counted as served
                errors.append(1)
    except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError):
        errors.append(1)
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def _load(port: int, concurrency: int, seconds: float) -> tuple[list[float], int, float]:
    latencies: list[float] = []
    errors: list[int] = []
    started = time.perf_counter()
    deadline = started + seconds
    await asyncio.gather(*(_client(port, deadline, latencies, errors) for _ in range(concurrency)))
    return latencies, len(errors), time.perf_counter() - started


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("the worker exited at start")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.1)
    raise RuntimeError("the worker did not start")


def _redis_connections(admin: Any) -> int:
    """Clients connected to the private server, except the admin connection asking."""
    return max(0, len(admin.client_list()) - 1)


def run_one(
    backend: str,
    redis_url: str,
    admin: Any,
    concurrencies: list[int],
    warmup: float,
    seconds: float,
) -> list[dict[str, Any]]:
    port = _free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            __file__,
            "--serve",
            backend,
            "--redis-url",
            redis_url,
            "--port",
            str(port),
        ]
    )
    rows = []
    try:
        _wait_for_port(port, process)
        for concurrency in concurrencies:
            asyncio.run(_load(port, concurrency, warmup))
            peak = [0]

            async def measured(concurrency: int = concurrency, peak: list[int] = peak) -> Any:
                task = asyncio.create_task(_sample_in_thread(admin, peak))
                try:
                    return await _load(port, concurrency, seconds)
                finally:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task

            latencies, errors, elapsed = asyncio.run(measured())
            peak[0] = max(peak[0], _redis_connections(admin))
            latencies.sort()
            rows.append(
                {
                    "backend": backend,
                    "concurrency": concurrency,
                    "requests": len(latencies),
                    "rps": len(latencies) / elapsed,
                    "p50_ms": 1000 * statistics.median(latencies) if latencies else float("nan"),
                    "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))]
                    if latencies
                    else float("nan"),
                    "errors": errors,
                    "redis_connections": peak[0],
                }
            )
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    deadline = time.monotonic() + 10
    while _redis_connections(admin) and time.monotonic() < deadline:
        time.sleep(0.1)
    return rows


async def _sample_in_thread(admin: Any, peak: list[int]) -> None:
    """CLIENT LIST every half second, off the load generator's loop (it blocks)."""
    loop = asyncio.get_running_loop()
    while True:
        count = await loop.run_in_executor(None, _redis_connections, admin)
        peak[0] = max(peak[0], count)
        await asyncio.sleep(0.5)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--redis-url", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[50, 300])
    parser.add_argument("--only", nargs="+", choices=list(BACKENDS), default=list(BACKENDS))
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.redis_url, args.port)
        return 0

    from tests.servers import RedisServer

    server = RedisServer(["--maxclients", "10000"]).start()
    admin = server.client()
    results: list[dict[str, Any]] = []
    try:
        for backend in args.only:
            module = BACKENDS[backend][1]
            if importlib.util.find_spec(module) is None:
                print(f"skipped {backend}: {module} is not installed in {sys.executable}")
                continue
            print(f"running {backend} ...", flush=True)
            results += run_one(
                backend, server.url, admin, args.concurrency, args.warmup, args.seconds
            )
    finally:
        admin.close()
        server.stop()
    import django

    redis_version = (
        subprocess.run([server.binary, "--version"], capture_output=True, text=True, check=False)
        .stdout.split()[2]
        .removeprefix("v=")
    )
    print()
    print(
        f"{platform.node()} | {platform.processor() or platform.machine()} | "
        f"{os.cpu_count()} CPUs | Python {platform.python_version()} | Django "
        f"{django.__version__} | redis-server {redis_version} | "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} | "
        f"{args.seconds:g} s per run after {args.warmup:g} s warm-up | load average "
        f"{os.getloadavg()[0]:.1f} (other processes share the CPUs)"
    )
    print()
    print("| backend | clients | req/s | p50 ms | p99 ms | errors | Redis connections |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for row in results:
        print(
            f"| {row['backend']} | {row['concurrency']} | {row['rps']:,.0f} | "
            f"{row['p50_ms']:.1f} | {row['p99_ms']:.1f} | {row['errors']} | "
            f"{row['redis_connections']} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
