"""User admin additions: an "Active devices" panel and "Log out everywhere" (a changelist action
and a button in that panel).

``install()`` (called from the app config) wraps the registered User admin in a subclass with
``DevicesAdminMixin`` when this engine is in use; sites with their own User admin can add the
mixin themselves. Both need the change-user permission and write a LogEntry per user. The
button submits the change form (so Django's CSRF and permission checks apply) under a name that
``response_change`` recognises.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from django_rediskit.sessions import devices
from django_rediskit.sessions.index import OUTAGES
from django_rediskit.sessions.options import engine_in_use, get_options

LOGOUT_BUTTON = "_rediskit_logout_everywhere"


class DevicesAdminMixin:
    """Mix into a ``ModelAdmin`` for the user model (before it in the bases)."""

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions: dict[str, Any] = super().get_actions(request)  # type: ignore[misc]
        if self.has_change_permission(request):  # type: ignore[attr-defined]
            actions["logout_everywhere"] = (
                type(self).logout_everywhere,
                "logout_everywhere",
                "Log out everywhere",
            )
        return actions

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        fields = tuple(super().get_readonly_fields(request, obj))  # type: ignore[misc]
        return (*fields, "active_devices") if obj is not None else fields

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        fieldsets = list(super().get_fieldsets(request, obj))  # type: ignore[misc]
        if obj is not None:
            fieldsets.append(("Active devices", {"fields": ("active_devices",)}))
        return fieldsets

    @admin.display(description="Devices")
    def active_devices(self, obj: Any) -> SafeString | str:
        try:
            found = devices.list_devices(obj)
        except OUTAGES:
            return "Redis is unreachable."
        if not found:
            return "No active sessions."
        rows = format_html_join(
            "",
            "<li>{} on {} &middot; {} &middot; last seen {} UTC</li>",
            (
                (
                    device.browser,
                    device.os,
                    device.ip or "?",
                    f"{device.last_activity:%Y-%m-%d %H:%M}",
                )
                for device in found
            ),
        )
        return format_html(
            '<ul>{}</ul><button type="submit" name="{}">Log out everywhere</button>',
            rows,
            LOGOUT_BUTTON,
        )

    def response_change(self, request: HttpRequest, obj: Any) -> HttpResponse:
        if LOGOUT_BUTTON in request.POST and self.has_change_permission(request, obj):  # type: ignore[attr-defined]
            self._logout(request, obj)
            return HttpResponseRedirect(request.path)
        response: HttpResponse = super().response_change(request, obj)  # type: ignore[misc]
        return response

    def _logout(self, request: HttpRequest, user: Any) -> int:
        count = devices.revoke_all(user, reason="admin")
        self.log_change(request, user, f"Logged out everywhere ({count} sessions).")  # type: ignore[attr-defined]
        self.message_user(  # type: ignore[attr-defined]
            request, f"Ended {count} sessions of {user}.", messages.SUCCESS
        )
        return count

    def logout_everywhere(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        if not self.has_change_permission(request):  # type: ignore[attr-defined]
            return
        for user in queryset:
            self._logout(request, user)


def install(site: admin.AdminSite = admin.site) -> None:
    if not engine_in_use() or not get_options().user_admin:
        return
    user_model = get_user_model()
    if not site.is_registered(user_model):
        return
    current = type(site._registry[user_model])
    if issubclass(current, DevicesAdminMixin):
        return
    site.unregister(user_model)
    wrapped = type(current.__name__, (DevicesAdminMixin, current), {"__module__": __name__})
    site.register(user_model, wrapped)
