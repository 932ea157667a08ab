"""System check: a bad ``REDISKIT["INSPECTOR"]`` fails ``manage.py check``, not a page view."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured


@checks.register(checks.Tags.admin)
def check_inspector_settings(**kwargs: Any) -> list[checks.CheckMessage]:
    from django_rediskit.connection import uses_rediskit
    from django_rediskit.inspector import config

    try:
        loaded = config.load()
    except ImproperlyConfigured as exc:
        return [checks.Error(str(exc), id="django_rediskit.E701")]

    missing = [
        alias
        for alias in loaded.aliases
        if alias not in settings.CACHES or not uses_rediskit(settings.CACHES[alias])
    ]
    if missing:
        return [
            checks.Error(
                f'REDISKIT["INSPECTOR"]["ALIASES"] names {missing}, which are not '
                "django_rediskit.cache.RedisCache aliases in CACHES.",
                id="django_rediskit.E702",
            )
        ]
    return []
