"""Auth signal receivers: register devices at login, revoke eagerly on password change and
deactivation. Connected by ``connect()`` from the app config; each receiver does nothing unless
this engine is the ``SESSION_ENGINE``."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import user_logged_in
from django.contrib.auth.models import AnonymousUser
from django.db.models.signals import post_save
from django.http import HttpRequest

from django_rediskit.sessions import devices, signals
from django_rediskit.sessions.backend import DeviceLimitExceeded, SessionStore
from django_rediskit.sessions.index import OUTAGES, logger
from django_rediskit.sessions.options import engine_in_use, get_options


def on_user_logged_in(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    """Register the device now (not at the end of the request), so a ``deny`` device cap can
    refuse the login inside the login view, where PermissionDenied becomes a 403."""
    session = getattr(request, "session", None)
    if request is None or not isinstance(session, SessionStore):
        return
    known = session.device_id is not None
    session.set_client(
        get_options().resolve_ip(request), str(request.META.get("HTTP_USER_AGENT", ""))
    )
    try:
        session.save()
    except DeviceLimitExceeded:
        session.flush()
        request.user = AnonymousUser()
        raise
    signals.device_logged_in.send(
        sender=SessionStore,
        request=request,
        user=user,
        device_id=session.device_id,
        new_device=not known,
    )


def on_user_saved(sender: Any, instance: Any, created: bool, **kwargs: Any) -> None:
    """Deactivation ends every session; a password change ends the others (or all).

    Django would log those sessions out lazily, one by one, on their next request; until then
    they stay in every device list. If Redis is down the error is logged and the save goes on:
    Django's own lazy checks still apply.
    """
    if created or not engine_in_use():
        return
    options = get_options()
    try:
        if options.revoke_on_deactivate and getattr(instance, "is_active", True) is False:
            devices.revoke_all(instance, reason="deactivated")
        elif getattr(instance, "_password", None) is not None and options.revoke_on_password_change:
            keep = None
            if options.revoke_on_password_change == "others":  # noqa: S105 - a mode, not a secret
                from django_rediskit.sessions.middleware import current_session

                session = current_session.get()
                if session is not None and session.user_token == devices.user_token_of(instance):
                    keep = session.session_key
            devices.revoke_all(instance, reason="password_change", keep=keep)
    except OUTAGES:
        logger.error("Redis unreachable: sessions of a changed user were not revoked eagerly.")


def connect() -> None:
    user_logged_in.connect(on_user_logged_in, dispatch_uid="django_rediskit.sessions.login")
    post_save.connect(
        on_user_saved,
        sender=settings.AUTH_USER_MODEL,
        dispatch_uid="django_rediskit.sessions.user_saved",
    )
