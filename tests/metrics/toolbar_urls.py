"""The toolbar site's page: ``/shop/`` misses, stores, hits, throttles and invalidates."""

from __future__ import annotations

from django.core.cache import caches
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.urls import include, path

from django_rediskit import pending
from django_rediskit.throttling import RateLimiter
from tests.metrics.toolbar_site import XSS_KEY


def shop(request: HttpRequest) -> HttpResponse:
    cache = caches["default"]
    cache.delete("product:1")
    cache.get("product:1")  # miss
    cache.set("product:1", {"name": "lamp"}, tags=["product:1", "category:3"])
    cache.get("product:1")  # hit
    cache.get(XSS_KEY)  # miss, with a hostile key
    RateLimiter("5/min").hit("shop", "visitor")
    with transaction.atomic():
        pending.queue(["category:3"], "default")  # sent when the block commits
    return HttpResponse("<!doctype html><html><body><h1>Shop</h1></body></html>")


urlpatterns = [path("shop/", shop), path("__debug__/", include("debug_toolbar.urls"))]
