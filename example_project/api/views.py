"""A small throttled API: user and anonymous limits, a scoped search, a fail-closed login."""

from __future__ import annotations

from django.contrib.auth.views import LoginView
from django.http import HttpRequest, HttpResponseBase
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from shop.models import Product

from django_rediskit.throttling import drf
from django_rediskit.throttling.views import ratelimit


class ProductListAPI(APIView):
    """GET /api/products/: the default throttles (anon and user rates from settings)."""

    def get(self, request: Request) -> Response:
        products = Product.objects.select_related("category")[:50]
        return Response(
            [
                {"id": p.pk, "name": p.name, "category": p.category.name, "price": str(p.price)}
                for p in products
            ]
        )


class ProductSearchAPI(APIView):
    """GET /api/search/?q=: its own "search" budget; each search costs 2 units."""

    throttle_classes = [drf.ScopedRateThrottle]
    throttle_scope = "search"
    throttle_cost = 2

    def get(self, request: Request) -> Response:
        query = request.query_params.get("q", "")[:100]
        names = Product.objects.filter(name__icontains=query).values_list("name", flat=True)[:20]
        return Response({"q": query, "results": list(names)})


@ratelimit("5/min;20/hour", key="ip", method=["POST"], scope="login", fail_open=False)
def login(request: HttpRequest) -> HttpResponseBase:
    """Password guessing is limited per IP; with Redis down logins get 503, not unlimited tries."""
    return LoginView.as_view(template_name="admin/login.html")(request)
