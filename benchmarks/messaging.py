"""Queue benchmark: rediskit's Streams queue beside RQ and dramatiq, on one private Redis.

    python benchmarks/messaging.py [--messages 5000] [--latency 1000] [--rounds 3]

For each contender, the same no-op job, one consumer (one thread), the same server:

- enqueue throughput (messages/s): one call per message (batch 1) and 100 per call (batch 100;
  RQ's ``enqueue_many`` pipeline; dramatiq has no bulk API, so its row repeats one-by-one sends);
- consume throughput (messages/s) of a pre-filled queue, reading 1 or 100 messages per call
  (RQ dequeues one job at a time whatever the setting; dramatiq prefetches for its thread);
- end-to-end latency p50 / p99 (ms) from enqueue to the handler, at a paced 100 messages/s
  (``--rate``), below every contender's capacity, so it measures waiting, not a backlog.

RQ and dramatiq are optional (``pip install rq "dramatiq[redis]"``): a contender that is not
installed is left out and the report says so. The guarantees differ and the numbers should be
read with that: rediskit acknowledges after the handler and reclaims a dead worker's messages
(at-least-once); RQ's SimpleWorker loses a job whose worker dies mid-job unless its own
registry cleanup runs; dramatiq's Redis broker redelivers after its heartbeat timeout.
Starts its own redis-server (nothing persisted) and never touches another server.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

LATENCIES: list[float] = []
#: messages per second of the latency runs (``--rate``): below every contender's capacity, so
#: the numbers measure how fast a worker notices a message, not a backlog
RATE = [100.0]
DONE = {"count": 0}


def jobs() -> Any:
    """This file imported as a module: RQ refuses job functions from ``__main__``, so every
    contender uses ``benchmarks.messaging.noop`` and its counters."""
    import benchmarks.messaging as module

    return module


def configure(url: str) -> None:
    import django
    from django.conf import settings

    settings.configure(
        SECRET_KEY="bench",
        INSTALLED_APPS=["django_rediskit"],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
        CACHES={
            "default": {
                "BACKEND": "django_rediskit.cache.RedisCache",
                "LOCATION": url,
                "KEY_PREFIX": "bench",
            }
        },
        USE_TZ=True,
    )
    django.setup()


def noop(sent: float = 0.0) -> None:
    """The job: record the latency when the payload carries a send time."""
    if sent:
        LATENCIES.append(time.perf_counter() - sent)
    jobs().DONE["count"] += 1


def rate(count: int, run: Callable[[], None]) -> float:
    started = time.perf_counter()
    run()
    return count / (time.perf_counter() - started)


def paced(send: Callable[[float], None], count: int, per_second: float) -> threading.Thread:
    """A producer thread sending ``count`` messages at ``per_second``."""

    def run() -> None:
        interval = 1 / per_second
        start = time.perf_counter()
        for i in range(count):
            target = start + i * interval
            delay = target - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            send(time.perf_counter())

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def percentiles(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    return (
        1000 * ordered[len(ordered) // 2],
        1000 * ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))],
    )


# --- contenders ----------------------------------------------------------------------------------


def rediskit(n: int, latency_n: int) -> dict[str, Any]:
    from django_rediskit.messaging import Queue

    results: dict[str, Any] = {}

    def fresh() -> Queue:
        return Queue(f"bench-{uuid.uuid4().hex[:6]}", visibility_timeout=60, handler_deadline=30)

    def handler(delivery: Any) -> None:
        jobs().noop(delivery.payload.get("t", 0.0) if isinstance(delivery.payload, dict) else 0.0)

    for batch in (1, 100):
        queue = fresh()
        payloads = [{"i": i} for i in range(n)]
        if batch == 1:
            results[f"enqueue b{batch}"] = rate(
                n, lambda q=queue, ps=payloads: [q.enqueue(p) for p in ps]
            )
        else:
            results[f"enqueue b{batch}"] = rate(
                n,
                lambda q=queue, ps=payloads: [
                    q.enqueue_many(ps[i : i + 100]) for i in range(0, n, 100)
                ],
            )
        results[f"consume b{batch}"] = rate(
            n,
            lambda q=queue, b=batch: q.consume(handler, batch=b, block_ms=100, max_messages=n),
        )
        assert queue.stats().pending == 0
        queue.delete()
        queue.close()
    queue = fresh()
    queue.ensure_group()
    jobs().LATENCIES.clear()
    producer = paced(lambda t: queue.enqueue({"t": t}), latency_n, RATE[0])
    queue.consume(handler, batch=100, block_ms=1000, max_messages=latency_n)
    producer.join()
    results["p50 ms"], results["p99 ms"] = percentiles(jobs().LATENCIES)
    queue.delete()
    return results


def rq_contender(url: str, n: int, latency_n: int) -> dict[str, Any]:
    import redis
    from rq import Queue, SimpleWorker

    connection = redis.Redis.from_url(url)
    results: dict[str, Any] = {}
    for batch in (1, 100):
        queue = Queue(f"bench-{uuid.uuid4().hex[:6]}", connection=connection)
        if batch == 1:
            results["enqueue b1"] = rate(
                n, lambda q=queue: [q.enqueue(jobs().noop) for _ in range(n)]
            )
        else:

            def many(q: Queue = queue) -> None:
                for _ in range(0, n, 100):
                    q.enqueue_many([Queue.prepare_data(jobs().noop) for _ in range(100)])

            results["enqueue b100"] = rate(n, many)
        worker = SimpleWorker([queue], connection=connection)
        results[f"consume b{batch}"] = rate(
            n, lambda w=worker: w.work(burst=True, logging_level="WARNING")
        )
        queue.delete(delete_jobs=True)
    queue = Queue(f"bench-{uuid.uuid4().hex[:6]}", connection=connection)
    jobs().LATENCIES.clear()
    producer = paced(lambda t: queue.enqueue(jobs().noop, t), latency_n, RATE[0])
    worker = SimpleWorker([queue], connection=connection)
    worker.work(burst=False, max_jobs=latency_n, logging_level="WARNING")
    producer.join()
    results["p50 ms"], results["p99 ms"] = percentiles(jobs().LATENCIES)
    queue.delete(delete_jobs=True)
    return results


def dramatiq_contender(url: str, n: int, latency_n: int) -> dict[str, Any]:
    import logging

    import dramatiq
    from dramatiq.brokers.redis import RedisBroker

    logging.getLogger("dramatiq").setLevel(logging.ERROR)  # one Worker per run: it warns

    broker = RedisBroker(url=url, namespace=f"bench-{uuid.uuid4().hex[:6]}")
    dramatiq.set_broker(broker)
    results: dict[str, Any] = {}
    for batch in (1, 100):
        queue_name = f"q{batch}{uuid.uuid4().hex[:6]}"
        actor = dramatiq.actor(jobs().noop, queue_name=queue_name, actor_name=f"noop_{queue_name}")
        results[f"enqueue b{batch}"] = rate(n, lambda a=actor: [a.send() for _ in range(n)])
        jobs().DONE["count"] = 0
        worker = dramatiq.Worker(broker, queues={queue_name}, worker_threads=1, worker_timeout=100)
        worker.queue_prefetch = batch  # messages fetched per round trip

        def drain(w: Any = worker) -> None:
            w.start()
            while jobs().DONE["count"] < n:
                time.sleep(0.001)

        results[f"consume b{batch}"] = rate(n, drain)
        worker.stop()
    queue_name = f"lat{uuid.uuid4().hex[:6]}"
    actor = dramatiq.actor(jobs().noop, queue_name=queue_name, actor_name=f"noop_{queue_name}")
    worker = dramatiq.Worker(broker, queues={queue_name}, worker_threads=1, worker_timeout=100)
    worker.start()
    jobs().LATENCIES.clear()
    jobs().DONE["count"] = 0
    producer = paced(lambda t: actor.send(t), latency_n, RATE[0])
    producer.join()
    while jobs().DONE["count"] < latency_n:
        time.sleep(0.001)
    worker.stop()
    results["p50 ms"], results["p99 ms"] = percentiles(jobs().LATENCIES)
    broker.close()
    return results


COLUMNS = ("enqueue b1", "enqueue b100", "consume b1", "consume b100", "p50 ms", "p99 ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--latency", type=int, default=500, help="messages for the latency run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rate", type=float, default=100.0, help="messages/s, latency runs")
    args = parser.parse_args()
    RATE[0] = jobs().RATE[0] = args.rate
    os.environ.pop("DJANGO_SETTINGS_MODULE", None)
    from tests.servers import RedisServer

    server = RedisServer().start()
    try:
        configure(server.url)
        contenders: dict[str, Callable[[], dict[str, Any]]] = {
            "rediskit Queue": lambda: rediskit(args.messages, args.latency)
        }
        missing = []
        try:
            import rq  # noqa: F401

            contenders["RQ SimpleWorker"] = lambda: rq_contender(
                server.url, args.messages, args.latency
            )
        except ImportError:
            missing.append("rq")
        try:
            import dramatiq  # noqa: F401

            contenders["dramatiq RedisBroker"] = lambda: dramatiq_contender(
                server.url, args.messages, args.latency
            )
        except ImportError:
            missing.append("dramatiq")
        rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in contenders}
        for _ in range(args.rounds):  # interleaved: background load hits every contender alike
            for name, run in contenders.items():
                rounds[name].append(run())
        print(
            f"\nOne private redis-server, one consumer thread, {args.messages} no-op messages "
            f"per throughput run, {args.latency} paced at {args.rate:g}/s for latency; median of "
            f"{args.rounds} interleaved rounds. Throughput in messages/s."
        )
        print(f"{'':22}" + "".join(f"{c:>14}" for c in COLUMNS))
        medians: dict[str, dict[str, float]] = {}
        for name, results in rounds.items():
            medians[name] = {c: statistics.median(r[c] for r in results) for c in COLUMNS}
            cells = "".join(
                f"{medians[name][c]:>14.2f}" if "ms" in c else f"{medians[name][c]:>14,.0f}"
                for c in COLUMNS
            )
            print(f"{name:22}{cells}")
        others = [m for name, m in medians.items() if name != "rediskit Queue"]
        if others:
            ours = medians["rediskit Queue"]
            for column in ("enqueue b100", "consume b100"):
                best = max(m[column] for m in others)
                print(f"{column}: rediskit / fastest other = {ours[column] / best:.2f}x")
        if missing:
            print(f"not installed, left out: {', '.join(missing)}")
    finally:
        server.close()


if __name__ == "__main__":
    main()
