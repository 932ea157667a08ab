"""Login limits: every django.contrib.auth login path, on a private redis-server.

The admin's login, ``LoginView`` and DRF's ``obtain_auth_token`` are driven through the test
client with wrong passwords from one address; the limit must hold exactly on each, a correct
password after the limit must still be refused until the window passes, and successful logins
must consume nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.conf import settings as django_settings
from django.contrib.auth import aauthenticate, authenticate, get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.contrib.auth.signals import user_login_failed
from django.contrib.auth.views import LoginView
from django.core.checks import Error, Warning
from django.db import connection
from django.http import HttpRequest, HttpResponseBase
from django.test import Client, RequestFactory
from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt

from django_rediskit import checks as kit_checks
from django_rediskit.throttling import login
from django_rediskit.throttling.signals import login_rate_limited
from tests import servers
from tests.throttling.conftest import client_commands


@csrf_exempt
def token_view(request: HttpRequest) -> HttpResponseBase:
    """DRF's own ``obtain_auth_token``, imported late: its Token model needs the authtoken app,
    which the ``_authtoken`` fixture installs for the tests that use this view."""
    from rest_framework.authtoken.views import obtain_auth_token

    response: HttpResponseBase = obtain_auth_token(request)
    return response


urlpatterns = [
    path("admin/", include("tests.urls")),
    path("accounts/login/", LoginView.as_view(template_name="admin/login.html")),
    path("api/token/", token_view),
]

pytestmark = [pytest.mark.urls("tests.throttling.test_login"), pytest.mark.django_db]

PASSWORD = "right-password-1"
ADMIN_URL = "/admin/admin/login/"


@pytest.fixture
def login_server(private_redis: servers.RedisServer, settings: Any) -> servers.RedisServer:
    """Login limits on a private redis-server (its own alias: breakers are per alias)."""
    alias = f"login{private_redis.port}"
    settings.CACHES = {
        **settings.CACHES,
        alias: {
            "BACKEND": "django_rediskit.cache.RedisCache",
            "LOCATION": private_redis.url,
            "KEY_PREFIX": "lg",
            "OPTIONS": {"CIRCUIT_BREAKER": {"FAILURE_THRESHOLD": 2, "RECOVERY_TIME": 0.5}},
        },
    }
    settings.REDISKIT = {
        "THROTTLE": {"CACHE_ALIAS": alias, "SOCKET_TIMEOUT": 0.5, "SOCKET_CONNECT_TIMEOUT": 0.5},
        "LOGIN_RATES": {"ip": "8/min", "username": "5/min"},
    }
    settings.AUTHENTICATION_BACKENDS = [
        login.BACKEND_PATH,
        "django.contrib.auth.backends.ModelBackend",
    ]
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, login.MIDDLEWARE_PATH]
    # Fast hashing: the tests count attempts, not hashing cost.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    return private_redis


def set_rates(settings: Any, **rates: str) -> None:
    settings.REDISKIT = {**settings.REDISKIT, "LOGIN_RATES": rates}


@pytest.fixture
def user(login_server: servers.RedisServer) -> AbstractBaseUser:
    return get_user_model().objects.create_user(
        "alice", password=PASSWORD, is_staff=True, is_superuser=True
    )


@pytest.fixture
def _authtoken(settings: Any) -> Iterator[None]:
    """DRF's authtoken app and its table, for ``obtain_auth_token``.

    DRF decides at import whether its admin's TokenProxy is abstract, from INSTALLED_APPS, and
    ``override_settings`` repopulates the app registry before it swaps the settings in: so the
    names also go into the current list first, and come out again at the end.
    """
    extra = [app for app in ("rest_framework", "rest_framework.authtoken")]
    current: list[str] = django_settings.INSTALLED_APPS
    current.extend(extra)
    try:
        settings.INSTALLED_APPS = list(current)
        from rest_framework.authtoken.models import Token

        # Raw DDL: SQLite's schema editor refuses to run inside the test's transaction, whose
        # rollback drops this table again.
        with connection.cursor() as cursor:
            cursor.execute(
                f"CREATE TABLE {Token._meta.db_table} (key varchar(40) PRIMARY KEY, "
                "user_id integer NOT NULL UNIQUE, created datetime NOT NULL)"
            )
        yield
    finally:
        del current[-len(extra) :]


def _post(client: Client, view: str, username: str, password: str) -> HttpResponseBase:
    if view == "admin":
        return client.post(ADMIN_URL, {"username": username, "password": password})
    if view == "login":
        return client.post("/accounts/login/", {"username": username, "password": password})
    return client.post("/api/token/", {"username": username, "password": password})


def _is_failure(view: str, response: HttpResponseBase) -> bool:
    """The view's own "wrong credentials" answer (the password was checked)."""
    if view == "token":
        return response.status_code == 400
    return response.status_code == 200 and b"correct username and password" in response.content


