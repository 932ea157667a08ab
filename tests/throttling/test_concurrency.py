"""Concurrency on one identity: 8 processes x 8 threads against one real redis-server.

The issue asks for >= 20 trials of exact; all 20 run here (about a second each on two shared
cores). ``benchmarks/throttle_race.py`` repeats the race with more trials and against DRF.
"""

from __future__ import annotations

import functools
import math
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from django_rediskit.throttling import RateLimiter
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
