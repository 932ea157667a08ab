"""The limiter core on a real Redis: algorithms, atomicity, round trips, memory, clocks."""

from __future__ import annotations

import time
from typing import Any

import pytest
import redis
from django.core.exceptions import ImproperlyConfigured

from django_rediskit.throttling import RateLimiter
from django_rediskit.throttling.limiter import _channel
from tests import servers
from tests.throttling.conftest import client_commands

ALGORITHMS = ["exact", "approx", "fixed", "gcra"]


def _client(limiter: RateLimiter) -> redis.Redis:
    return _channel(limiter.alias).client


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_admits_the_limit_then_rejects_with_an_exact_retry_after(
    algorithm: str, unique_scope: str
) -> None:
    limiter = RateLimiter("3/10s", algorithm=algorithm)
    t = 1000.0
    decisions = [limiter.hit(unique_scope, "alice", now=t) for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.statuses[0].remaining for d in decisions] == [2, 1, 0, 0]
    rejected = decisions[-1]
    assert 0 < rejected.retry_after <= 20 and not rejected.degraded
    # retry_after is exact: a moment earlier is still too early, at that instant it passes
    assert not limiter.peek(unique_scope, "alice", now=t + rejected.retry_after - 0.001).allowed
    assert limiter.peek(unique_scope, "alice", now=t + rejected.retry_after).allowed
    # other identities and scopes are independent
    assert limiter.hit(unique_scope, "bob", now=t).allowed
    assert limiter.hit(unique_scope + "x", "alice", now=t).allowed


def test_exact_is_a_sliding_log() -> None:
    limiter = RateLimiter("2/10s", algorithm="exact")
    assert limiter.hit("log", "a", now=100.0).allowed
    assert limiter.hit("log", "a", now=105.0).allowed
    assert not limiter.hit("log", "a", now=109.9).allowed
    assert limiter.hit("log", "a", now=110.0).allowed  # the 100.0 entry has left the window
    decision = limiter.hit("log", "a", now=114.0)
    assert not decision.allowed and decision.retry_after == pytest.approx(1.0)
    assert limiter.hit("log", "a", now=115.0).allowed


def test_gcra_spreads_requests_after_the_burst() -> None:
    limiter = RateLimiter("10/10s", algorithm="gcra", burst=2)
    assert [limiter.hit("g", "a", now=50.0).allowed for _ in range(3)] == [True, True, False]
    assert limiter.hit("g", "a", now=51.0).allowed  # one per second after the burst
    assert not limiter.hit("g", "a", now=51.5).allowed


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_cost_consumes_several_units_and_peek_consumes_none(
    algorithm: str, unique_scope: str
) -> None:
    limiter = RateLimiter("10/min", algorithm=algorithm)
    assert limiter.peek(unique_scope, "a", cost=10).allowed
    assert limiter.hit(unique_scope, "a", cost=7).statuses[0].remaining == 3
    peeked = limiter.peek(unique_scope, "a", cost=4)
    assert not peeked.allowed and peeked.statuses[0].remaining == 3
    assert limiter.hit(unique_scope, "a", cost=3).allowed
    assert not limiter.hit(unique_scope, "a").allowed


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("rates", ["2/min;5/hour", "5/min;2/hour"])
def test_a_request_rejected_by_one_rate_changes_no_other_rate(
    algorithm: str, rates: str, unique_scope: str
) -> None:
    limiter = RateLimiter(rates, algorithm=algorithm)
    client = _client(limiter)
    keys = limiter.keys(unique_scope, "a")
    assert limiter.hit(unique_scope, "a").allowed
    assert limiter.hit(unique_scope, "a").allowed
    before = [(client.dump(key), client.pttl(key) > 0) for key in keys]
    rejected = limiter.hit(unique_scope, "a")
    assert not rejected.allowed
    assert [(client.dump(key), client.pttl(key) > 0) for key in keys] == before
    # exactly one rate rejected; the other reports its own (unchanged) remaining budget
    assert sorted(status.retry_after > 0 for status in rejected.statuses) == [False, True]
    assert sorted(status.remaining for status in rejected.statuses) == [0, 3]


def test_reset_forgets_the_identity(unique_scope: str) -> None:
    limiter = RateLimiter("1/min;5/day")
    assert limiter.hit(unique_scope, "a").allowed
    assert not limiter.hit(unique_scope, "a").allowed
    assert limiter.reset(unique_scope, "a") == 2
    assert limiter.hit(unique_scope, "a").allowed