def _is_success(view: str, response: HttpResponseBase) -> bool:
    if view == "token":
        return response.status_code == 200 and "token" in response.json()  # type: ignore[attr-defined]
    return response.status_code == 302


VIEWS = ["admin", "login", "token"]


@pytest.fixture(params=VIEWS)
def view(request: pytest.FixtureRequest) -> str:
    if request.param == "token":
        request.getfixturevalue("_authtoken")
    return str(request.param)


def test_twenty_wrong_passwords_for_one_user_hold_the_username_limit(
    login_server: servers.RedisServer, user: AbstractBaseUser, view: str, client: Client
) -> None:
    responses = [_post(client, view, "alice", f"wrong-{i}") for i in range(20)]
    failures = [_is_failure(view, r) for r in responses]
    assert failures == [True] * 5 + [False] * 15
    for response in responses[5:]:
        assert response.status_code == 429
        assert 1 <= int(response.headers["Retry-After"]) <= 60
        text = response.content.decode()
        assert "Too many login attempts, try again in" in text
    # the identity's log holds exactly the five counted failures
    keys = _keys(login_server, "login-user")
    assert [key_len for key_len in keys.values()] == [5]


def test_twenty_wrong_passwords_from_one_ip_hold_the_ip_limit(
    user: AbstractBaseUser, view: str, client: Client
) -> None:
    """Each attempt names a different user, so only the address limit (8/min) applies."""
    responses = [_post(client, view, f"user{i}", "wrong") for i in range(20)]
    assert [_is_failure(view, r) for r in responses] == [True] * 8 + [False] * 12
    assert {r.status_code for r in responses[8:]} == {429}
    # the real user, from this address, is refused too, and their budget is untouched
    assert _post(client, view, "alice", PASSWORD).status_code == 429
    other = Client(REMOTE_ADDR="10.0.0.2")
    assert _is_success(view, _post(other, view, "alice", PASSWORD))


def test_correct_password_after_the_limit_is_refused_until_the_window_passes(
    user: AbstractBaseUser, view: str, client: Client, settings: Any
) -> None:
    set_rates(settings, username="3/2s")
    assert all(_is_failure(view, _post(client, view, "alice", "wrong")) for _ in range(3))
    started = time.monotonic()
    refused = _post(client, view, "alice", PASSWORD)
    assert refused.status_code == 429
    wait = int(refused.headers["Retry-After"])
    assert 1 <= wait <= 2
    # still refused a moment later, inside the window
    assert _post(client, view, "alice", PASSWORD).status_code == 429
    time.sleep(max(0.0, 2.05 - (time.monotonic() - started)))
    assert _is_success(view, _post(client, view, "alice", PASSWORD))


def test_successful_logins_consume_nothing(
    login_server: servers.RedisServer,
    user: AbstractBaseUser,
    view: str,
    client: Client,
    settings: Any,
) -> None:
    set_rates(settings, ip="3/min", username="3/min")
    for _ in range(10):
        assert _is_success(view, _post(Client(), view, "alice", PASSWORD))
    assert _keys(login_server, "login") == {}
    # the whole budget is still there: three failures, then refused
    assert [_is_failure(view, _post(client, view, "alice", "x")) for _ in range(4)] == [
        True,
        True,
        True,
        False,
    ]


def test_username_is_hashed_and_case_folded_in_keys(
    login_server: servers.RedisServer, user: AbstractBaseUser, client: Client
) -> None:
    for name in ("alice", "ALICE", " Alice "):
        _post(client, "login", name, "wrong")
    keys = _keys(login_server, "login-user")
    assert len(keys) == 1 and list(keys.values()) == [3]
    with login_server.client() as raw:
        every_key = b" ".join(raw.keys("*"))  # a private server: KEYS is fine in a test
    assert b"alice" not in every_key.lower() and b"127.0.0.1" not in every_key


def test_authenticate_without_a_request_limits_the_username(
    user: AbstractBaseUser, settings: Any
) -> None:
    set_rates(settings, username="2/min")
    assert authenticate(username="alice", password="a") is None
    assert authenticate(username="alice", password="b") is None
    assert authenticate(username="alice", password=PASSWORD) is None  # refused, not checked
    set_rates(settings, username="3/min")
    assert authenticate(username="alice", password=PASSWORD) == user


