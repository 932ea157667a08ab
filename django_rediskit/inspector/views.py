"""Admin views of the key inspector: browse, key page, actions, bulk delete, stats.

Every view checks its own permission, every mutation is a CSRF-protected POST behind a confirm
page that writes a ``LogEntry``, and the global read-only switch blocks all of them. A Redis
outage renders a plain 503 page that says so (never a traceback); bad parameters render 400.
All Redis-sourced text reaches templates as ``str`` and is escaped there.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from django.contrib.admin.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ImproperlyConfigured, PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.http import urlencode
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from django_rediskit.inspector import config as inspector_config
from django_rediskit.inspector import decoders, values
from django_rediskit.inspector.access import (
    BadKeyReference,
    KeyGone,
    Target,
    Viewer,
    has,
    key_ref,
    require,
)
from django_rediskit.inspector.display import escape_text
from django_rediskit.inspector.meta import KeyMeta, describe_keys
from django_rediskit.inspector.sampler import sample
from django_rediskit.inspector.scan import (
    KEY_TYPES,
    BadCursor,
    ScanPage,
    exact_page,
    glob_unescape,
    has_glob,
    scan_page,
)
from django_rediskit.inspector.serverstats import info_summary, slowlog

if TYPE_CHECKING:
    from django.contrib.admin import ModelAdmin

    from django_rediskit.inspector.config import InspectorConfig

TEMPLATE_DIR = "admin/django_rediskit/inspector"
#: Characters of a name the key page shows in full (the list and title show ``display.label``).
FULL_NAME_LIMIT = 64 * 1024

View = Callable[["ModelAdmin[Any]", HttpRequest], HttpResponse]


def _page(
    admin: ModelAdmin[Any],
    request: HttpRequest,
    template: str,
    context: dict[str, Any],
    status: int = 200,
) -> TemplateResponse:
    base = {
        **admin.admin_site.each_context(request),
        "opts": admin.model._meta,
        "app_label": admin.model._meta.app_label,
        "rk_read_only": _read_only_or_none(),
    }
    return TemplateResponse(
        request, f"{TEMPLATE_DIR}/{template}", {**base, **context}, status=status
    )


def _read_only_or_none() -> bool | None:
    """For the scope line of every page; None when the settings themselves are broken."""
    try:
        return inspector_config.load().read_only
    except ImproperlyConfigured:
        return None


def inspector_view(view: View) -> View:
    """Turn Redis outages and bad parameters into clear pages instead of 500s."""

    @functools.wraps(view)
    def wrapper(admin: ModelAdmin[Any], request: HttpRequest) -> HttpResponse:
        try:
            return view(admin, request)
        except RedisError as exc:
            return _page(
                admin,
                request,
                "error.html",
                {"title": "Redis is unavailable", "error": f"{type(exc).__name__}: {exc}"},
                status=503,
            )
        except KeyGone as exc:
            return _page(
                admin, request, "error.html", {"title": "No such key", "error": str(exc)}, 404
            )
        except (BadKeyReference, BadCursor, values.BadPosition, ValueError) as exc:
            return _page(
                admin,
                request,
                "error.html",
                {"title": "Bad request", "error": str(exc)},
                status=400,
            )

    return wrapper


def _context(request: HttpRequest) -> tuple[InspectorConfig, Target, Viewer]:
    config = inspector_config.load()
    alias = request.GET.get("alias") or request.POST.get("alias") or (config.aliases or [""])[0]
    target = Target.for_alias(alias, config)
    return config, target, Viewer(target, config, sensitive_ok=has(request, "view_sensitive"))


def _url(admin: ModelAdmin[Any], name: str, **params: str) -> str:
    info = (admin.model._meta.app_label, admin.model._meta.model_name)
    base = reverse(f"admin:{info[0]}_{info[1]}_{name}", current_app=admin.admin_site.name)
    return f"{base}?{urlencode(params)}" if params else base


def _row(
    admin: ModelAdmin[Any], viewer: Viewer, meta: KeyMeta, origin: tuple[int, int] | None
) -> dict[str, Any]:
    hidden = viewer.name_hidden(meta.key)
    return {
        "name": viewer.label(meta.key),
        "url": None
        if hidden
        else _url(admin, "key", alias=viewer.target.alias, k=key_ref(meta.key, origin)),
        "meta": meta,
        "ttl": _ttl_text(meta.ttl_ms),
    }


def _ttl_text(ttl_ms: int | None) -> str:
    if ttl_ms is None:
        return "no expiry"
    if ttl_ms < 10_000:
        return f"{ttl_ms} ms"
    return f"{ttl_ms // 1000} s"


def _log(
    request: HttpRequest,
    target: Target,
    key_text: str,
    flag: int,
    message: dict[str, Any],
    key: bytes | None = None,
) -> None:
    """One ``LogEntry``. ``key_text`` is the escaped (and cut, or redacted) name, so the log
    holds no raw control bytes and no hidden session id; ``key`` adds the name's length."""
    from django_rediskit.models import RedisKey

    details: dict[str, Any] = {"alias": target.alias, **message}
    if key is not None:
        details.update(key=key_text, bytes=len(key))
    LogEntry.objects.create(
        user_id=int(request.user.pk or 0),
        content_type=ContentType.objects.get_for_model(RedisKey, for_concrete_model=False),
        object_id=f"{target.alias}:{key_text}"[:200],
        object_repr=key_text[:200],
        action_flag=flag,
        change_message=json.dumps([{"rediskit": details}]),
    )


