"""Concurrency on one identity: 8 processes x 8 threads against one real redis-server.

The issue asks for >= 20 trials of exact; all 20 run here (about a second each on two shared
cores). ``benchmarks/throttle_race.py`` repeats the race with more trials and against DRF.
"""

from __future__ import annotations

import functools
import math
import os
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from django_rediskit.throttling import RateLimiter
from tests import servers
from tests.throttling.race import race

LIMIT = 50
ATTEMPTS_PER_THREAD = 20 * LIMIT // 64 + 1  # 64 clients x 16 = 1024 >= 20 x L attempts


def _decider(rates: str, algorithm: str, scope: str) -> Callable[[str], tuple[bool, bool]]:
    limiter = RateLimiter(rates, algorithm=algorithm)

    def decide(ident: str) -> tuple[bool, bool]:
        decision = limiter.hit(scope, ident)
        return decision.allowed, decision.degraded

    return decide


@pytest.fixture
def patient(settings: Any) -> None:
    """64 clients on 2 shared cores: a slow reply must not be taken for an outage here."""
    settings.REDISKIT = {"THROTTLE": {"SOCKET_TIMEOUT": 10.0, "SOCKET_CONNECT_TIMEOUT": 10.0}}


@pytest.mark.usefixtures("patient")
def test_exact_admits_exactly_the_limit_in_every_trial() -> None:
    trials = race(
        functools.partial(_decider, f"{LIMIT}/hour;1000/day", "exact", "race"),
        trials=20,
        attempts_per_thread=ATTEMPTS_PER_THREAD,
        tag=uuid.uuid4().hex,
    )
    assert [t.degraded for t in trials] == [0] * 20
    assert [t.admitted for t in trials] == [LIMIT] * 20


@pytest.mark.usefixtures("patient")
@pytest.mark.parametrize("algorithm", ["approx", "fixed", "gcra"])
def test_counter_algorithms_stay_within_their_documented_bounds(algorithm: str) -> None:
    window = 3600
    trials = race(
        functools.partial(_decider, f"{LIMIT}/hour", algorithm, "race"),
        trials=3,
        attempts_per_thread=ATTEMPTS_PER_THREAD,
        tag=uuid.uuid4().hex,
    )
    for trial in trials:
        assert trial.degraded == 0
        if algorithm == "gcra":
            # a burst of L, then one per window/L seconds
            upper = LIMIT + math.ceil(trial.seconds / (window / LIMIT))
        else:
            upper = 2 * LIMIT  # a window boundary inside the burst (jitter places it anywhere)
        assert LIMIT <= trial.admitted <= upper


def test_threads_get_connections_of_their_own_and_reuse_them(
    throttle_server: servers.RedisServer,
) -> None:
    """Decisions take connections from the limiter's own idle list (not redis-py's pool): as
    many as ran at once, reused afterwards, never shared by two threads, fresh after a fork."""
    limiter = RateLimiter("100000/min")
    threads, rounds = 8, 50
    barrier = threading.Barrier(threads)

    def client_count() -> int:
        with throttle_server.client() as admin:
            return sum(1 for c in admin.client_list() if c["cmd"] in ("evalsha", "eval"))

    def work(ident: str) -> list[int]:
        barrier.wait()
        return [limiter.hit("own", ident).statuses[0].remaining for _ in range(rounds)]

    with ThreadPoolExecutor(threads) as pool:
        results = list(pool.map(work, [f"t{i}" for i in range(threads)]))
    # each thread saw its own replies, in order: a shared connection would mix them up
    assert results == [list(range(99_999, 99_999 - rounds, -1))] * threads
    opened = client_count()
    assert 1 <= opened <= threads
    for _ in range(3 * rounds):
        assert not limiter.hit("own", "again").degraded
    assert client_count() == opened  # sequential decisions reuse a connection

    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child must not use the parent's sockets
        decision = limiter.hit("own", "child")
        os.write(write, b"1" if decision.statuses[0].remaining == 99_999 else b"0")
        os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(read, 1) == b"1"
    assert not limiter.hit("own", "again").degraded  # the parent's connections still work