def test_refusal_sends_a_signal_and_logs_without_the_username(
    user: AbstractBaseUser, client: Client, settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    set_rates(settings, username="1/min")
    received: list[dict[str, Any]] = []

    def receiver(**kwargs: Any) -> None:
        received.append(kwargs)

    login_rate_limited.connect(receiver)
    try:
        _post(client, "login", "alice", "wrong")
        with caplog.at_level(logging.WARNING, logger="django_rediskit.throttling.login"):
            assert _post(client, "login", "alice", "wrong").status_code == 429
    finally:
        login_rate_limited.disconnect(receiver)
    assert len(received) == 1
    assert received[0]["username"] == "alice" and received[0]["kinds"] == ("username",)
    assert received[0]["degraded"] is False and received[0]["retry_after"] > 0
    assert received[0]["request"] is not None
    (record,) = [r for r in caplog.records if r.name == "django_rediskit.throttling.login"]
    line = record.getMessage()
    assert "Login refused" in line and "ip=127.0.0.1" in line and "user#" in line
    assert "alice" not in line


def test_refused_attempts_are_not_counted_again(
    login_server: servers.RedisServer, user: AbstractBaseUser, client: Client, settings: Any
) -> None:
    """Over the username limit, more attempts must not eat the address's budget."""
    set_rates(settings, ip="10/min", username="2/min")
    for _ in range(6):
        _post(client, "login", "alice", "wrong")
    assert sorted(_keys(login_server, "login").values()) == [2, 2]


def test_redis_down_refuses_logins_fail_closed(
    login_server: servers.RedisServer, user: AbstractBaseUser, client: Client
) -> None:
    login_server.stop()
    responses = [_post(client, "login", "alice", PASSWORD) for _ in range(3)]
    assert {r.status_code for r in responses} == {503}
    assert all(int(r.headers["Retry-After"]) >= 1 for r in responses)
    assert b"cannot be checked" in responses[0].content
    assert authenticate(username="alice", password=PASSWORD) is None


def test_redis_down_with_fail_open_admits(
    login_server: servers.RedisServer, user: AbstractBaseUser, client: Client, settings: Any
) -> None:
    settings.REDISKIT = {**settings.REDISKIT, "LOGIN_FAIL_OPEN": True}
    login_server.stop()
    assert _post(client, "login", "alice", PASSWORD).status_code == 302
    # failures cannot be counted either, and never raise
    assert _is_failure("login", _post(Client(), "login", "alice", "wrong"))


def test_without_the_middleware_the_refusal_still_holds(
    user: AbstractBaseUser, client: Client, settings: Any
) -> None:
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if m != login.MIDDLEWARE_PATH]
    set_rates(settings, username="1/min")
    _post(client, "login", "alice", "wrong")
    response = _post(client, "login", "alice", PASSWORD)
    assert _is_failure("login", response)  # looks like a wrong password, but nobody got in
    assert "_auth_user_id" not in client.session


@pytest.mark.django_db(transaction=True)  # the threads' own connections must see the user
def test_concurrent_wrong_passwords_never_count_past_the_limit(
    login_server: servers.RedisServer, user: AbstractBaseUser, settings: Any
) -> None:
    set_rates(settings, username="5/min")
    factory = RequestFactory()
    barrier = threading.Barrier(12)
    results: list[object] = []

    def attempt() -> None:
        request = factory.post("/accounts/login/")
        barrier.wait()
        results.append(authenticate(request, username="alice", password="wrong"))

    threads = [threading.Thread(target=attempt) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [None] * 12
    assert list(_keys(login_server, "login-user").values()) == [5]
    # and the limit now holds for everyone, the right password included
    assert authenticate(factory.post("/"), username="alice", password=PASSWORD) is None


def test_json_answer_for_api_clients(user: AbstractBaseUser, client: Client, settings: Any) -> None:
    set_rates(settings, username="1/min")
    _post(client, "login", "alice", "wrong")
    response = client.post(
        "/accounts/login/",
        {"username": "alice", "password": "wrong"},
        HTTP_ACCEPT="application/json",
    )
    assert response.status_code == 429
    body = response.json()  # type: ignore[attr-defined]
    assert body["detail"].startswith("Too many login attempts") and body["retry_after"] >= 1


def test_no_login_rates_means_no_redis_call(
    login_server: servers.RedisServer, user: AbstractBaseUser, client: Client, settings: Any
) -> None:
    settings.REDISKIT = {k: v for k, v in settings.REDISKIT.items() if k != "LOGIN_RATES"}
    for _ in range(10):
        assert _is_failure("login", _post(client, "login", "alice", "wrong"))
    assert _keys(login_server, "") == {}


@pytest.mark.parametrize(
    "value",
    [
        "5/min",
        {},
        {"email": "5/min"},
        {"ip": "5/month"},
        {"username": 5},
        {"ip": ""},
    ],
)
def test_bad_login_rates_are_a_system_check_error(settings: Any, value: Any) -> None:
    settings.REDISKIT = {"LOGIN_RATES": value}
    messages = kit_checks.check_login_limits()
    assert [m.id for m in messages if isinstance(m, Error)] == ["django_rediskit.E620"]
    with pytest.raises(Exception, match="LOGIN_RATES"):
        login.parse_login_rates(value)


def test_guard_not_installed_is_a_warning(settings: Any) -> None:
    settings.REDISKIT = {"LOGIN_RATES": {"ip": "20/min"}}
    settings.AUTHENTICATION_BACKENDS = [
        "django.contrib.auth.backends.ModelBackend",
        login.BACKEND_PATH,  # present but not first: passwords are checked before it runs
    ]
    ids = sorted(m.id for m in kit_checks.check_login_limits() if isinstance(m, Warning))
    assert ids == ["django_rediskit.W620", "django_rediskit.W621"]
    settings.AUTHENTICATION_BACKENDS = [login.BACKEND_PATH]
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, login.MIDDLEWARE_PATH]
    assert kit_checks.check_login_limits() == []
    settings.REDISKIT = {"LOGIN_RATES": {"ip": "20/min"}, "LOGIN_FAIL_OPEN": "no"}
    assert [m.id for m in kit_checks.check_login_limits()] == ["django_rediskit.E621"]