def _refuse_if_read_only(config: InspectorConfig) -> None:
    if config.read_only:
        raise PermissionDenied(
            'The key inspector is read-only: set REDISKIT["INSPECTOR"]["READ_ONLY"] = False '
            "to allow changes."
        )


# --- browse --------------------------------------------------------------------------------------


@inspector_view
def browse(admin: ModelAdmin[Any], request: HttpRequest) -> HttpResponse:
    require(request, "view_keys")
    config, target, viewer = _context(request)
    preset = request.GET.get("ns", "")
    query = request.GET.get("q", "")
    literal = request.GET.get("literal") == "1"
    type_ = request.GET.get("type") or None
    if type_ is not None and type_ not in KEY_TYPES:
        raise ValueError(f"unknown type filter {type_[:20]!r}")
    pattern = target.pattern(preset, query, literal)
    page: ScanPage
    if not has_glob(pattern):
        page = exact_page(glob_unescape(pattern).encode())
    else:
        page = scan_page(
            target.nodes,
            match=pattern,
            type_=type_,
            cursor=request.GET.get("cursor"),
            budget=config.budget,
        )
    single = len(target.nodes) == 1
    in_scope = [key for key in page.keys if target.in_scope(key)]  # the pattern is the guard
    rows, dbsize = describe_keys(target.client, in_scope, with_dbsize=single)
    if not single:  # a cluster: each primary holds its share of the keys
        dbsize = sum(int(node.dbsize()) for node in target.nodes)
    shown = [
        _row(admin, viewer, meta, page.origins.get(meta.key))
        for meta in rows
        if meta.exists and (type_ is None or meta.type == type_)
    ]
    params = {"alias": target.alias, "ns": preset, "q": query, "type": type_ or ""}
    if literal:
        params["literal"] = "1"
    total = dbsize or 0
    examined = total if page.next_cursor is None else min(page.examined, total)
    progress = 100.0 if page.next_cursor is None else min(99.9, 100.0 * examined / max(total, 1))
    return _page(
        admin,
        request,
        "browse.html",
        {
            "title": f"Redis keys — {target.alias}",
            "target": target,
            "aliases": config.aliases,
            "presets": target.presets(),
            "types": KEY_TYPES,
            "params": params,
            "literal": literal,
            "pattern": escape_text(pattern),
            "rows": shown,
            "page": page,
            "dbsize": dbsize,
            "progress": progress,
            "examined": examined,
            "next_url": _url(admin, "changelist", **params, cursor=page.next_cursor)
            if page.next_cursor
            else None,
            "first_url": _url(admin, "changelist", **params),
            "can_stats": has(request, "view_stats"),
            "can_throttle": has(request, "view_values"),
            "throttle_url": _url(admin, "throttle", alias=target.alias),
            "can_bulk": has(request, "delete_keys") and not config.read_only,
            "stats_url": _url(admin, "stats", alias=target.alias),
            "bulk_url": _url(admin, "bulk", alias=target.alias),
            "read_only": config.read_only,
        },
    )


# --- key page ------------------------------------------------------------------------------------


