"""Throttle benchmark: decisions/s and admitted counts, ours vs DRF on django-redis vs ``limits``.

    python -m benchmarks.throttle_bench [--decisions 8000] [--trials 20] [--cpu 0]

Starts a private redis-server (or uses REDIS_URL) and prints two Markdown tables:

1. Decisions per second on one client thread, on the admit path, with a half-full 1000/day
   history (500 entries) for the identity: DRF's ``UserRateThrottle`` on django-redis, our
   ``UserRateThrottle`` (exact / approx / gcra) and ``RateLimiter.hit``, and the ``limits``
   library's moving-window and sliding-window-counter strategies on the same Redis. The
   throttle classes are instantiated for every decision, as DRF's ``APIView`` does. Every
   contender talks through redis-py, with the same reply parser (hiredis when installed). The
   server time per decision (``INFO commandstats``) is measured on the same batches.
2. Admitted requests when 8 processes x 8 threads fire 20 x L attempts at one identity at once
   (L = 100), per trial: DRF vs ours vs ``limits``.

Needs the ``bench`` extra (``pip install -e ".[bench]"``) for ``limits``.
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import django
from django.conf import settings
from redis.utils import HIREDIS_AVAILABLE

from tests.servers import RedisServer

HISTORY = 500  # entries already in the identity's window: half of 1000/day
RATE = "1000/day"


def configure(url: str) -> None:
    settings.configure(
        SECRET_KEY="bench",
        INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "django_rediskit"],
        DATABASES={},
        CACHES={
            "default": {
                "BACKEND": "django_rediskit.cache.RedisCache",
                "LOCATION": url,
                "KEY_PREFIX": "bench",
            },
            "djredis": {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": url},
        },
        REDISKIT={"THROTTLE": {"SOCKET_TIMEOUT": 10.0, "SOCKET_CONNECT_TIMEOUT": 10.0}},
        REST_FRAMEWORK={"DEFAULT_THROTTLE_RATES": {"user": RATE}, "NUM_PROXIES": 0},
    )
    django.setup()


class _User:
    is_authenticated = True

    def __init__(self, pk: str) -> None:
        self.pk = pk


class _Request:
    """What UserRateThrottle reads: ``user`` and (for anonymous users) ``META``."""

    def __init__(self, pk: str) -> None:
        self.user = _User(pk)
        self.META: dict[str, str] = {"REMOTE_ADDR": "127.0.0.1"}
        self.headers: dict[str, str] = {}


def drf_throttle(rate: str) -> Any:
    from django.core.cache import caches
    from rest_framework.throttling import UserRateThrottle

    class DRFUser(UserRateThrottle):  # type: ignore[misc]
        cache = caches["djredis"]

    DRFUser.rate = rate
    return DRFUser()


def ours_throttle(rate: str, algorithm: str) -> Any:
    from django_rediskit.throttling.drf import UserRateThrottle

    class Ours(UserRateThrottle):
        pass

    Ours.rate = rate
    Ours.algorithm = algorithm
    return Ours()


def limits_strategy(url: str, name: str) -> tuple[Any, Any]:
    from limits import parse
    from limits.storage import storage_from_string
    from limits.strategies import MovingWindowRateLimiter, SlidingWindowCounterRateLimiter

    storage = storage_from_string(url)
    cls = {"moving": MovingWindowRateLimiter, "sliding": SlidingWindowCounterRateLimiter}[name]
    return cls(storage), parse(RATE)


# --- 1. decisions per second ---------------------------------------------------------------------


Contender = tuple[str, Callable[[str], object], Callable[[str], bool]]
BATCH = 200  # admitted decisions per identity and round; keeps the history near half full


def _server_usec(admin: Any) -> int:
    """Microseconds the server spent on clients' commands since the last CONFIG RESETSTAT.

    A script's time includes the commands it ran, which commandstats also count on their own:
    when scripts ran, only they count.
    """
    stats = admin.info("commandstats")
    scripts = [v["usec"] for k, v in stats.items() if k in ("cmdstat_evalsha", "cmdstat_eval")]
    if scripts:
        return sum(scripts)
    return sum(v["usec"] for k, v in stats.items() if k not in ("cmdstat_config", "cmdstat_info"))


def _batch(
    admin: Any, prefill: Callable[[str], object], decide: Callable[[str], bool]
) -> tuple[float, float]:
    """(decisions/s, server us per decision) of one batch on a fresh identity."""
    ident = uuid.uuid4().hex
    prefill(ident)
    admin.config_resetstat()
    started = time.perf_counter()
    for _ in range(BATCH):
        if not decide(ident):
            raise RuntimeError("benchmark left the admit path")
    elapsed = time.perf_counter() - started
    return BATCH / elapsed, _server_usec(admin) / BATCH


@dataclass
class Row:
    name: str
    rates: list[float]
    server_us: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.rates)

    def spread(self) -> str:
        """The interquartile range of the rounds' decisions/s."""
        q1, _, q3 = statistics.quantiles(self.rates, n=4)
        return f"{q1:,.0f}-{q3:,.0f}"