def test_keys_share_one_hash_tag_and_never_show_the_identity() -> None:
    limiter = RateLimiter("1/s;2/min;3/hour")
    keys = limiter.keys("login", "203.0.113.9")
    tags = {key[key.index("{") : key.index("}") + 1] for key in keys}
    assert len(tags) == 1 and tags.pop().startswith("{login:")
    assert all(":rl:" in key and "203.0.113" not in key for key in keys)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"cost": 0}, ValueError),
        ({"cost": 11}, ValueError),
        ({"cost": True}, ValueError),
        ({"cost": 1.5}, ValueError),
    ],
)
def test_bad_cost(kwargs: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        RateLimiter("10/min;20/hour").hit("s", "a", **kwargs)


@pytest.mark.parametrize("scope", ["", "a{b}", "has space", "x" * 101])
def test_bad_scope(scope: str) -> None:
    with pytest.raises(ValueError):
        RateLimiter("10/min").hit(scope, "a")


def test_gcra_cost_is_bounded_by_the_burst() -> None:
    with pytest.raises(ValueError):
        RateLimiter("10/min", algorithm="gcra", burst=3).hit("s", "a", cost=4)


def test_bad_identity_and_configuration() -> None:
    with pytest.raises(TypeError):
        RateLimiter("10/min").hit("s", 42)  # type: ignore[arg-type]
    with pytest.raises(ImproperlyConfigured):
        RateLimiter("10/min", algorithm="leaky")
    with pytest.raises(ImproperlyConfigured):
        RateLimiter("10/min", burst=3)  # burst is a gcra option
    with pytest.raises(ImproperlyConfigured):
        RateLimiter("10/month")
    with pytest.raises(ImproperlyConfigured):
        RateLimiter([])


def test_foreign_data_in_a_key_is_a_policy_decision_not_an_exception(unique_scope: str) -> None:
    closed = RateLimiter("5/min", fail_open=False)
    client = _client(closed)
    client.set(closed.keys(unique_scope, "a")[0], "not a list")
    decision = closed.hit(unique_scope, "a")
    assert decision.degraded and not decision.allowed and decision.retry_after > 0
    assert client.get(closed.keys(unique_scope, "a")[0]) == b"not a list"  # nothing lost
    assert RateLimiter("5/min", fail_open=True).hit(unique_scope, "a").allowed


@pytest.mark.parametrize("nrates", [1, 3])
def test_one_round_trip_per_decision_and_one_more_after_script_flush(
    throttle_server: servers.RedisServer, nrates: int
) -> None:
    limiter = RateLimiter(";".join(["5/s", "100/min", "1000/day"][:nrates]), algorithm="exact")
    limiter.hit("rt", "warm-up")  # connects (handshake) and loads the script

    def decide() -> None:
        decisions.extend(limiter.hit("rt", f"id{i % 4}") for i in range(40))

    decisions: list[Any] = []
    assert client_commands(throttle_server, decide) == ["EVALSHA"] * 40
    throttle_server.client().script_flush()
    sent = client_commands(throttle_server, decide)
    # the first EVALSHA fails with NOSCRIPT, one EVAL runs (and reloads) it, then EVALSHA again
    assert sent == ["EVALSHA", "EVAL"] + ["EVALSHA"] * 39
    assert len(decisions) == 80 and not any(d.degraded for d in decisions)
    assert sum(d.allowed for d in decisions) == 4 * 5  # 5/s per identity, all within 1 s


@pytest.mark.parametrize("shift", [-3600, 3600])
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_the_app_servers_clock_changes_no_decision(
    monkeypatch: pytest.MonkeyPatch, algorithm: str, shift: int, unique_scope: str
) -> None:
    limiter = RateLimiter("3/min;5/hour", algorithm=algorithm)

    def run(ident: str) -> list[tuple[bool, list[int]]]:
        return [
            (d.allowed, [s.remaining for s in d.statuses])
            for d in (limiter.hit(unique_scope, ident, cost=c) for c in (1, 2, 1, 1, 3))
        ]

    baseline = run("a")
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + shift)
    assert run("b") == baseline
    assert baseline[:3] == [(True, [2, 4]), (True, [0, 2]), (False, [0, 2])]


@pytest.mark.parametrize("limit", [100, 1000])
def test_exact_memory_per_identity_and_ttl(limit: int) -> None:
    limiter = RateLimiter(f"{limit}/min", algorithm="exact")
    client = _client(limiter)
    for i in range(limit):
        limiter.hit("mem", "a", now=10_000 + i * 0.01)
    (key,) = limiter.keys("mem", "a")
    assert client.llen(key) == limit
    usage = client.memory_usage(key, samples=0)
    assert usage <= 12 * limit + 128, usage
    assert 0 < client.pttl(key) <= 2 * 60_000


@pytest.mark.parametrize("algorithm", ["approx", "fixed", "gcra"])
def test_counter_algorithms_use_constant_memory_and_bounded_ttls(algorithm: str) -> None:
    limiter = RateLimiter("1000/min;100000/day", algorithm=algorithm)
    client = _client(limiter)
    for _ in range(50):
        limiter.hit("mem", "a", cost=10)
    for key, window_ms in zip(limiter.keys("mem", "a"), (60_000, 86_400_000), strict=True):
        # 128 B on one server; cluster mode adds 8 B per key (its slot-to-keys index)
        assert client.memory_usage(key, samples=0) <= 136
        assert 0 < client.pttl(key) <= 2 * window_ms