def _key_and_meta(
    target: Target, viewer: Viewer, ref: str | None, config: InspectorConfig
) -> tuple[bytes, KeyMeta, str]:
    """The key a ``k`` parameter names, its metadata, and the reference to link it with."""
    key = target.resolve(ref, count=config.budget.count, max_calls=config.budget.max_calls)
    target.require_in_scope(key)
    if viewer.name_hidden(key):
        raise PermissionDenied("this key is sensitive: it needs the view_sensitive permission")
    rows, _ = describe_keys(target.client, [key])
    # A long name keeps the reference it came with (it cannot be rebuilt from the name alone).
    return key, rows[0], ref if ref and ref.startswith("~") else key_ref(key)


@inspector_view
def key_detail(admin: ModelAdmin[Any], request: HttpRequest) -> HttpResponse:
    require(request, "view_keys")
    config, target, viewer = _context(request)
    key, meta, ref = _key_and_meta(target, viewer, request.GET.get("k"), config)
    name, short = viewer.display(key, limit=FULL_NAME_LIMIT), viewer.label(key)
    if not meta.exists:
        return _page(
            admin,
            request,
            "error.html",
            {"title": "No such key", "error": f"{short} does not exist (it may have expired)."},
            status=404,
        )
    panel = target.panel(key)
    can_values = has(request, "view_values")
    value_hidden = viewer.value_hidden(key)
    if panel is None:
        panel_rows = []
    elif can_values and not value_hidden:
        panel_rows = panel.describe(target, key, meta)
    else:
        panel_rows = panel.about()
    panel_rows = [(label, escape_text(str(text))) for label, text in panel_rows]
    context: dict[str, Any] = {
        "title": f"Key {short}",
        "name": name,
        "short": short,
        "size": len(key),
        "meta": meta,
        "ttl": _ttl_text(meta.ttl_ms),
        "target": target,
        "panel": panel,
        "panel_rows": panel_rows,
        "browse_url": _url(admin, "changelist", alias=target.alias),
        "can_values": can_values,
        "value_hidden": value_hidden,
        "read_only": config.read_only,
        "delete_url": _url(admin, "delete", alias=target.alias, k=ref)
        if has(request, "delete_keys") and not config.read_only
        else None,
        "delete_label": panel.delete_label if panel else "Delete",
        "ttl_url": _url(admin, "ttl", alias=target.alias, k=ref)
        if has(request, "change_keys") and not config.read_only
        else None,
    }
    if context["can_values"] and not context["value_hidden"]:
        context.update(_value_context(admin, request, config, target, key, ref, meta))
    return _page(admin, request, "key.html", context)


def _value_context(
    admin: ModelAdmin[Any],
    request: HttpRequest,
    config: InspectorConfig,
    target: Target,
    key: bytes,
    ref: str,
    meta: KeyMeta,
) -> dict[str, Any]:
    position = request.GET.get("pos") or None
    decoder = request.GET.get("decoder", "auto")
    if decoder not in decoders.DECODERS:
        raise ValueError(f"unknown decoder {decoder[:20]!r}")
    page = values.read_page(target.client, key, meta.type, position, config.value_page_size)
    params = {"alias": target.alias, "k": ref, "decoder": decoder}
    context: dict[str, Any] = {
        "value_page": page,
        "decoder": decoder,
        "decoders": decoders.DECODERS,
        "next_value_url": _url(admin, "key", **params, pos=page.next_position)
        if page.next_position
        else None,
        "first_value_url": _url(admin, "key", **params) if position else None,
        "decoder_urls": [
            (name, _url(admin, "key", alias=target.alias, k=ref, decoder=name))
            for name in decoders.DECODERS
        ],
    }
    if meta.type == "string":
        context["chunk_end"] = page.offset + len(page.chunk)
        whole = page.chunk if page.next_position is None and page.offset == 0 else None
        if whole is None and decoder not in ("text", "hex") and meta.length <= config.decode_limit:
            whole = values.read_whole_string(target.client, key, config.decode_limit)
        data = whole if whole is not None else page.chunk
        try:
            used, text, header = decoders.render(data, decoder, target.codec)
            context.update({"decoded_as": used, "decoded": text, "header": header})
            if header is not None and header.tags is not None:
                check = decoders.check_tags(target.client, header.tags, target.tag_key)
                context["tag_check"] = check
                context["tag_rows"] = [
                    (
                        escape_text(tag.name),
                        tag.present,
                        _url(admin, "key", alias=target.alias, k=key_ref(tag.key.encode())),
                    )
                    for tag in check.tags
                ]
        except decoders.NotApplicable as exc:
            context.update(
                {"decoded_as": "text", "decoded": decoders.as_text(data), "decode_error": str(exc)}
            )
    else:
        context["items"] = [
            {
                "label": item.label,
                "value": decoders.as_text(item.value, limit=2048),
                "score": item.score,
            }
            for item in page.items
        ]
    return context