def throughput(url: str, n: int) -> list[Row]:
    """Decisions/s per contender over interleaved rounds (the machine is shared and noisy:
    interleaving exposes every contender to the same background load)."""
    import redis

    from django_rediskit.throttling import RateLimiter

    admin = redis.Redis.from_url(url)
    contenders: list[Contender] = []
    drf = drf_throttle(RATE)

    def drf_prefill(ident: str) -> None:
        now = time.time()
        drf.cache.set(
            drf.cache_format % {"scope": "user", "ident": ident},
            [now - i * 0.001 for i in range(HISTORY)],
            86400,
        )

    contenders.append(
        (
            "DRF UserRateThrottle, django-redis",
            drf_prefill,
            lambda i: type(drf)().allow_request(_Request(i), None),
        )
    )
    for algorithm in ("exact", "approx", "gcra"):
        throttle = ours_throttle(RATE, algorithm)
        throttle_cls = type(throttle)

        def ours_prefill(ident: str, throttle: Any = throttle) -> None:
            key = throttle.cache_format % {"scope": "user", "ident": ident}
            throttle.limiter.hit("user", key, cost=HISTORY)

        contenders.append(
            (
                f"rediskit UserRateThrottle, {algorithm}",
                ours_prefill,
                lambda i, cls=throttle_cls: cls().allow_request(_Request(i), None),
            )
        )
    for rates, label in ((RATE, "exact"), ("1000/day;1500/2d;2000/3d", "exact, 3 rates")):
        limiter = RateLimiter(rates, algorithm="exact")
        contenders.append(
            (
                f"rediskit RateLimiter.hit, {label}",
                lambda i, lim=limiter: lim.hit("bench", i, cost=HISTORY),
                lambda i, lim=limiter: lim.hit("bench", i).allowed,
            )
        )
    for name in ("moving", "sliding"):
        strategy, item = limits_strategy(url, name)
        contenders.append(
            (
                f"limits {name} window",
                lambda i, s=strategy, it=item: s.hit(it, i, cost=HISTORY),
                lambda i, s=strategy, it=item: s.hit(it, i),
            )
        )
    rows = {name: Row(name, [], []) for name, _, _ in contenders}
    for _ in range(max(4, n // BATCH)):
        for name, prefill, decide in contenders:
            rate, server_us = _batch(admin, prefill, decide)
            rows[name].rates.append(rate)
            rows[name].server_us.append(server_us)
    return list(rows.values())


# --- 2. admitted counts under concurrency -------------------------------------------------------

LIMIT = 100


def _drf_decider() -> Callable[[str], tuple[bool, bool]]:
    throttle = drf_throttle(f"{LIMIT}/hour")
    return lambda ident: (throttle.allow_request(_Request(ident), None), False)


def _ours_decider(algorithm: str) -> Callable[[str], tuple[bool, bool]]:
    from django_rediskit.throttling import RateLimiter

    limiter = RateLimiter(f"{LIMIT}/hour", algorithm=algorithm)

    def decide(ident: str) -> tuple[bool, bool]:
        decision = limiter.hit("race", ident)
        return decision.allowed, decision.degraded

    return decide


def _limits_decider(url: str, name: str) -> Callable[[str], tuple[bool, bool]]:
    from limits import parse

    strategy, _ = limits_strategy(url, name)
    item = parse(f"{LIMIT}/hour")
    return lambda ident: (strategy.hit(item, ident), False)


def races(url: str, trials: int) -> list[tuple[str, list[int], int, float]]:
    from tests.throttling.race import race

    contenders: list[tuple[str, Callable[[], Callable[[str], tuple[bool, bool]]], int]] = [
        ("DRF UserRateThrottle, django-redis", _drf_decider, min(trials, 5)),
        ("rediskit exact", functools.partial(_ours_decider, "exact"), trials),
        ("rediskit approx", functools.partial(_ours_decider, "approx"), min(trials, 5)),
        ("rediskit gcra", functools.partial(_ours_decider, "gcra"), min(trials, 5)),
        ("limits moving window", functools.partial(_limits_decider, url, "moving"), min(trials, 5)),
    ]
    rows = []
    for name, factory, n in contenders:
        results = race(
            factory, trials=n, attempts_per_thread=20 * LIMIT // 64 + 1, tag=uuid.uuid4().hex
        )
        rows.append(
            (
                name,
                [r.admitted for r in results],
                sum(r.degraded for r in results),
                statistics.mean(r.seconds for r in results),
            )
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--decisions", type=int, default=8000)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--no-races", action="store_true", help="only the decisions/s table")
    parser.add_argument(
        "--cpu",
        type=int,
        default=0,
        help="pin this process and its redis-server to this CPU (-1: no pinning)",
    )
    options = parser.parse_args()
    if options.cpu >= 0:
        os.sched_setaffinity(0, {options.cpu})  # the redis-server started below inherits it
    server = None
    url = os.environ.get("REDIS_URL")
    if not url:
        server = RedisServer().start()
        url = server.url
    try:
        configure(url)
        rows = throughput(url, options.decisions)
        drf_rate = rows[0].median
        moving = next(row for row in rows if row.name == "limits moving window").median
        parser_name = "hiredis" if HIREDIS_AVAILABLE else "pure-Python"
        print(
            f"\n### Decisions/s, one client thread, {RATE} history half full "
            f"({len(rows[0].rates)} interleaved rounds of {BATCH}, {parser_name} parser, "
            f"CPU {options.cpu if options.cpu >= 0 else 'any'})\n"
        )
        print("| Throttle | median | IQR | vs DRF | vs limits moving | server us/decision |")
        print("|---|---:|---:|---:|---:|---:|")
        for row in rows:
            print(
                f"| {row.name} | {row.median:,.0f} | {row.spread()} | "
                f"{row.median / drf_rate:.2f}x | {row.median / moving:.2f}x | "
                f"{statistics.median(row.server_us):.1f} |"
            )
        if options.no_races:
            return
        attempts = 64 * (20 * LIMIT // 64 + 1)
        print(f"\n### Admitted of {attempts} attempts, limit {LIMIT}, 8 processes x 8 threads\n")
        print("| Limiter | trials | admitted (min-max) | exact trials | degraded | s/trial |")
        print("|---|---:|---|---:|---:|---:|")
        for name, admitted, degraded, seconds in races(url, options.trials):
            exact = sum(a == LIMIT for a in admitted)
            print(
                f"| {name} | {len(admitted)} | {min(admitted)}-{max(admitted)} | "
                f"{exact}/{len(admitted)} | {degraded} | {seconds:.2f} |"
            )
    finally:
        if server is not None:
            server.close()


if __name__ == "__main__":
    main()
