"""``manage.py rediskit_info`` against the real session server and private servers we stop."""

from __future__ import annotations

import json
import time
from io import StringIO
from typing import Any

import pytest
from django.conf import settings
from django.core.cache import caches
from django.core.management import CommandError, call_command
from django.test import override_settings
from redis.exceptions import ConnectionError as RedisConnectionError

from django_rediskit.management.commands.rediskit_info import eviction_warnings
from tests.servers import RedisServer


def run(*args: str) -> str:
    out = StringIO()
    call_command("rediskit_info", *args, stdout=out)
    return out.getvalue()


def run_json(*args: str) -> dict[str, Any]:
    reports: dict[str, Any] = {
        report["alias"]: report for report in json.loads(run("--json", *args))["aliases"]
    }
    return reports


def with_alias(alias: str, location: str, **options: Any) -> override_settings:
    """The test settings plus one more rediskit alias (a fresh name: breakers are per alias)."""
    cache_conf = {
        "BACKEND": "django_rediskit.cache.RedisCache",
        "LOCATION": location,
        "KEY_PREFIX": f"info-{alias}",
        "OPTIONS": options,
    }
    return override_settings(CACHES={**settings.CACHES, alias: cache_conf})


@pytest.mark.standalone_only  # compares INFO with one server's own numbers
def test_reports_every_rediskit_alias_with_live_server_numbers() -> None:
    cache = caches["default"]
    cache.set("present", "value")
    before = cache.stats.as_dict()
    assert cache.get("present") == "value"
    assert cache.get("absent") is None

    reports = run_json()

    assert set(reports) == {"default", "other"}
    report = reports["default"]
    assert report["error"] is None
    assert report["key_prefix"] == settings.CACHES["default"]["KEY_PREFIX"]
    assert report["serializer"] == "pickle"
    assert report["signed"] is True
    assert report["compressor"] is None
    assert report["breaker"]["state"] == "closed"
    assert report["process_stats"]["hits"] == before["hits"] + 1
    assert report["process_stats"]["misses"] == before["misses"] + 1
    client = cache.client.get_client(write=True)
    info = client.info()
    server = report["server"]
    assert server["version"] == info["redis_version"]
    assert server["maxmemory_policy"] == info["maxmemory_policy"]
    assert server["keyspace_hits"] <= info["keyspace_hits"]
    assert server["dbsize"] == client.dbsize() >= 1
    assert 0 <= server["keyspace_hit_ratio"] <= 1
    assert server["connected_clients"] >= 1


def test_text_output_names_prefix_codec_and_server() -> None:
    text = run("--alias", "other")
    assert "CACHES['other']" in text
    assert "CACHES['default']" not in text
    assert repr(settings.CACHES["other"]["KEY_PREFIX"]) in text
    assert "pickle, signed, no compression" in text
    assert "breaker        closed" in text
    assert "dbsize" in text


def test_password_is_redacted(private_redis: RedisServer) -> None:
    private_redis.client().config_set("requirepass", "s3cret-pw")
    url = f"redis://:s3cret-pw@127.0.0.1:{private_redis.port}/0"
    with with_alias("info-auth", url, COMPRESSOR="zlib", SERIALIZER="json", SIGN_VALUES=False):
        text = run("--alias", "info-auth")
        document = run("--json", "--alias", "info-auth")
    assert "s3cret-pw" not in text
    assert "s3cret-pw" not in document
    assert f"redis://:***@127.0.0.1:{private_redis.port}/0" in text
    assert "json, unsigned, zlib from 1024 B" in text
    assert json.loads(document)["aliases"][0]["server"]["dbsize"] == 1  # the rig's marker key


