"""Property test: the exact limiter decides like a plain in-memory sliding log, on a real Redis."""

from __future__ import annotations

import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from django_rediskit.throttling import Rate, RateLimiter


class SlidingLogModel:
    """The textbook model: per rate, the admission times inside the trailing window."""

    def __init__(self, rates: list[Rate]) -> None:
        self.rates = rates
        self.logs: list[list[int]] = [[] for _ in rates]

    def hit(self, now: int, cost: int) -> tuple[bool, list[int], list[int]]:
        now = max([now, *(log[-1] for log in self.logs if log)])  # time never runs backwards
        for rate, log in zip(self.rates, self.logs, strict=True):
            log[:] = [t for t in log if t > now - rate.window_us]
        allowed = all(
            len(log) + cost <= r.limit for r, log in zip(self.rates, self.logs, strict=True)
        )
        retries = []
        for rate, log in zip(self.rates, self.logs, strict=True):
            over = len(log) + cost - rate.limit
            retries.append(log[over - 1] + rate.window_us - now if over > 0 else 0)
        if allowed:
            for log in self.logs:
                log.extend([now] * cost)
        return (
            allowed,
            [max(r.limit - len(log), 0) for r, log in zip(self.rates, self.logs, strict=True)],
            retries,
        )


rates_strategy = st.lists(
    st.builds(Rate, window=st.integers(1, 8), limit=st.integers(1, 6)),
    min_size=1,
    max_size=3,
    unique_by=lambda rate: rate.window,
)
steps_strategy = st.lists(
    st.tuples(
        # coarse steps land exactly on window edges; fine ones anywhere
        st.one_of(st.integers(-2, 12).map(lambda k: k * 250), st.integers(-400, 2500)),
        st.integers(1, 6),
    ),
    min_size=1,
    max_size=30,
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rates=rates_strategy, steps=steps_strategy)
def test_exact_matches_the_sliding_log_model(
    rates: list[Rate], steps: list[tuple[int, int]]
) -> None:
    rates = sorted(rates)
    limiter = RateLimiter(rates, algorithm="exact")
    model = SlidingLogModel(rates)
    ident, t_ms = uuid.uuid4().hex, 1_000_000
    max_cost = min(rate.limit for rate in rates)
    for delta, cost in steps:
        t_ms += delta
        cost = min(cost, max_cost)
        now = t_ms / 1000
        decision = limiter.hit("prop", ident, cost=cost, now=now)
        allowed, remaining, retries = model.hit(int(now * 1_000_000), cost)
        assert not decision.degraded
        assert decision.allowed == allowed
        assert [s.remaining for s in decision.statuses] == remaining
        assert [round(s.retry_after * 1_000_000) for s in decision.statuses] == retries


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    algorithm=st.sampled_from(["approx", "fixed", "gcra"]),
    limit=st.integers(1, 6),
    window=st.integers(1, 4),
    gaps=st.lists(st.integers(0, 1500), min_size=1, max_size=60),
)
def test_counter_algorithms_never_exceed_their_bound(
    algorithm: str, limit: int, window: int, gaps: list[int]
) -> None:
    """approx and fixed: at most 2L in any trailing window; gcra: at most burst + L (= 2L)."""
    limiter = RateLimiter([Rate(window=window, limit=limit)], algorithm=algorithm)
    ident, t_ms, admitted = uuid.uuid4().hex, 5_000_000, []
    for gap in gaps:
        t_ms += gap
        decision = limiter.hit("bound", ident, now=t_ms / 1000)
        assert not decision.degraded
        if decision.allowed:
            admitted.append(t_ms)
        in_window = [t for t in admitted if t > t_ms - window * 1000]
        assert len(in_window) <= 2 * limit