# --- throttle windows ---------------------------------------------------------------------------

THROTTLE_ALGORITHMS = ("exact", "approx", "gcra", "fixed")
MAX_THROTTLE_FIELD = 200


@inspector_view
def throttle(admin: ModelAdmin[Any], request: HttpRequest) -> HttpResponse:
    """One identity's windows, read with ``RateLimiter.peek`` (nothing is consumed).

    A throttle key names its identity by a keyed hash, so the key page cannot say whose window
    it is; an operator who knows the identity (an IP, a user id) looks it up here instead.
    """
    require(request, "view_keys")
    require(request, "view_values")
    _, target, _ = _context(request)
    fields = {
        name: request.GET.get(name, "").strip()[:MAX_THROTTLE_FIELD]
        for name in ("scope", "ident", "rates", "algorithm")
    }
    context: dict[str, Any] = {
        "title": f"Throttle window — {target.alias}",
        "target": target,
        "fields": fields,
        "algorithms": THROTTLE_ALGORITHMS,
        "browse_url": _url(admin, "changelist", alias=target.alias),
    }
    if fields["scope"] and fields["ident"] and fields["rates"]:
        from django_rediskit.throttling import RateLimiter

        if fields["algorithm"] not in ("", *THROTTLE_ALGORITHMS):
            raise ValueError(f"unknown algorithm {fields['algorithm'][:20]!r}")
        try:
            limiter = RateLimiter(
                fields["rates"], algorithm=fields["algorithm"] or None, alias=target.alias
            )
        except ImproperlyConfigured as exc:
            raise ValueError(str(exc)) from None
        keys = limiter.keys(fields["scope"], fields["ident"])
        decision = limiter.peek(fields["scope"], fields["ident"])
        if decision.degraded:
            raise RedisConnectionError("the throttle could not read its window from Redis")
        context["decision"] = decision
        context["windows"] = [
            (
                status,
                escape_text(key),
                _url(admin, "key", alias=target.alias, k=key_ref(key.encode())),
            )
            for status, key in zip(decision.statuses, keys, strict=True)
        ]
    return _page(admin, request, "throttle.html", context)


# --- stats ---------------------------------------------------------------------------------------


@inspector_view
def stats(admin: ModelAdmin[Any], request: HttpRequest) -> HttpResponse:
    require(request, "view_stats")
    config, target, viewer = _context(request)
    rows, hit_ratio, keyspace = info_summary(target.client)
    slow = []
    for entry in slowlog(target.client):
        hide_rest = False
        arguments = []
        for argument in entry.arguments[:12]:
            if hide_rest:
                arguments.append("…")
                continue
            if viewer.name_hidden(argument):
                hide_rest = True
            arguments.append(viewer.redact_text(argument))
        slow.append({"entry": entry, "arguments": arguments})
    context: dict[str, Any] = {
        "title": f"Redis statistics — {target.alias}",
        "target": target,
        "info_rows": rows,
        "hit_ratio": hit_ratio,
        "keyspace": keyspace,
        "alias_stats": target_stats(target),
        "slowlog": slow,
        "browse_url": _url(admin, "changelist", alias=target.alias),
        "sample_url": _url(admin, "stats", alias=target.alias, sample="1"),
    }
    if request.GET.get("sample") == "1":
        report = sample(
            target.client,
            target.nodes,
            limit=config.sample_limit,
            match=target.pattern("", "", literal=False),
            deadline_s=config.sample_seconds,
        )
        context["report"] = report
        context["big_memory"] = [
            (size, viewer.label(key)) for size, key in report.biggest_by_memory
        ]
        context["big_length"] = [
            (size, viewer.label(key)) for size, key in report.biggest_by_length
        ]
        context["no_ttl"] = [viewer.label(key) for key in report.no_ttl_examples]
    return _page(admin, request, "stats.html", context)


def target_stats(target: Target) -> dict[str, Any]:
    """This process's hit / miss counters for the alias (the backend keeps them in memory)."""
    from django_rediskit.aliases import backend_for_alias

    return dict(backend_for_alias(target.alias).stats.as_dict())
