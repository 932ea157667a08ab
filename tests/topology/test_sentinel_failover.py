"""Sentinel failover under HTTP load through Django: no 500s, service back without a restart.

Clients request a view that reads and writes the cache, saves its session and takes a throttle
decision (fail-closed) on every request, while the primary is killed and Sentinel promotes the
replica. During the gap the documented policy answers: the cache (IGNORE_EXCEPTIONS) falls back,
a session write or a fail-closed throttle answers 503 with Retry-After; never a 500. After the
promotion, requests succeed again within 10 s, through the same processes and clients.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings
from django.test import Client, override_settings

from django_rediskit.connection.policy import forget_policies

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def sentinel_site(sentinel_group: Any) -> Iterator[None]:
    alias_options = {
        "IGNORE_EXCEPTIONS": True,
        "SOCKET_TIMEOUT": 0.5,
        "SOCKET_CONNECT_TIMEOUT": 0.3,
        "CIRCUIT_BREAKER": {"FAILURE_THRESHOLD": 3, "RECOVERY_TIME": 0.3},
    }
    caches = {
        **settings.CACHES,
        "default": {
            "BACKEND": "django_rediskit.cache.RedisCache",
            "LOCATION": sentinel_group.url,
            "KEY_PREFIX": f"sf-{uuid.uuid4().hex[:8]}",
            "OPTIONS": alias_options,
        },
    }
    with override_settings(
        CACHES=caches,
        ROOT_URLCONF="tests.topology.urls",
        SESSION_ENGINE="django_rediskit.sessions.backend",
        MIDDLEWARE=["django_rediskit.sessions.middleware.SessionMiddleware"],
    ):
        forget_policies()
        yield
    forget_policies()


class Browser(threading.Thread):
    def __init__(self, index: int, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.client = Client(REMOTE_ADDR=f"10.0.0.{index}")
        self.stop = stop
        self.statuses: Counter[int] = Counter()
        self.last_failure_at = 0.0

    def run(self) -> None:
        page = 0
        while not self.stop.is_set():
            page += 1
            response = self.client.get("/work/", {"p": page % 20})
            self.statuses[response.status_code] += 1
            if response.status_code != 200:
                assert response.status_code != 503 or response.has_header("Retry-After")
                self.last_failure_at = time.monotonic()
                time.sleep(0.02)


def test_primary_killed_under_load_no_500_and_service_resumes(
    sentinel_group: Any, sentinel_site: None
) -> None:
    stop = threading.Event()
    browsers = [Browser(i, stop) for i in range(4)]
    for browser in browsers:
        browser.start()
    try:
        time.sleep(1.0)
        killed_at = time.monotonic()
        sentinel_group.kill_primary()  # returns once a replica is promoted and takes writes
        promoted_at = time.monotonic()
        deadline = promoted_at + 10.0
        while time.monotonic() < deadline:
            before = sum(sum(b.statuses.values()) for b in browsers)
            time.sleep(1.0)
            if all(b.last_failure_at < time.monotonic() - 1.0 for b in browsers) and (
                sum(sum(b.statuses.values()) for b in browsers) > before
            ):
                break
        resumed_at = max(b.last_failure_at for b in browsers)
        time.sleep(1.0)
    finally:
        stop.set()
        for browser in browsers:
            browser.join(timeout=30)
    statuses: Counter[int] = sum((b.statuses for b in browsers), Counter())
    print(
        f"\nsentinel failover: {dict(statuses)}; promotion {promoted_at - killed_at:.1f} s after "
        f"the kill; last failed request {resumed_at - promoted_at:+.2f} s from the promotion"
    )
    assert statuses[500] == 0
    assert set(statuses) <= {200, 503}
    assert resumed_at < promoted_at + 10.0
    assert all(b.last_failure_at < time.monotonic() - 0.9 for b in browsers)  # healthy again
