"""The "Redis keys" admin entry: a ModelAdmin whose pages are the inspector views, not a table."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, path

from django_rediskit.inspector import actions, views
from django_rediskit.inspector.access import has
from django_rediskit.models import RedisKey


@admin.register(RedisKey)
class RedisKeyAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """No add / change / delete of rows (there are none); each page has its own permission."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return has(request, "view_keys")

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return has(request, "view_keys")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_urls(self) -> list[URLPattern]:
        info = self.opts.app_label, self.opts.model_name
        pages = (
            ("", views.browse, "changelist"),
            ("key/", views.key_detail, "key"),
            ("key/delete/", actions.delete_key, "delete"),
            ("key/ttl/", actions.set_ttl, "ttl"),
            ("bulk-delete/", actions.bulk_delete, "bulk"),
            ("stats/", views.stats, "stats"),
            ("throttle/", views.throttle, "throttle"),
        )
        return [
            path(
                route,
                self.admin_site.admin_view(self._bind(view)),
                name=f"{info[0]}_{info[1]}_{name}",
            )
            for route, view, name in pages
        ]

    def _bind(self, view: views.View) -> Any:
        def bound(request: HttpRequest) -> HttpResponse:
            return view(self, request)

        bound.__name__ = view.__name__
        return bound
