"""``django_rediskit.sessions.middleware.SessionMiddleware``: Django's, plus activity and outages.

Use it in place of ``django.contrib.sessions.middleware.SessionMiddleware``. On top of Django's
behaviour it:

- records activity (last seen, IP, user agent, sliding TTL and cookie) at most once per
  ``ACTIVITY_RESOLUTION`` per session, in one pipelined trip that never rewrites the payload;
- turns ``SessionStoreUnavailable`` (Redis down while a session must be written) into a plain 503
  with ``Retry-After``, never a traceback page;
- remembers the current session for the password-change receiver (so "revoke others" can keep it).

The client IP comes from ``IP_RESOLVER`` (default: ``REMOTE_ADDR``). Behind a reverse proxy
point it at a function that trusts exactly your proxies' ``X-Forwarded-For`` hops.
"""

from __future__ import annotations

import contextvars
import time
from typing import Any

from django.conf import settings
from django.contrib.sessions.middleware import SessionMiddleware as DjangoSessionMiddleware
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.utils.cache import patch_vary_headers
from django.utils.http import http_date

from django_rediskit.sessions.backend import SessionStore
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
    def process_request(self, request: HttpRequest) -> None:
        super().process_request(request)
        session = request.session
        if isinstance(session, SessionStore):
            request._rediskit_session_token = current_session.set(session)  # type: ignore[attr-defined]

    def process_response(self, request: HttpRequest, response: HttpResponseBase) -> Any:
        session = getattr(request, "session", None)
        try:
            if not isinstance(session, SessionStore):
                return super().process_response(request, response)  # type: ignore[arg-type]
            will_save = (
                session.modified or settings.SESSION_SAVE_EVERY_REQUEST
            ) and not session.is_empty()
            try:
                response = super().process_response(request, response)  # type: ignore[arg-type]
            except SessionStoreUnavailable:
                return _unavailable()
            if not will_save and response.status_code < 500:
                self._record_activity(request, session, response)
            return response
        finally:
            token = getattr(request, "_rediskit_session_token", None)
            if token is not None:
                try:
                    current_session.reset(token)
                except ValueError:  # async stacks may run the two halves in copied contexts
                    current_session.set(None)
                del request._rediskit_session_token  # type: ignore[attr-defined]

    def process_exception(self, request: HttpRequest, exception: Exception) -> Any:
        """A view (a login, a logout) could not write its session: 503, not a 500 page."""
        if isinstance(exception, SessionStoreUnavailable):
            return _unavailable()
        return None

    def _record_activity(
        self, request: HttpRequest, session: SessionStore, response: HttpResponseBase
    ) -> None:
        if session.session_key is None:
            return
        agent = str(request.META.get("HTTP_USER_AGENT", ""))
        if not session.record_activity(get_options().resolve_ip(request), agent):
            return
        if session.get_expire_at_browser_close():
            return
        # The server-side TTL slid: slide the cookie with it, as a save would.
        max_age = session.get_expiry_age()
        response.set_cookie(
            settings.SESSION_COOKIE_NAME,
            session.session_key,
            max_age=max_age,
            expires=http_date(time.time() + max_age),
            domain=settings.SESSION_COOKIE_DOMAIN,
            path=settings.SESSION_COOKIE_PATH,
            secure=settings.SESSION_COOKIE_SECURE or None,  # type: ignore[arg-type]
            httponly=settings.SESSION_COOKIE_HTTPONLY or None,  # type: ignore[arg-type]
            samesite=settings.SESSION_COOKIE_SAMESITE,
        )
        patch_vary_headers(response, ("Cookie",))
