"""Redis stopped, paused and restarted under a live backend: the documented failure policy."""

from __future__ import annotations

import logging
import time

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from django_rediskit.cache import RedisCache
from django_rediskit.cache.policy import CircuitOpen
from tests.helpers import MakeCache
from tests.servers import RedisServer

CONNECT_TIMEOUT = 0.5


def _muted(make_cache: MakeCache, server: RedisServer, **options: object) -> object:
    return make_cache(
        server.url,
        OPTIONS={
            "IGNORE_EXCEPTIONS": True,
            "SOCKET_CONNECT_TIMEOUT": CONNECT_TIMEOUT,
            "SOCKET_TIMEOUT": CONNECT_TIMEOUT,
            "CIRCUIT_BREAKER": {"FAILURE_THRESHOLD": 2, "RECOVERY_TIME": 0.5},
            **options,
        },
    )


def _strict(make_cache: MakeCache, server: RedisServer, recovery_time: float) -> RedisCache:
    """A cache on ``server`` that raises outages (no IGNORE_EXCEPTIONS)."""
    return make_cache(
        server.url,
        OPTIONS={
            "SOCKET_CONNECT_TIMEOUT": CONNECT_TIMEOUT,
            "CIRCUIT_BREAKER": {"RECOVERY_TIME": recovery_time},
        },
    )


