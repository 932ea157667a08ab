"""``SessionMiddleware`` in an async stack: the response half is awaited on the loop, no thread.

Every scenario runs twice, through the middleware in a sync stack (a sync ``get_response``) and
in an async one, and the two responses must carry the same status, cookies and ``Vary``; the
async run happens where the sync driver and ``sync_to_async`` are forbidden. Django's own
middleware tests run against the sync half (``conformance/``, ``RediskitOwnMiddlewareTests``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from django.conf import settings
from django.contrib.sessions.exceptions import SessionInterrupted
from django.http import HttpRequest, HttpResponse
from django.test import RequestFactory, override_settings

from django_rediskit.sessions.backend import SessionStore
from django_rediskit.sessions.middleware import SessionMiddleware
from tests.servers import RedisServer
from tests.sessions.test_async import on_the_loop_only, signed_in
from tests.sessions.test_outage import own_redis  # noqa: F401  (a fixture)

pytestmark = pytest.mark.django_db

SyncView = Callable[[HttpRequest], HttpResponse]
AsyncView = Callable[[HttpRequest], Awaitable[HttpResponse]]


def request_with(cookie: str | None, agent: str = "Firefox/120") -> HttpRequest:
    request = RequestFactory().get("/", HTTP_USER_AGENT=agent, REMOTE_ADDR="10.0.0.9")
    if cookie is not None:
        request.COOKIES[settings.SESSION_COOKIE_NAME] = cookie
    return request


def summary(response: Any) -> dict[str, Any]:
    """What a browser sees of the middleware's work."""
    cookie = response.cookies.get(settings.SESSION_COOKIE_NAME)
    return {
        "status": response.status_code,
        "vary": response.get("Vary"),
        "cookie": None if cookie is None else bool(cookie.value),
        "max-age": None if cookie is None else cookie["max-age"],
        "retry-after": response.get("Retry-After"),
    }


def both(
    sync_view: SyncView, async_view: AsyncView, cookie: Callable[[], str | None]
) -> tuple[dict[str, Any], dict[str, Any], tuple[Any, Any]]:
    """The same request through the sync and the async stack; their summaries, responses."""
    sync_response = SessionMiddleware(sync_view)(request_with(cookie()))

    async def view(request: HttpRequest) -> HttpResponse:
        return await async_view(request)

    middleware = SessionMiddleware(view)
    request = request_with(cookie())
    with on_the_loop_only():
        async_response = asyncio.run(middleware(request))  # type: ignore[arg-type]
    return summary(sync_response), summary(async_response), (sync_response, async_response)


def write_cart(request: HttpRequest) -> HttpResponse:
    request.session["cart"] = [1]
    return HttpResponse("ok")


async def awrite_cart(request: HttpRequest) -> HttpResponse:
    await request.session.aset("cart", [1])
    return HttpResponse("ok")


def saved(**data: Any) -> str:
    """The key of a new session holding ``data``, saved with the sync engine."""
    session = SessionStore()
    for name, value in data.items():
        session[name] = value
    session.save()
    assert session.session_key is not None
    return session.session_key


def stored(response: Any) -> dict[str, Any]:
    key = response.cookies[settings.SESSION_COOKIE_NAME].value
    return dict(SessionStore(key).items())


def test_a_new_session_is_saved_with_its_cookie() -> None:
    plain, native, (first, second) = both(write_cart, awrite_cart, lambda: None)
    assert plain == native
    assert native["cookie"] is True and native["max-age"] == settings.SESSION_COOKIE_AGE
    assert native["vary"] == "Cookie"
    assert stored(first) == stored(second) == {"cart": [1]}


def test_a_read_only_request_varies_on_cookie_and_sets_none() -> None:
    key = saved(n=3)

    def sync_view(request: HttpRequest) -> HttpResponse:
        return HttpResponse(str(request.session.get("n")))

    async def async_view(request: HttpRequest) -> HttpResponse:
        return HttpResponse(str(await request.session.aget("n")))

    plain, native, (_, response) = both(sync_view, async_view, lambda: key)
    assert plain == native == {**native, "cookie": None, "vary": "Cookie", "status": 200}
    assert response.content == b"3"


