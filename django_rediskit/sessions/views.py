"""The "Your devices" page: list, revoke one, revoke all others. POST + CSRF for every change."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from django_rediskit.sessions import devices

TEMPLATE = "django_rediskit/sessions/devices.html"


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def device_list(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        action = request.POST.get("action", "")
        if action == "revoke":
            device_id = request.POST.get("device_id", "")
            is_current = any(
                device.is_current and device.device_id == device_id
                for device in devices.list_devices(request.user, request=request)
            )
            if devices.revoke(request.user, device_id):
                if is_current:
                    logout(request)
                    return HttpResponseRedirect(request.path)
                messages.success(request, "The device was signed out.")
            else:
                messages.error(request, "No such device.")
        elif action == "revoke_others":
            count = devices.revoke_others(request)
            messages.success(request, f"Signed out {count} other device(s).")
        else:
            return HttpResponse("Unknown action.", status=400, content_type="text/plain")
        return HttpResponseRedirect(request.path)
    context = {"devices": devices.list_devices(request.user, request=request)}
    return render(request, TEMPLATE, context)