def test_ignore_exceptions_fails_open_then_breaker_then_recovery(
    make_cache: MakeCache, private_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    cache = _muted(make_cache, private_redis)
    assert cache.set("k", "v") is True
    private_redis.stop()

    with caplog.at_level(logging.WARNING, logger="django_rediskit.cache"):
        started = time.perf_counter()
        assert cache.get("k", "default") == "default"
        assert cache.set("k", "v2") is False
        assert time.perf_counter() - started < 2 * CONNECT_TIMEOUT + 0.5
    assert cache.breaker.is_open
    # Logged once, not once per call.
    assert len([r for r in caplog.records if "unavailable" in r.message]) == 1

    # Open breaker: no network, each call well under 1 ms.
    started = time.perf_counter()
    for _ in range(1000):
        assert cache.get("k", "d") == "d"
    per_call = (time.perf_counter() - started) / 1000
    assert per_call < 0.001, per_call
    assert cache.get_many(["a", "b"]) == {}
    assert cache.set_many({"a": 1, "b": 2}) == ["a", "b"]
    assert cache.add("a", 1) is False
    assert cache.delete("a") is False
    assert cache.has_key("a") is False
    assert cache.get_or_set("a", lambda: "computed") == "computed"
    assert list(cache.iter_keys("*")) == []
    assert cache.keys("*") == []
    assert cache.smembers("s") == set()
    assert cache.ttl("a") == 0
    assert cache.stats.errors > 2

    private_redis.start()  # same port, empty data
    time.sleep(0.6)  # past RECOVERY_TIME: the next call probes
    assert cache.set("k", "back") is True
    assert cache.get("k") == "back"
    assert not cache.breaker.is_open


def test_without_ignore_exceptions_the_error_is_clear(
    make_cache: MakeCache, private_redis: RedisServer
) -> None:
    cache = _strict(make_cache, private_redis, recovery_time=30)
    cache.set("k", 1)
    private_redis.stop()
    with pytest.raises(RedisConnectionError) as first:
        cache.get("k")
    assert not isinstance(first.value, CircuitOpen)
    with pytest.raises(RedisConnectionError):
        cache.set("k", 2)
    with pytest.raises(CircuitOpen, match="circuit breaker is open"):
        cache.get("k")
    with pytest.raises(CircuitOpen):
        list(cache.iter_keys("*"))
    cache.close()  # Django's request_finished handler: never an error, even now


def test_restart_without_breaker_trip_recovers_transparently(
    make_cache: MakeCache, private_redis: RedisServer
) -> None:
    cache = make_cache(private_redis.url)
    cache.set("k", 1)
    private_redis.restart()
    # redis-py reconnects the stale pooled connection; data is gone (nothing persisted).
    assert cache.get("k", "gone") == "gone"
    assert cache.set("k", 2)
    assert cache.get("k") == 2


def test_paused_server_times_out_and_is_muted(
    make_cache: MakeCache, private_redis: RedisServer
) -> None:
    cache = _muted(make_cache, private_redis)
    cache.set("k", 1)
    with private_redis.paused(2.0):
        started = time.perf_counter()
        assert cache.get("k", "timeout") == "timeout"
        assert time.perf_counter() - started < 2.0
    strict = make_cache(private_redis.url, OPTIONS={"SOCKET_TIMEOUT": 0.2})
    with private_redis.paused(1.0), pytest.raises((RedisTimeoutError, RedisConnectionError)):
        strict.get("k")


def test_command_errors_are_never_muted(make_cache: MakeCache, private_redis: RedisServer) -> None:
    cache = _muted(make_cache, private_redis)
    cache.sadd("a-set", 1)
    with pytest.raises(ResponseError, match="WRONGTYPE"):
        cache.hget("a-set", "field")
    assert not cache.breaker.is_open
    assert cache.stats.errors == 0


def test_wrong_password_is_not_muted(make_cache: MakeCache, private_redis: RedisServer) -> None:
    client = private_redis.client()
    client.config_set("requirepass", "right")
    client.close()
    cache = make_cache(
        private_redis.url.replace("redis://", "redis://:wrong@"),
        OPTIONS={"IGNORE_EXCEPTIONS": True},
    )
    with pytest.raises(RedisConnectionError):  # AuthenticationError: a configuration mistake
        cache.get("k")
    ok = make_cache(private_redis.url.replace("redis://", "redis://:right@"))
    ok.set("k", 1)
    assert ok.get("k") == 1


def _trip(cache: object, server: RedisServer) -> None:
    server.stop()
    for _ in range(2):
        with pytest.raises(RedisConnectionError):
            cache.get("k")  # type: ignore[attr-defined]
    assert cache.breaker.is_open  # type: ignore[attr-defined]


def test_half_open_probe_with_nested_calls_recovers_without_muting(
    make_cache: MakeCache, private_redis: RedisServer
) -> None:
    cache = _strict(make_cache, private_redis, recovery_time=0.3)
    _trip(cache, private_redis)
    private_redis.start()
    time.sleep(0.4)
    # get_or_set is the probe and calls get/add/set inside: they belong to the probe.
    assert cache.get_or_set("nested", lambda: "computed", 60) == "computed"
    assert not cache.breaker.is_open
    assert cache.get("nested") == "computed"


def test_abandoned_generator_does_not_hold_the_probe(
    make_cache: MakeCache, private_redis: RedisServer
) -> None:
    cache = _strict(make_cache, private_redis, recovery_time=0.3)
    cache.set_many({f"k{i}": i for i in range(5)})
    _trip(cache, private_redis)
    private_redis.start()
    cache_restarted = make_cache(private_redis.url, prefix=cache.key_prefix)
    cache_restarted.set_many({f"k{i}": i for i in range(5)})
    time.sleep(0.4)
    keys = cache.iter_keys("*", itersize=1)
    assert next(keys).startswith("k")  # the generator is the probe; it succeeded so far
    keys.close()  # abandoned before the end
    assert cache.get("k1") == 1  # a later call is not refused as "probe in progress"
    assert not cache.breaker.is_open


def test_breaker_probe_belongs_to_one_thread(
    make_cache: MakeCache, private_redis: RedisServer
) -> None:
    import threading

    cache = _strict(make_cache, private_redis, recovery_time=0.3)
    _trip(cache, private_redis)
    time.sleep(0.4)
    cache.breaker.before_call()  # this thread takes the probe
    refused: list[BaseException] = []

    def other() -> None:
        try:
            cache.breaker.before_call()
        except CircuitOpen as exc:
            refused.append(exc)

    thread = threading.Thread(target=other)
    thread.start()
    thread.join()
    assert len(refused) == 1
    cache.breaker.release_probe()


def test_producer_error_is_what_get_or_set_raises_even_if_redis_died_meanwhile(
    make_cache: MakeCache, private_redis: RedisServer
) -> None:
    cache = _strict(make_cache, private_redis, recovery_time=30)

    def producer() -> str:
        private_redis.stop()
        raise ValueError("the producer's own error")

    with pytest.raises(ValueError, match="producer's own error"):
        cache.get_or_set("k", producer, 60)
