"""A race harness: many processes x threads fire attempts at one identity at the same moment.

Used by the concurrency tests (a few trials) and by ``benchmarks/throttle_race.py`` (the full
run). Processes are forked, so they inherit the configured Django settings.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.synchronize import Barrier as ProcessBarrier
from typing import Any

#: Makes one decision for (trial, identity); True when admitted. Built inside each process.
DecideFactory = Callable[[], Callable[[str], "tuple[bool, bool]"]]


@dataclass
class Trial:
    admitted: int
    degraded: int
    seconds: float


def _fire(
    decide: Callable[[str], tuple[bool, bool]],
    ident: str,
    attempts: int,
    start: threading.Barrier,
    counts: list[tuple[int, int]],
    index: int,
) -> None:
    start.wait()
    outcomes = [decide(ident) for _ in range(attempts)]
    counts[index] = (sum(o[0] for o in outcomes), sum(o[1] for o in outcomes))


def _process(
    factory: DecideFactory,
    trials: int,
    threads: int,
    attempts: int,
    barrier: ProcessBarrier,
    results: Any,
    tag: str,
) -> None:
    decide = factory()
    for trial in range(trials):
        ident = f"{tag}-{trial}"
        counts = [(0, 0)] * threads
        start = threading.Barrier(threads)

        workers = [
            threading.Thread(target=_fire, args=(decide, ident, attempts, start, counts, i))
            for i in range(threads)
        ]
        barrier.wait()  # every process starts the trial together
        began = time.monotonic()
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        results.put(
            (trial, sum(c[0] for c in counts), sum(c[1] for c in counts), time.monotonic() - began)
        )


def race(
    factory: DecideFactory,
    *,
    trials: int,
    processes: int = 8,
    threads: int = 8,
    attempts_per_thread: int,
    tag: str,
) -> list[Trial]:
    """Run ``trials`` races; each fires processes x threads x attempts_per_thread attempts."""
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(processes)
    results = context.Queue()
    children = [
        context.Process(
            target=_process,
            args=(factory, trials, threads, attempts_per_thread, barrier, results, tag),
        )
        for _ in range(processes)
    ]
    for child in children:
        child.start()
    totals = [Trial(0, 0, 0.0) for _ in range(trials)]
    for _ in range(trials * processes):
        trial, admitted, degraded, seconds = results.get(timeout=120)
        totals[trial].admitted += admitted
        totals[trial].degraded += degraded
        totals[trial].seconds = max(totals[trial].seconds, seconds)
    for child in children:
        child.join(timeout=30)
        if child.exitcode != 0:
            raise RuntimeError(f"race process exited with {child.exitcode}")
    return totals