@pytest.mark.parametrize(
    ("policy", "warned"),
    [("noeviction", True), ("volatile-lru", True), ("volatile-ttl", True), ("allkeys-lru", False)],
)
def test_eviction_policy_warnings(private_redis: RedisServer, policy: str, warned: bool) -> None:
    client = private_redis.client()
    client.config_set("maxmemory", "64mb")
    client.config_set("maxmemory-policy", policy)
    with with_alias(f"info-{policy}", private_redis.url):
        report = run_json("--alias", f"info-{policy}")[f"info-{policy}"]
        text = run("--alias", f"info-{policy}")
    assert report["server"]["maxmemory"] == 64 * 1024 * 1024
    assert report["server"]["maxmemory_policy"] == policy
    assert bool(report["server"]["warnings"]) is warned
    assert ("WARNING: maxmemory-policy" in text) is warned
    assert f"maxmemory 64.00M, policy {policy}" in text


def test_no_maxmemory_is_a_warning() -> None:
    assert any("maxmemory is 0" in w for w in eviction_warnings(0, "allkeys-lfu"))
    assert eviction_warnings(1024, "allkeys-lfu") == []


def test_redis_down_is_a_clear_error_with_nonzero_exit(private_redis: RedisServer) -> None:
    with with_alias("info-down", private_redis.url):
        private_redis.stop()
        started = time.monotonic()
        with pytest.raises(CommandError, match=r"Redis unreachable at redis://127\.0\.0\.1"):
            run("--alias", "info-down")
        out = StringIO()
        with pytest.raises(CommandError, match="unreachable"):
            call_command("rediskit_info", "--json", "--alias", "info-down", stdout=out)
    assert time.monotonic() - started < 10  # connect timeouts, not a hang
    report = json.loads(out.getvalue())["aliases"][0]
    assert report["server"] is None
    assert "ConnectionError" in report["error"]
    assert report["key_prefix"] == "info-info-down"  # the local part is still reported


def test_one_alias_down_still_reports_the_others(private_redis: RedisServer) -> None:
    with with_alias("info-half", private_redis.url):
        private_redis.stop()
        out = StringIO()
        with pytest.raises(CommandError, match="Redis unreachable"):
            call_command("rediskit_info", "--alias", "default", "--alias", "info-half", stdout=out)
    text = out.getvalue()
    assert "CACHES['default']" in text
    assert "dbsize" in text  # the live alias got its server section
    assert "ERROR: Redis unreachable" in text


def test_open_breaker_and_error_counters_are_shown(private_redis: RedisServer) -> None:
    options = {"CIRCUIT_BREAKER": {"RECOVERY_TIME": 0.2}}
    with with_alias("info-breaker", private_redis.url, **options):
        cache = caches["info-breaker"]
        cache.set("k", 1)
        private_redis.stop()
        for _ in range(3):
            with pytest.raises(RedisConnectionError):
                cache.get("k")
        out = StringIO()
        with pytest.raises(CommandError):
            call_command("rediskit_info", "--json", "--alias", "info-breaker", stdout=out)
        report = json.loads(out.getvalue())["aliases"][0]
        assert report["breaker"]["state"] == "open"
        assert report["process_stats"]["errors"] >= 3
        private_redis.start()
        # The command asks Redis past the breaker: the server is seen back while it is open.
        assert run_json("--alias", "info-breaker")["info-breaker"]["error"] is None
        assert "breaker        open" in run("--alias", "info-breaker")
        time.sleep(0.25)  # past RECOVERY_TIME: the next call is the probe that closes it
        assert cache.get("k") is None  # the probe; the restarted server kept nothing
        assert run_json("--alias", "info-breaker")["info-breaker"]["breaker"]["state"] == "closed"


def test_unknown_or_foreign_alias_is_rejected() -> None:
    with pytest.raises(CommandError, match="no alias 'nope'"):
        run("--alias", "nope")
    foreign = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    with override_settings(CACHES={**settings.CACHES, "local": foreign}):
        with pytest.raises(CommandError, match="features need django_rediskit"):
            run("--alias", "local")
        assert "CACHES['local']" not in run()  # not ours: skipped when listing all


def test_no_rediskit_alias_at_all() -> None:
    only_foreign = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    with (
        override_settings(CACHES=only_foreign),
        pytest.raises(CommandError, match="No CACHES alias uses"),
    ):
        run()