# --- helpers -------------------------------------------------------------------------------------


def _keys(server: servers.RedisServer, scope: str) -> dict[bytes, int]:
    """The login-limit keys of ``scope`` on the private server, with the entries each holds."""
    with server.client() as raw:
        found = raw.keys(f"lg:rl:{{{scope}*")
        return {key: int(raw.llen(key)) for key in found}


def test_round_trips_per_attempt(
    login_server: servers.RedisServer, user: AbstractBaseUser, settings: Any
) -> None:
    """One EVALSHA per identity to check; one more per identity to count a failure."""
    set_rates(settings, ip="10/min", username="2/min")
    factory = RequestFactory()

    def attempt(password: str) -> Callable[[], object]:
        return lambda: authenticate(factory.post("/"), username="alice", password=password)

    attempt(PASSWORD)()  # connect and load the script first
    assert client_commands(login_server, attempt(PASSWORD)) == ["EVALSHA"] * 2  # success
    assert client_commands(login_server, attempt("bad")) == ["EVALSHA"] * 4  # failure
    attempt("bad")()
    assert client_commands(login_server, attempt("bad")) == ["EVALSHA"] * 2  # refused


def test_huge_and_odd_user_names(
    login_server: servers.RedisServer, user: AbstractBaseUser, settings: Any
) -> None:
    set_rates(settings, username="2/min")
    huge = "x" * 1_000_000
    for _ in range(3):
        assert authenticate(username=huge, password="a") is None
    assert list(_keys(login_server, "login-user").values()) == [2]  # one identity, limited
    assert login.identities(None, {"username": huge})["username"].startswith("sha256:")
    # no user name at all: nothing to key on without a request, and nothing breaks
    assert authenticate(password="a") is None
    assert login.identities(None, {"username": ""}) == {}
    assert login.identities(None, {"username": 12345}) == {"username": "12345"}


@pytest.mark.django_db(transaction=True)  # the async ORM runs in another thread
def test_aauthenticate_is_guarded_and_refusals_not_counted(
    login_server: servers.RedisServer, user: AbstractBaseUser, settings: Any
) -> None:
    set_rates(settings, ip="10/min", username="2/min")
    request = RequestFactory().post("/")

    def attempt(password: str) -> object:
        return async_to_sync(aauthenticate)(request, username="alice", password=password)

    assert attempt("a") is None and attempt("b") is None
    assert attempt(PASSWORD) is None  # refused
    assert attempt("c") is None  # refused, and not counted against the address
    assert sorted(_keys(login_server, "login").values()) == [2, 2]
    set_rates(settings, ip="10/min", username="3/min")
    assert attempt(PASSWORD) == user


def test_failures_signalled_by_other_code_count_too(
    login_server: servers.RedisServer, user: AbstractBaseUser
) -> None:
    """A custom backend or login flow may send user_login_failed itself, with fewer arguments."""
    user_login_failed.send(sender="custom", credentials={"username": "alice"})
    user_login_failed.send(sender="custom")  # nothing to key on: ignored, never an error
    assert list(_keys(login_server, "login-user").values()) == [1]
