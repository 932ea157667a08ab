"""Pub/sub on a real redis-server: restart and resubscribe, patterns, bad JSON, names."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from decimal import Decimal
from typing import Any

import pytest
from django.test import override_settings

from django_rediskit.connection.policy import RedisUnavailable
from django_rediskit.messaging.pubsub import Message, channel_name, publish, subscribe
from tests import servers
from tests.messaging import support


def unique(prefix: str = "c") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def drain(sub: Any, count: int, timeout: float = 10) -> list[Message]:
    got: list[Message] = []
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        message = sub.get_message(timeout=0.2)
        if message is not None:
            got.append(message)
    return got


def test_publish_reaches_subscribers_and_counts_them() -> None:
    channel = unique()
    assert publish(channel, {"nobody": True}) == 0
    with subscribe(channel) as first, subscribe(channel) as second:
        assert publish(channel, {"price": Decimal("1.50"), "n": 1}) == 2
        [a] = drain(first, 1)
        [b] = drain(second, 1)
    assert a == b == Message(channel, {"price": "1.50", "n": 1})


def test_channel_names_use_the_prefix_namespace_and_env() -> None:
    name = channel_name("product:changed")
    assert name.endswith(":ch:product:changed")
    with override_settings(REDISKIT={"KEY_ENV": "staging"}):
        assert channel_name("product:changed").endswith(":ch:staging:product:changed")
    for bad in ("with space", "a::b", "", "tab\there"):
        with pytest.raises(ValueError):
            channel_name(bad)
    with pytest.raises(TypeError):
        channel_name(42)  # type: ignore[arg-type]


def test_env_keeps_environments_apart() -> None:
    channel = unique()
    with subscribe(channel) as prod:
        with override_settings(REDISKIT={"KEY_ENV": "staging"}):
            assert publish(channel, "staging only") == 0
        assert publish(channel, "prod") == 1
        assert [m.data for m in drain(prod, 1)] == ["prod"]


@override_settings(REDISKIT={"MESSAGING": {"SHARDED_PUBSUB": False}})  # patterns on a cluster
def test_pattern_subscriptions() -> None:
    base = unique("p")
    with subscribe(patterns=[f"{base}:*"]) as sub:
        publish(f"{base}:created", {"id": 1})
        publish(f"{base}:deleted", {"id": 2})
        publish(f"{base}x:other", {"id": 3})  # does not match
        got = drain(sub, 3, timeout=1.5)
    assert [(m.channel, m.pattern, m.data) for m in got] == [
        (f"{base}:created", f"{base}:*", {"id": 1}),
        (f"{base}:deleted", f"{base}:*", {"id": 2}),
    ]


def test_bad_json_from_another_publisher_is_logged_and_skipped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    channel = unique()
    with subscribe(channel) as sub:
        raw = sub.backend.topology.client_for(sub.channels[0])
        received: list[Message] = []
        thread = sub.run_in_thread(received.append)
        try:
            with caplog.at_level(logging.WARNING, logger="django_rediskit.messaging"):
                _spublish_or_publish(sub, raw, b"{not json")
                _spublish_or_publish(sub, raw, b"\xff\xfe")
                publish(channel, {"ok": True})
                support.wait_for(lambda: len(received) == 1, 10, "the good message")
        finally:
            thread.stop()
    assert received == [Message(channel, {"ok": True})]
    assert sum("is not JSON" in r.getMessage() for r in caplog.records) == 2
    assert not thread.is_alive()


def _spublish_or_publish(sub: Any, raw: Any, body: bytes) -> None:
    if sub.sharded:
        raw.spublish(sub.channels[0], body)
    else:
        raw.publish(sub.channels[0], body)


def test_callback_errors_do_not_stop_the_loop() -> None:
    channel = unique()
    seen: list[Any] = []

    def callback(message: Message) -> None:
        seen.append(message.data)
        if message.data == 1:
            raise RuntimeError("callback bug")

    thread = subscribe(channel).run_in_thread(callback)
    try:
        publish(channel, 1)
        publish(channel, 2)
        support.wait_for(lambda: seen == [1, 2], 10, "both messages")
    finally:
        thread.stop()
    assert not thread.is_alive()


def test_subscribe_needs_something() -> None:
    with pytest.raises(ValueError):
        subscribe()


@pytest.mark.slow
def test_resubscribes_after_a_server_restart(private_redis: servers.RedisServer) -> None:
    """The server restarts under an idle subscriber: the health check notices (redis-py may
    not raise), it subscribes again, and messages published after that arrive."""
    options = {"CIRCUIT_BREAKER": {"FAILURE_THRESHOLD": 2, "RECOVERY_TIME": 0.2}}
    with support.site_on(private_redis.url, **options):
        channel = unique()
        reconnects: list[float] = []
        sub = subscribe(
            channel, health_check_interval=0.2, on_reconnect=lambda: reconnects.append(1.0)
        )
        received: list[Message] = []
        thread = sub.run_in_thread(received.append)
        try:
            assert publish(channel, "before") == 1
            support.wait_for(lambda: len(received) == 1, 5, "the first message")
            private_redis.stop()
            with pytest.raises(RedisUnavailable):  # publishers get a clear error
                publish(channel, "while down")
            time.sleep(0.5)
            private_redis.start()
            # publish until the subscriber is back (at-most-once: earlier ones may be lost)
            delivered: list[int] = []
            deadline = time.monotonic() + 15
            n = 0
            while len(delivered) < 5 and time.monotonic() < deadline:
                n += 1
                try:
                    if publish(channel, n) == 1:
                        delivered.append(n)
                except RedisUnavailable:
                    pass
                time.sleep(0.05)
            assert len(delivered) == 5, "the subscriber never came back"
            support.wait_for(
                lambda: {m.data for m in received} >= set(delivered),
                5,
                "messages after resubscribe",
            )
        finally:
            thread.stop()
        assert reconnects, "on_reconnect was not called"
        assert sub.subscriptions >= 2
        assert received[0].data == "before"


@pytest.mark.slow
def test_health_check_catches_a_silent_dead_connection(private_redis: servers.RedisServer) -> None:
    """The server kills the subscriber's connection (CLIENT KILL TYPE pubsub): whatever redis-py
    does about it, the subscriber is subscribed again within a few health-check intervals."""
    with support.site_on(private_redis.url):
        channel = unique()
        with subscribe(channel, health_check_interval=0.2) as sub:
            admin = private_redis.client()
            admin.client_kill_filter(_type="pubsub")
            deadline = time.monotonic() + 10
            ok = False
            while time.monotonic() < deadline and not ok:
                sub.get_message(timeout=0.1)
                ok = admin.pubsub_numsub(sub.channels[0])[0][1] == 1 and publish(channel, "x") == 1
            assert ok
            got = drain(sub, 1, timeout=5)
            assert got and got[-1].data == "x"
            admin.close()


def test_subscriber_started_while_redis_is_down_connects_later(
    private_redis: servers.RedisServer,
) -> None:
    with support.site_on(private_redis.url):
        channel = unique()
        private_redis.stop()
        sub = subscribe(channel, health_check_interval=0.2)  # no exception: it retries
        try:
            assert sub.get_message(timeout=0.3) is None
            private_redis.start()
            got: list[Message] = []

            def subscribed_and_received() -> bool:
                message = sub.get_message(timeout=0.1)  # the subscriber retries as it is read
                if message is not None:
                    got.append(message)
                return bool(got) or (_published(channel) and False)

            support.wait_for(subscribed_and_received, 10, "the subscription")
            assert got[0].data == "hello"
        finally:
            sub.close()


def _published(channel: str) -> bool:
    try:
        return publish(channel, "hello") == 1
    except RedisUnavailable:
        return False


def test_concurrent_publishers_every_message_arrives_once_while_connected() -> None:
    channel = unique()
    with subscribe(channel) as sub:
        received: list[Message] = []
        thread = sub.run_in_thread(received.append)
        try:

            def send(worker: int) -> None:
                for i in range(50):
                    publish(channel, [worker, i])

            publishers = [threading.Thread(target=send, args=(w,)) for w in range(4)]
            for p in publishers:
                p.start()
            for p in publishers:
                p.join()
            support.wait_for(lambda: len(received) == 200, 10, "200 messages")
        finally:
            thread.stop()
    assert sorted(tuple(m.data) for m in received) == [(w, i) for w in range(4) for i in range(50)]


def test_a_listener_that_goes_silent_is_replaced_by_the_health_check() -> None:
    """redis-py issue #3979: after a restart the listener may neither raise nor return
    anything. Simulated: the connection's reads return nothing, forever. Only the PING
    health check (no pong within an interval) can notice; it does, and subscribes again."""
    channel = unique()
    with subscribe(channel, health_check_interval=0.2) as sub:
        assert sub._pubsub is not None
        silent = sub._pubsub
        silent.get_message = lambda *a, **k: None  # type: ignore[method-assign]
        silent.get_sharded_message = lambda *a, **k: None  # type: ignore[attr-defined]
        started = time.monotonic()
        support.wait_for(
            lambda: sub.get_message(timeout=0.05) is None and sub.subscriptions == 2, 5, "renewal"
        )
        assert sub._pubsub is not silent
        # an interval of idleness + the pong timeout (PONG_TIMEOUT_MIN), not a TCP timeout
        assert time.monotonic() - started < 4
        assert publish(channel, "back") == 1
        assert [m.data for m in drain(sub, 1)] == ["back"]
