"""TTL strategies: absolute, sliding, dynamic, jitter, XFetch early refresh, TAG_TTL cap."""

from __future__ import annotations

import time

import pytest
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured

from django_rediskit.cache import decorators
from django_rediskit.cache.decorators import cached
from tests.cache.tagtools import private_cache
from tests.settings import REDIS_URL


def pttl(key: str) -> int:
    return int(cache._write().pttl(cache.make_key(key)))


def test_absolute_timeout_is_not_extended_by_reads() -> None:
    @cached(30, tags=["t"])
    def value() -> int:
        return 1

    value()
    key = value.key_for()
    cache._write().pexpire(cache.make_key(key), 5_000)
    value()
    assert 0 < pttl(key) <= 5_000


def test_sliding_timeout_restarts_on_every_hit() -> None:
    @cached(30, tags=["t"], sliding=True)
    def value() -> int:
        return 1

    value()
    key = value.key_for()
    cache._write().pexpire(cache.make_key(key), 5_000)
    value()
    assert pttl(key) > 25_000


def test_dynamic_timeout_from_the_value() -> None:
    @cached(lambda result: 5 if result == "partial" else 50)
    def report(kind: str) -> str:
        return kind

    report("partial")
    report("full")
    assert 0 < pttl(report.key_for("partial")) <= 5_000
    assert pttl(report.key_for("full")) > 40_000


def test_jitter_spreads_expiries_of_keys_written_together() -> None:
    @cached(100, jitter=0.5)
    def item(n: int) -> int:
        return n

    ttls = []
    for n in range(40):
        item(n)
        ttls.append(pttl(item.key_for(n)))
    assert all(50_000 - 100 <= ttl <= 100_000 for ttl in ttls)
    assert max(ttls) - min(ttls) > 10_000  # 40 draws from a 50 s window


def test_backend_jitter_option_applies_to_every_write() -> None:
    backend = private_cache(REDIS_URL, JITTER=0.5)
    backend.set_many({f"k{i}": i for i in range(40)}, 100)
    client = backend._write()
    ttls = [client.pttl(backend.make_key(f"k{i}")) for i in range(40)]
    assert all(50_000 - 100 <= ttl <= 100_000 for ttl in ttls)
    assert max(ttls) - min(ttls) > 10_000
    backend.delete_many([f"k{i}" for i in range(40)])


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"JITTER": 1.0}, "JITTER"),
        ({"JITTER": -0.1}, "JITTER"),
        ({"TAG_TTL": 0}, "TAG_TTL"),
        ({"TAG_TTL": "week"}, "TAG_TTL"),
    ],
)
def test_bad_ttl_options(options: dict[str, object], message: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=message):
        private_cache(REDIS_URL, **options)


def test_tag_ttl_caps_tagged_entries_and_covers_their_versions() -> None:
    backend = private_cache(REDIS_URL, TAG_TTL=60)
    backend.set("forever", 1, None, tags=["t"])
    backend.set("long", 1, 3600, tags=["t"])
    backend.set("untagged", 1, None)
    client = backend._write()
    assert 0 < client.pttl(backend.make_key("forever")) <= 60_000
    assert 0 < client.pttl(backend.make_key("long")) <= 60_000
    assert client.pttl(backend.make_key("untagged")) == -1  # untagged keeps Django's meaning
    assert client.pttl(backend.tag_key("t")) > 59_000
    client.unlink(*(backend.make_key(k) for k in ("forever", "long", "untagged")))
    client.unlink(backend.tag_key("t"))


def test_xfetch_refreshes_early_once_and_serves_meanwhile(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    @cached(60, tags=["hot"], xfetch=100.0)
    def hot() -> int:
        calls.append(1)
        time.sleep(0.05)  # delta ≈ 50 ms; beta 100 makes the refresh window seconds wide
        return len(calls)

    monkeypatch.setattr(decorators.random, "random", lambda: 0.0)  # -ln(1) = 0: no early refresh
    assert hot() == 1
    assert hot() == 1
    assert calls == [1]

    monkeypatch.setattr(decorators.random, "random", lambda: 0.999999)  # -ln(1e-6) ≈ 13.8
    lock = cache.stampede_lock(hot.key_for())
    assert lock.acquire(blocking=False)
    try:
        assert hot() == 1  # someone else is refreshing: serve the current value
    finally:
        lock.release()
    assert hot() == 2  # 0.05 s * 100 * 13.8 ≈ 69 s >= the 60 s left: refresh now
    assert calls == [1, 1]
    monkeypatch.setattr(decorators.random, "random", lambda: 0.0)
    assert hot() == 2
    cache.invalidate_tags("hot")
    assert hot() == 3


def test_xfetch_ignores_a_foreign_value_at_its_key() -> None:
    @cached(60, xfetch=1.0)
    def value() -> str:
        return "computed"

    cache.set(value.key_for(), "written by someone else", 60)
    assert value() == "computed"
    assert value() == "computed"


@pytest.mark.parametrize(
    "options",
    [
        {"SCAN_COUNT": 0},
        {"DELETE_BATCH_SIZE": "500"},
        {"STAMPEDE_LOCK_TIMEOUT": -1},
        {"CLEAR_SESSIONS": "yes"},
    ],
)
def test_bad_backend_options_fail_at_construction_and_in_the_system_check(
    options: dict[str, object],
) -> None:
    """One parser (CacheOptions) for the backend and for ``manage.py check``: same message."""
    from django.test import override_settings

    from django_rediskit.checks import check_cache_options

    with pytest.raises(ImproperlyConfigured, match=next(iter(options))) as raised:
        private_cache(REDIS_URL, **options)
    caches = {
        "default": {
            "BACKEND": "django_rediskit.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "OPTIONS": options,
        }
    }
    with override_settings(CACHES=caches):
        errors = [m for m in check_cache_options() if m.id == "django_rediskit.E001"]
    assert [str(raised.value) in m.msg for m in errors] == [True]
