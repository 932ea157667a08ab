"""@cached, cached_page, {% cached_fragment %} and rediskit_invalidate on the session Redis."""

from __future__ import annotations

import io
import threading
import time
from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser, User
from django.core.cache import cache, caches
from django.core.management import CommandError, call_command
from django.http import HttpRequest, HttpResponse
from django.template import Context, Template, TemplateSyntaxError
from django.test import RequestFactory

from django_rediskit.cache.decorators import cached, cached_page
from tests.cache.tagtools import RoundTrips, round_trips  # noqa: F401

# --- @cached ---------------------------------------------------------------------------------


def test_cached_function_per_arguments_with_tags_invalidate_and_refresh() -> None:
    db = {1: "lamp", 2: "desk"}
    calls: list[int] = []

    @cached(60, tags=[lambda pk: f"product:{pk}", "products"])
    def product_name(pk: int) -> str:
        calls.append(pk)
        return db[pk]

    assert product_name(1) == "lamp"
    assert product_name(1) == "lamp"
    assert product_name(pk=1) == "lamp"  # same binding, same key
    assert product_name(2) == "desk"
    assert calls == [1, 2]
    assert product_name.tags_for(1) == ["product:1", "products"]

    db[1] = "lamp v2"
    cache.invalidate_tags("product:1")
    assert product_name(1) == "lamp v2"
    assert product_name(2) == "desk"
    assert calls == [1, 2, 1]

    db[2] = "desk v2"
    assert product_name.refresh(2) == "desk v2"
    assert product_name(2) == "desk v2"
    assert product_name.invalidate(2) is True
    assert product_name.invalidate(2) is False
    cache.invalidate_tags("products")
    product_name(1)
    product_name(2)
    assert calls == [1, 2, 1, 2, 1, 2]


@pytest.mark.standalone_only
def test_cached_hit_is_one_round_trip(round_trips: RoundTrips) -> None:  # noqa: F811
    @cached(60, tags=["a", "b", "c"])
    def value() -> int:
        return 5

    value()
    with round_trips.measure() as trips:
        assert value() == 5
    assert trips.count == 1


def test_cached_methods_keys_templates_and_model_instances() -> None:
    calls: list[Any] = []

    class Service:
        def __init__(self, scale: int) -> None:
            self.scale = scale

        @cached(60, vary_on=["user", "n"], key="svc")
        def compute(self, user: User, n: int) -> int:
            calls.append((user.pk, n))
            return n * self.scale

        @cached(60, key="user:{user_id}:profile")
        def profile(self, user_id: int) -> str:
            return f"profile {user_id}"

        @cached(60)
        def opaque(self) -> int:  # self is in the key, and it has no stable identity
            return self.scale

    service = Service(10)
    alice, bob = User(pk=1, username="alice"), User(pk=2, username="bob")
    assert service.compute(alice, 3) == 30
    assert Service(99).compute(alice, 3) == 30  # self is not part of the key (vary_on)
    assert service.compute(bob, 3) == 30
    assert calls == [(1, 3), (2, 3)]
    assert service.compute.key_for(alice, 3).startswith("cached:")
    assert ":svc:" in service.compute.key_for(alice, 3)
    assert service.compute.invalidate(alice, 3) is True
    assert service.profile(7) == "profile 7"
    assert service.profile.key_for(7).endswith(":user:7:profile")
    with pytest.raises(TypeError, match="__cache_key__"):
        service.opaque()


def test_cached_bad_configuration_is_rejected_early() -> None:
    with pytest.raises(ValueError, match="vary_on"):

        @cached(60, vary_on=["nope"])
        def f(x: int) -> int:
            return x

    with pytest.raises(ValueError, match="jitter"):
        cached(60, jitter=1.5)
    with pytest.raises(ValueError, match="sliding"):
        cached(60, sliding=True, xfetch=1.0)
    with pytest.raises(ValueError, match="finite"):
        cached(None, sliding=True)

    @cached(60, tags=lambda x: 5)  # type: ignore[arg-type,return-value]
    def g(x: int) -> int:
        return x

    with pytest.raises(TypeError, match="str"):
        g(1)


