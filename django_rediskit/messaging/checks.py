"""System checks for ``REDISKIT["MESSAGING"]``: caught by ``manage.py check``, not by a worker
that dies at start-up or a queue that double-runs messages in production."""

from __future__ import annotations

import difflib

from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from django_rediskit.conf import DEFAULTS


def messaging_messages() -> list[checks.CheckMessage]:
    raw = (getattr(settings, "REDISKIT", {}) or {}).get("MESSAGING", {})
    if not isinstance(raw, dict):
        return [checks.Error("REDISKIT['MESSAGING'] must be a dict.", id="django_rediskit.E801")]
    messages: list[checks.CheckMessage] = []
    known = DEFAULTS["MESSAGING"]
    for name in sorted(set(raw) - set(known)):
        close = difflib.get_close_matches(name, known, n=1)
        messages.append(
            checks.Warning(
                f"REDISKIT['MESSAGING'] has unknown key {name!r}; it is ignored.",
                hint=f"Did you mean {close[0]!r}?" if close else None,
                id="django_rediskit.W801",
            )
        )
    from django_rediskit.messaging.worker import configured_queues

    try:
        queues = configured_queues()
    except ImproperlyConfigured as exc:
        return [*messages, checks.Error(str(exc), id="django_rediskit.E802")]
    conf = {**known, **raw}
    for name, spec in queues.items():
        visibility = float(spec.get("VISIBILITY_TIMEOUT", conf["VISIBILITY_TIMEOUT"]))
        deadline = float(spec.get("HANDLER_DEADLINE", conf["HANDLER_DEADLINE"]))
        if not 0 < deadline < visibility:
            messages.append(
                checks.Error(
                    f"Queue {name!r}: VISIBILITY_TIMEOUT ({visibility} s) must exceed "
                    f"HANDLER_DEADLINE ({deadline} s), or messages still being handled are "
                    "reclaimed and run twice at once.",
                    id="django_rediskit.E803",
                )
            )
        try:
            handler = import_string(spec["HANDLER"])
        except ImportError as exc:
            messages.append(
                checks.Error(
                    f"Queue {name!r}: handler {spec['HANDLER']!r} cannot be imported ({exc}).",
                    id="django_rediskit.E804",
                )
            )
            continue
        if not callable(handler):
            messages.append(
                checks.Error(
                    f"Queue {name!r}: {spec['HANDLER']!r} is not callable.",
                    id="django_rediskit.E804",
                )
            )
    return messages
