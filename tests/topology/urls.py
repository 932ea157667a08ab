"""One view that uses the cache, the session and a throttle on every request (failover load)."""

from __future__ import annotations

from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from django.urls import path

from django_rediskit.throttling.views import ratelimit


@ratelimit("100000/min", key="ip", scope="failover", fail_open=False)
def work(request: HttpRequest) -> HttpResponse:
    hits = cache.get_or_set(f"page:{request.GET.get('p', '0')}", lambda: "rendered", 60)
    request.session["n"] = request.session.get("n", 0) + 1
    return HttpResponse(f"{hits}:{request.session['n']}")


urlpatterns = [path("work/", work)]