def test_cached_is_stampede_safe_one_computer_per_key() -> None:
    computed: list[int] = []
    lock = threading.Lock()

    @cached(60, tags=["slow"])
    def slow(n: int) -> int:
        with lock:
            computed.append(n)
        time.sleep(0.2)
        return n * 2

    results: list[int] = []
    threads = [threading.Thread(target=lambda: results.append(slow(21))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [42] * 8
    assert computed == [21]


def test_cached_none_results_are_cached() -> None:
    calls: list[int] = []

    @cached(60)
    def nothing() -> None:
        calls.append(1)

    nothing()
    nothing()
    assert calls == [1]


# --- cached_page ------------------------------------------------------------------------------


def _page_view(counter: list[int], **response_headers: str) -> Any:
    @cached_page(60, tags=[lambda request, pk: f"product:{pk}"], vary_on_headers=["Accept"])
    def view(request: HttpRequest, pk: int) -> HttpResponse:
        counter.append(pk)
        response = HttpResponse(f"<p>product {pk} #{len(counter)}</p>")
        for name, value in response_headers.items():
            response[name.replace("_", "-")] = value
        return response

    return view


def _get(path: str, user: Any = None, **headers: str) -> HttpRequest:
    request = RequestFactory().get(path, headers=headers)
    request.user = user or AnonymousUser()
    return request


def test_cached_page_caches_varies_and_invalidates_by_tag() -> None:
    counter: list[int] = []
    view = _page_view(counter, Vary="Accept")
    first = view(_get("/p/1"), pk=1)
    again = view(_get("/p/1"), pk=1)
    assert again.content == first.content == b"<p>product 1 #1</p>"
    assert again["Vary"] == "Accept"
    view(_get("/p/1", Accept="application/json"), pk=1)  # another Accept: another entry
    view(_get("/p/1?page=2"), pk=1)  # another query string: another entry
    assert len(counter) == 3
    cache.invalidate_tags("product:1")
    assert view(_get("/p/1"), pk=1).content == b"<p>product 1 #4</p>"


@pytest.mark.parametrize(
    "headers",
    [{"Cache_Control": "private"}, {"Cache_Control": "no-store"}, {"Vary": "Cookie"}],
)
def test_cached_page_refuses_unsafe_responses(headers: dict[str, str]) -> None:
    counter: list[int] = []
    view = _page_view(counter, **headers)
    view(_get("/p/2"), pk=2)
    view(_get("/p/2"), pk=2)
    assert counter == [2, 2]


def test_cached_page_never_shares_a_logged_in_page() -> None:
    counter: list[int] = []
    view = _page_view(counter)
    user = User(pk=5, username="u")
    view(_get("/p/3", user=user), pk=3)
    view(_get("/p/3", user=user), pk=3)
    view(RequestFactory().post("/p/3"), pk=3)
    assert counter == [3, 3, 3]

    served: list[str] = []

    @cached_page(60, per_user=True)
    def mine(request: HttpRequest) -> HttpResponse:
        served.append(request.user.username)
        return HttpResponse(f"hello {request.user.username}")

    alice, bob = User(pk=1, username="alice"), User(pk=2, username="bob")
    assert mine(_get("/me", user=alice)).content == b"hello alice"
    assert mine(_get("/me", user=bob)).content == b"hello bob"
    assert mine(_get("/me", user=alice)).content == b"hello alice"
    assert served == ["alice", "bob"]


# --- {% cached_fragment %} ---------------------------------------------------------------------


def test_cached_fragment_renders_once_and_invalidates_by_tag() -> None:
    renders: list[int] = []

    class Product:
        pk = 9

        def price(self) -> str:
            renders.append(1)
            return "<b>9.99</b>"

    source = (
        "{% load rediskit_cache %}"
        '{% cached_fragment "card" 60 product.pk tags=tags %}[{{ product.price }}]'
        "{% endcached_fragment %}"
    )
    context = {"product": Product(), "tags": ["product:9", "cards"]}
    first = Template(source).render(Context(context))
    assert first == "[&lt;b&gt;9.99&lt;/b&gt;]"  # escaped once, at render time
    assert Template(source).render(Context(context)) == first
    assert renders == [1]
    cache.invalidate_tags("cards")
    assert Template(source).render(Context(context)) == first
    assert renders == [1, 1]


@pytest.mark.parametrize(
    "source",
    [
        '{% load rediskit_cache %}{% cached_fragment "x" %}{% endcached_fragment %}',
        '{% load rediskit_cache %}{% cached_fragment "x" 60 tagz=1 %}{% endcached_fragment %}',
        '{% load rediskit_cache %}{% cached_fragment "x" 60 tags=1 tags=2 %}'
        "{% endcached_fragment %}",
    ],
)
def test_cached_fragment_syntax_errors(source: str) -> None:
    with pytest.raises(TemplateSyntaxError):
        Template(source)


def test_cached_fragment_bad_timeout() -> None:
    template = Template(
        '{% load rediskit_cache %}{% cached_fragment "x" "soon" %}x{% endcached_fragment %}'
    )
    with pytest.raises(TemplateSyntaxError, match="timeout"):
        template.render(Context({}))


# --- manage.py rediskit_invalidate --------------------------------------------------------------


def test_command_invalidates_tags_with_dry_run() -> None:
    cache.set("a", 1, 60, tags=["t1"])
    cache.set("b", 2, 60, tags=["t2"])
    out = io.StringIO()
    call_command("rediskit_invalidate", "--tag", "t1", "--tag", "zz", "--dry-run", stdout=out)
    assert "1 of 2" in out.getvalue()
    assert cache.get("a") == 1
    out = io.StringIO()
    call_command("rediskit_invalidate", "--tag", "t1", "--tag", "t2", stdout=out)
    assert "Invalidated 2 tag(s)" in out.getvalue()
    assert cache.get_many(["a", "b"]) == {}


def test_command_pattern_dry_run_count_progress_and_delete() -> None:
    cache.set_many({f"product:{i}": i for i in range(1200)}, 60)
    cache.set_many({"product-x": 1, "other:1": 1}, 60)
    caches["other"].set("product:1", "other cache", 60)
    out, err = io.StringIO(), io.StringIO()
    call_command(
        "rediskit_invalidate", "--pattern", "product:*", "--dry-run", stdout=out, stderr=err
    )
    assert "1200 key(s) match" in out.getvalue()
    assert err.getvalue() == ""  # not a terminal: no bar (tests/test_site_progress.py draws one)
    assert cache.get("product:7") == 7
    out = io.StringIO()
    call_command("rediskit_invalidate", "--pattern", "product:*", stdout=out, stderr=io.StringIO())
    assert "Deleted 1200 key(s)" in out.getvalue()
    assert cache.get("product:7") is None
    assert cache.get("product-x") == 1 and cache.get("other:1") == 1
    assert caches["other"].get("product:1") == "other cache"


@pytest.mark.parametrize(
    "argv",
    [[], ["--pattern", " "], ["--tag", ""], ["--tag", "x", "--cache", "nope"]],
)
def test_command_bad_input(argv: list[str]) -> None:
    with pytest.raises(CommandError):
        call_command("rediskit_invalidate", *argv, stdout=io.StringIO())


# --- Redis down ---------------------------------------------------------------------------------


def test_decorators_fail_open_when_redis_is_down(private_redis: Any) -> None:
    from django.conf import settings
    from django.test import override_settings

    down = {
        "BACKEND": "django_rediskit.cache.RedisCache",
        "LOCATION": private_redis.url,
        "KEY_PREFIX": "down",
        "OPTIONS": {
            "IGNORE_EXCEPTIONS": True,
            "CIRCUIT_BREAKER": False,
            "SOCKET_CONNECT_TIMEOUT": 0.2,
            "SOCKET_TIMEOUT": 0.5,
        },
    }
    with override_settings(CACHES={**settings.CACHES, "down": down}):
        calls: list[int] = []

        @cached(60, tags=[lambda n: f"n:{n}"], cache="down")
        def double(n: int) -> int:
            calls.append(n)
            return n * 2

        @cached_page(60, tags=["page"], cache="down")
        def page(request: HttpRequest) -> HttpResponse:
            return HttpResponse("page")

        assert double(2) == 4 and double(2) == 4
        assert calls == [2]  # cached while Redis is up
        private_redis.stop()
        assert double(3) == 6 and double(3) == 6
        assert calls == [2, 3, 3]  # computed every time, never an error
        assert double.refresh(3) == 6
        assert page(_get("/")).content == b"page"
        fragment = Template(
            '{% load rediskit_cache %}{% cached_fragment "f" 60 tags="x" using="down" %}'
            "ok{% endcached_fragment %}"
        )
        assert fragment.render(Context({})) == "ok"