def test_a_flushed_session_deletes_its_cookie() -> None:
    keys: list[str] = []

    def fresh() -> str:
        keys.append(saved(n=1))
        return keys[-1]

    def sync_view(request: HttpRequest) -> HttpResponse:
        request.session.flush()
        return HttpResponse("bye")

    async def async_view(request: HttpRequest) -> HttpResponse:
        await request.session.aflush()
        return HttpResponse("bye")

    plain, native, _ = both(sync_view, async_view, fresh)
    assert plain == native
    assert native["cookie"] is False and native["max-age"] == 0  # deleted
    assert [SessionStore().exists(key) for key in keys] == [False, False]


def test_a_server_error_saves_nothing() -> None:
    def sync_view(request: HttpRequest) -> HttpResponse:
        request.session["half"] = "done"
        return HttpResponse("boom", status=500)

    async def async_view(request: HttpRequest) -> HttpResponse:
        await request.session.aset("half", "done")
        return HttpResponse("boom", status=500)

    plain, native, _ = both(sync_view, async_view, lambda: None)
    assert plain == native
    assert native["cookie"] is None and native["status"] == 500


@override_settings(SESSION_SAVE_EVERY_REQUEST=True, SESSION_EXPIRE_AT_BROWSER_CLOSE=True)
def test_save_every_request_loads_on_the_loop_and_sets_a_browser_session_cookie() -> None:
    key = saved(n=1)

    def untouched(request: HttpRequest) -> HttpResponse:
        return HttpResponse("ok")

    async def auntouched(request: HttpRequest) -> HttpResponse:
        return HttpResponse("ok")

    plain, native, _ = both(untouched, auntouched, lambda: key)
    assert plain == native
    assert native["cookie"] is True and native["max-age"] == ""  # a browser-session cookie


def test_activity_slides_the_cookie_in_both_stacks(make_user: Any) -> None:
    user = make_user()
    sessions = [signed_in(user), signed_in(user)]
    cookies = iter([session.session_key for session in sessions])

    async def async_view(request: HttpRequest) -> HttpResponse:
        return HttpResponse(str(await request.session.aget("_auth_user_id")))

    def sync_view(request: HttpRequest) -> HttpResponse:
        return HttpResponse(str(request.session.get("_auth_user_id")))

    plain, native, _ = both(sync_view, async_view, lambda: next(cookies))
    assert plain == native
    assert native["cookie"] is True and native["max-age"] == settings.SESSION_COOKIE_AGE
    for session in sessions:  # the activity written (client fingerprint, last seen)
        reread = SessionStore(session.session_key)
        reread.load()
        assert reread._envelope is not None
        assert reread._envelope.activity_ms > time.time() * 1000 - 60_000


def test_a_session_deleted_meanwhile_interrupts_both_stacks() -> None:
    def sync_view(request: HttpRequest) -> HttpResponse:
        request.session["n"] = 2
        SessionStore().delete(request.session.session_key)  # a logout elsewhere
        return HttpResponse("late")

    async def async_view(request: HttpRequest) -> HttpResponse:
        await request.session.aset("n", 2)
        await SessionStore().adelete(request.session.session_key)
        return HttpResponse("late")

    with pytest.raises(SessionInterrupted):
        SessionMiddleware(sync_view)(request_with(saved(n=1)))

    async def view(request: HttpRequest) -> HttpResponse:
        return await async_view(request)

    request = request_with(saved(n=1))
    with on_the_loop_only(), pytest.raises(SessionInterrupted):
        asyncio.run(SessionMiddleware(view)(request))  # type: ignore[arg-type]


def test_redis_down_while_saving_is_a_503_in_both_stacks(
    own_redis: RedisServer,  # noqa: F811
) -> None:
    own_redis.stop()
    plain, native, _ = both(write_cart, awrite_cart, lambda: None)
    assert plain == native
    assert native["status"] == 503 and native["retry-after"] == "5"
