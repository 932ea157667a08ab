"""System checks for the session engine: refused at ``manage.py check``, not at first request."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from django_rediskit.sessions.options import engine_in_use

MIDDLEWARE = "django_rediskit.sessions.middleware.SessionMiddleware"


@checks.register(checks.Tags.security, checks.Tags.caches)
def check_sessions(**kwargs: Any) -> list[checks.CheckMessage]:
    if not engine_in_use():
        return []
    from django_rediskit.sessions.index import session_backend
    from django_rediskit.sessions.options import check_serializer, get_options

    messages: list[checks.CheckMessage] = []
    try:
        check_serializer(import_string(settings.SESSION_SERIALIZER))
    except (ImproperlyConfigured, ImportError) as exc:
        messages.append(checks.Error(str(exc), id="django_rediskit.E101"))
    try:
        options = get_options()
        session_backend()
        import_string(options.ip_resolver)
        if options.legacy_cache_alias and options.legacy_cache_alias not in settings.CACHES:
            raise ImproperlyConfigured(
                f"REDISKIT['SESSIONS']['LEGACY_CACHE_ALIAS'] {options.legacy_cache_alias!r} "
                "is not in CACHES."
            )
    except (ImproperlyConfigured, ImportError) as exc:
        messages.append(checks.Error(str(exc), id="django_rediskit.E102"))
    if MIDDLEWARE not in settings.MIDDLEWARE:
        messages.append(
            checks.Info(
                "The django_rediskit session engine is used without its SessionMiddleware: "
                "sessions work, but activity, IP and user agent are not tracked and a Redis "
                "outage on save is a 500 instead of a 503.",
                hint=f"Replace Django's SessionMiddleware with {MIDDLEWARE!r}.",
                id="django_rediskit.I101",
            )
        )
    return messages
