"""``django_rediskit.sessions.middleware.SessionMiddleware``: Django's, plus activity and outages.

Use it in place of ``django.contrib.sessions.middleware.SessionMiddleware``. On top of Django's
behaviour it:

- records activity (last seen, IP, user agent, sliding TTL and cookie) at most once per
  ``ACTIVITY_RESOLUTION`` per session, in one pipelined trip that never rewrites the payload;
- turns ``SessionStoreUnavailable`` (Redis down while a session must be written) into a plain 503
  with ``Retry-After``, never a traceback page;
- remembers the current session for the password-change receiver (so "revoke others" can keep it).
- runs natively in an async (ASGI) stack: the session is saved and its activity written on the
  event loop, where Django's middleware would use a thread for each half.

The client IP comes from ``IP_RESOLVER`` (default: ``REMOTE_ADDR``). Behind a reverse proxy
point it at a function that trusts exactly your proxies' ``X-Forwarded-For`` hops.
"""

from __future__ import annotations

import contextvars
import time
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.sessions.backends.base import UpdateError
from django.contrib.sessions.exceptions import SessionInterrupted
from django.contrib.sessions.middleware import SessionMiddleware as DjangoSessionMiddleware
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.utils.cache import patch_vary_headers
from django.utils.http import http_date

from django_rediskit.sessions.backend import SessionStore
from django_rediskit.sessions.flow import SessionOp, adrive, drive
from django_rediskit.sessions.index import SessionStoreUnavailable, logger
from django_rediskit.sessions.options import get_options

#: The session of the request being handled in this context (thread or task).
current_session: contextvars.ContextVar[SessionStore | None] = contextvars.ContextVar(
    "rediskit_current_session", default=None
)
RETRY_AFTER_SECONDS = 5


def remote_addr(request: HttpRequest) -> str:
    """The default IP resolver: the socket peer. Behind a proxy this is the proxy's address."""
    return str(request.META.get("REMOTE_ADDR", ""))


def _unavailable() -> HttpResponse:
    logger.warning("Session could not be written: Redis is unreachable (503 sent).")
    response = HttpResponse(
        "Service temporarily unavailable.", status=503, content_type="text/plain"
    )
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


class SessionMiddleware(DjangoSessionMiddleware):
    """Django's session middleware, with activity and outages, and native under ASGI.

    For our engine the response half (Django's save-and-cookie logic, then activity) is written
    once as a session operation (``sessions/flow.py``): driven on redis-py in a sync stack, and
    awaited on the loop in an async one (``__acall__``), where Django's ``MiddlewareMixin``
    would run both halves in a thread. Another engine gets Django's own ``process_response``.
    """

    def process_request(self, request: HttpRequest) -> None:
        super().process_request(request)
        session = request.session
        if isinstance(session, SessionStore):
            request._rediskit_session_token = current_session.set(session)  # type: ignore[attr-defined]

    def process_response(self, request: HttpRequest, response: HttpResponseBase) -> Any:
        session = getattr(request, "session", None)
        if not isinstance(session, SessionStore):
            return super().process_response(request, response)  # type: ignore[arg-type]
        return drive(self._finish(request, session, response))

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        """The async stack: the request half does no I/O (the session loads lazily), the
        response half is awaited on the loop."""
        self.process_request(request)
        response: HttpResponseBase = await self.get_response(request)  # type: ignore[misc]
        session = getattr(request, "session", None)
        if not isinstance(session, SessionStore):
            django_half = sync_to_async(super().process_response, thread_sensitive=True)
            finished: HttpResponseBase = await django_half(request, response)  # type: ignore[arg-type]
            return finished
        return await adrive(self._finish(request, session, response))

    def process_exception(self, request: HttpRequest, exception: Exception) -> Any:
        """A view (a login, a logout) could not write its session: 503, not a 500 page."""
        if isinstance(exception, SessionStoreUnavailable):
            return _unavailable()
        return None

    def _finish(
        self, request: HttpRequest, session: SessionStore, response: HttpResponseBase
    ) -> SessionOp[HttpResponseBase]:
        try:
            try:
                saved = yield from _save_and_set_cookie(request, session, response)
            except SessionStoreUnavailable:
                return _unavailable()
            if not saved and response.status_code < 500 and session.session_key is not None:
                agent = str(request.META.get("HTTP_USER_AGENT", ""))
                ip = get_options().resolve_ip(request)
                if (yield from session._record_activity(ip, agent)):
                    _slide_cookie(session, response)
            return response
        finally:
            token = getattr(request, "_rediskit_session_token", None)
            if token is not None:
                try:
                    current_session.reset(token)
                except ValueError:  # async stacks may run the two halves in copied contexts
                    current_session.set(None)
                del request._rediskit_session_token  # type: ignore[attr-defined]


def _save_and_set_cookie(
    request: HttpRequest, session: SessionStore, response: HttpResponseBase
) -> SessionOp[bool]:
    """Django's ``SessionMiddleware.process_response`` as an operation; whether it saved.

    The same decisions in the same order (Django's own middleware tests run against it:
    ``conformance/``): an emptied session deletes its cookie, an accessed one varies on Cookie,
    a modified one (or every one, with ``SESSION_SAVE_EVERY_REQUEST``) is saved unless the
    response is a 5xx, and its cookie is set.
    """
    empty = session.is_empty()
    if settings.SESSION_COOKIE_NAME in request.COOKIES and empty:
        response.delete_cookie(
            settings.SESSION_COOKIE_NAME,
            path=settings.SESSION_COOKIE_PATH,
            domain=settings.SESSION_COOKIE_DOMAIN,
            samesite=settings.SESSION_COOKIE_SAMESITE,
        )
        patch_vary_headers(response, ("Cookie",))
        return False
    vary = session.accessed
    saved = False
    if (session.modified or settings.SESSION_SAVE_EVERY_REQUEST) and not empty:
        yield from session._session_data()  # the expiry settings below are session data
        if session.get_expire_at_browser_close():
            max_age: int | None = None
            expires: str | None = None
        else:
            max_age = session.get_expiry_age()
            expires = http_date(time.time() + max_age)
        if response.status_code < 500:
            try:
                yield from session._save()
            except UpdateError:
                raise SessionInterrupted(
                    "The request's session was deleted before the request completed. The "
                    "user may have logged out in a concurrent request, for example."
                ) from None
            _set_cookie(session, response, max_age, expires)
            saved = vary = True
    if vary:
        patch_vary_headers(response, ("Cookie",))
    return saved


def _slide_cookie(session: SessionStore, response: HttpResponseBase) -> None:
    """The server-side TTL slid with the activity: slide the cookie with it, as a save would."""
    if session.get_expire_at_browser_close():
        return
    max_age = session.get_expiry_age()
    _set_cookie(session, response, max_age, http_date(time.time() + max_age))
    patch_vary_headers(response, ("Cookie",))


def _set_cookie(
    session: SessionStore, response: HttpResponseBase, max_age: int | None, expires: str | None
) -> None:
    """The session cookie, as Django sets it (a saved session always has its key)."""
    response.set_cookie(
        settings.SESSION_COOKIE_NAME,
        session.session_key or "",
        max_age=max_age,
        expires=expires,
        domain=settings.SESSION_COOKIE_DOMAIN,
        path=settings.SESSION_COOKIE_PATH,
        secure=settings.SESSION_COOKIE_SECURE or None,  # type: ignore[arg-type]
        httponly=settings.SESSION_COOKIE_HTTPONLY or None,  # type: ignore[arg-type]
        samesite=settings.SESSION_COOKIE_SAMESITE,
    )
