"""The inspector's writes: delete one key, change a TTL, bulk delete by pattern.

Every action is a CSRF-protected POST, needs its permission, refuses while the inspector is
read-only, stays inside the alias's scope and writes a ``LogEntry``. Split from ``views.py``
(the pages that only read) so each module holds one kind of thing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import messages
from django.contrib.admin.models import CHANGE, DELETION
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect

from django_rediskit import globs
from django_rediskit.inspector.access import (
    Target,
    confined,
    require,
)
from django_rediskit.inspector.bulk import bulk_step
from django_rediskit.inspector.display import escape_text
from django_rediskit.inspector.scan import (
    Budget,
)
from django_rediskit.inspector.views import (
    _context,
    _key_and_meta,
    _log,
    _page,
    _refuse_if_read_only,
    _ttl_text,
    _url,
    inspector_view,
)

if TYPE_CHECKING:
    from django.contrib.admin import ModelAdmin

    from django_rediskit.inspector.config import InspectorConfig

#: Where a bulk delete in progress keeps its cursor between the steps of one job.
BULK_SESSION_KEY = "django_rediskit_inspector_bulk"


# --- actions -------------------------------------------------------------------------------------


@inspector_view
def delete_key(admin: ModelAdmin[Any], request: HttpRequest) -> HttpResponse:
    require(request, "delete_keys")
    config, target, viewer = _context(request)
    _refuse_if_read_only(config)
    key, meta, ref = _key_and_meta(
        target, viewer, request.POST.get("k") or request.GET.get("k"), config
    )
    name = viewer.label(key)
    panel = target.panel(key)
    label = panel.delete_label if panel else "Delete"
    if request.method == "POST" and request.POST.get("confirm") == "yes":
        removed = panel.delete(target, key) if panel else int(target.client.unlink(key))
        _log(request, target, name, DELETION, {"action": label, "removed": removed}, key)
        messages.success(request, f"{label}: {name} ({removed} key removed).")
        return HttpResponseRedirect(_url(admin, "changelist", alias=target.alias))
    return _page(
        admin,
        request,
        "confirm_delete.html",
        {
            "title": f"{label}?",
            "name": name,
            "meta": meta,
            "label": label,
            "target": target,
            "ref": ref,
            "panel": panel,
        },
    )


@inspector_view
def set_ttl(admin: ModelAdmin[Any], request: HttpRequest) -> HttpResponse:
    require(request, "change_keys")
    config, target, viewer = _context(request)
    _refuse_if_read_only(config)
    key, meta, ref = _key_and_meta(
        target, viewer, request.POST.get("k") or request.GET.get("k"), config
    )
    name = viewer.label(key)
    error = None
    if request.method == "POST":
        raw = request.POST.get("seconds", "").strip()
        if request.POST.get("persist") == "1":
            changed = bool(target.client.persist(key))
            _log(request, target, name, CHANGE, {"action": "persist", "changed": changed}, key)
            messages.success(request, f"Expiry cleared on {name}.")
            return HttpResponseRedirect(_url(admin, "key", alias=target.alias, k=ref))
        try:
            seconds = float(raw)
            if not 0 < seconds <= 10 * 365 * 86400:
                raise ValueError
        except ValueError:
            error = "Give a number of seconds greater than 0 (at most ten years)."
        else:
            changed = bool(target.client.pexpire(key, max(1, int(seconds * 1000))))
            _log(
                request,
                target,
                name,
                CHANGE,
                {"action": "expire", "seconds": seconds, "changed": changed},
                key,
            )
            messages.success(request, f"TTL of {name} set to {seconds:g} s.")
            return HttpResponseRedirect(_url(admin, "key", alias=target.alias, k=ref))
    return _page(
        admin,
        request,
        "ttl.html",
        {
            "title": "Set expiry",
            "name": name,
            "meta": meta,
            "ttl": _ttl_text(meta.ttl_ms),
            "target": target,
            "ref": ref,
            "error": error,
        },
        status=400 if error else 200,
    )


@inspector_view
def bulk_delete(admin: ModelAdmin[Any], request: HttpRequest) -> HttpResponse:
    """Count first, then bounded UNLINK steps; the job's progress lives in the session.

    The pattern is confined to the scope (the alias's prefix by default). A pattern that
    matches every key of the database or of the alias (``*``, ``**``, ``?*``, ``[^]*``... as
    ``globs.covers`` reads them) is deleted only once the user has typed back the number of
    keys the count found.
    """
    require(request, "delete_keys")
    config, target, _ = _context(request)
    _refuse_if_read_only(config)
    job: dict[str, Any] | None = request.session.get(BULK_SESSION_KEY)
    if job is not None and (
        job.get("alias") != target.alias or not confined(job.get("pattern", ""), target.base)
    ):
        job = None  # another alias, or the scope has narrowed since the job began
    error = None
    if request.method == "POST":
        action = request.POST.get("action", "")
        if action == "start":
            pattern = target.pattern(
                request.POST.get("ns", ""),
                request.POST.get("q", ""),
                request.POST.get("literal") == "1",
            )
            job = {
                "alias": target.alias,
                "pattern": pattern,
                "broad": _covers_what(target, pattern),
                "phase": "count",
                "cursor": None,
                "matched": 0,
                "deleted": 0,
                "examined": 0,
            }
        elif job is None:
            raise ValueError("no bulk delete in progress; start one")
        elif action == "stop":
            request.session.pop(BULK_SESSION_KEY, None)
            messages.info(request, "Bulk delete stopped.")
            return HttpResponseRedirect(_url(admin, "changelist", alias=target.alias))
        elif action == "delete" and job["phase"] == "counted":
            typed = request.POST.get("confirm_count", "").strip().replace(",", "")
            if job["broad"] and typed != str(job["matched"]):
                error = (
                    f"This pattern matches every key of {job['broad']}: type the number of "
                    f"keys counted ({job['matched']}) to confirm. Nothing was deleted."
                )
            else:
                job.update(phase="delete", cursor=None, examined=0)
        if (
            error is None
            and action in ("start", "count", "delete")
            and job["phase"]
            in (
                "count",
                "delete",
            )
        ):
            _bulk_advance(request, config, target, job)
        request.session[BULK_SESSION_KEY] = job
    return _page(
        admin,
        request,
        "bulk.html",
        {
            "title": "Bulk delete by pattern",
            "target": target,
            "job": job,
            "job_pattern": escape_text(job["pattern"]) if job else "",
            "error": error,
            "presets": target.presets(),
            "browse_url": _url(admin, "changelist", alias=target.alias),
        },
        status=400 if error else 200,
    )


def _covers_what(target: Target, pattern: str) -> str:
    """What a pattern matches all of ("the database", "this alias"), or "" if it is narrower."""
    if globs.covers(pattern):
        return "the database"
    if globs.covers(pattern, target.alias_base):
        return f"this alias ({escape_text(target.prefix)}:*)"
    return ""


def _bulk_advance(
    request: HttpRequest, config: InspectorConfig, target: Target, job: dict[str, Any]
) -> None:
    """One bounded count or delete step of ``job``, logged when it removed keys."""
    step = bulk_step(
        target.client,
        target.nodes,
        job["pattern"],
        job["cursor"],
        dry_run=job["phase"] == "count",
        budget=_bulk_budget(config),
        batch=config.bulk_batch,
        scope=target.base,
        confirmed=bool(job["broad"]) and job["phase"] == "delete",
    )
    job["examined"] = step.examined
    job["cursor"] = step.next_cursor
    if job["phase"] == "count":
        job["matched"] += step.matched
    else:
        job["deleted"] += step.deleted
        if step.deleted:
            _log(
                request,
                target,
                escape_text(job["pattern"]),
                DELETION,
                {
                    "action": "bulk delete",
                    "pattern": escape_text(job["pattern"]),
                    "removed": step.deleted,
                    "confirmed_count": job["matched"] if job["broad"] else None,
                },
            )
    if step.next_cursor is None:
        job["phase"] = "counted" if job["phase"] == "count" else "done"


def _bulk_budget(config: InspectorConfig) -> Budget:
    return Budget(
        page_size=config.bulk_batch,
        count=config.budget.count,
        max_calls=config.budget.max_calls,
        max_ms=config.budget.max_ms,
    )
