"""A small throttled API whose responses are cached with tags.

Throttles: the default anon and user rates, a scoped search (2 units a search) and a fail-closed
scoped endpoint (``/api/limited/``: 503 + Retry-After while Redis is down, where the others fail
open). Its token login (DRF's own ``obtain_auth_token``, see urls.py) is guarded by the site-wide
login limits (``REDISKIT["LOGIN_RATES"]`` in settings.py), like every other login of the site.
"""

from __future__ import annotations

from typing import Any

from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from shop.models import Category, Product, Review
from shop.views import product_category_id, product_tags

from django_rediskit.cache.decorators import cached
from django_rediskit.invalidation import model_tag
from django_rediskit.throttling import drf


def _product(product: Product) -> dict[str, Any]:
    return {
        "id": product.pk,
        "name": product.name,
        "category": {"id": product.category_id, "name": product.category.name},
        "price": str(product.price),
    }


@cached(600, tags=[model_tag(Product), model_tag(Category)], key="api-products")
def product_list_data() -> list[dict[str, Any]]:
    """The list shows products and their categories' names: tagged with both tables."""
    return [_product(p) for p in Product.objects.select_related("category")[:50]]


@cached(600, tags=lambda pk, category_id: product_tags(pk, category_id), key="api:product:{pk}")
def product_data(pk: int, category_id: int) -> dict[str, Any]:
    """One product with its category and reviews: the same tags as its HTML page."""
    product = Product.objects.select_related("category").get(pk=pk)
    reviews = Review.objects.filter(product_id=pk)[:20]
    return {
        **_product(product),
        "description": product.description,
        "reviews": [{"author": r.author, "rating": r.rating, "text": r.text} for r in reviews],
    }


class ProductListAPI(APIView):
    """GET /api/products/: the default throttles (anon and user rates from settings)."""

    def get(self, request: Request) -> Response:
        return Response(product_list_data())


class ProductDetailAPI(APIView):
    """GET /api/products/<pk>/: cached; editing the product, its category or a review of it
    refreshes the answer on the next request."""

    def get(self, request: Request, pk: int) -> Response:
        category_id = product_category_id(pk)
        if category_id is None:
            return Response({"detail": "Not found."}, status=404)
        return Response(product_data(pk, category_id))


class ProductSearchAPI(APIView):
    """GET /api/search/?q=: its own "search" budget; each search costs 2 units."""

    throttle_classes = [drf.ScopedRateThrottle]
    throttle_scope = "search"
    throttle_cost = 2

    def get(self, request: Request) -> Response:
        query = request.query_params.get("q", "")[:100]
        names = Product.objects.filter(name__icontains=query).values_list("name", flat=True)[:20]
        return Response({"q": query, "results": list(names)})


class FailClosedScopedThrottle(drf.ScopedRateThrottle):
    """Redis down: 503 + Retry-After rather than admitting unlimited requests."""

    fail_open = False


class LimitedAPI(APIView):
    """GET /api/limited/: exactly ``SHOP_LIMITED_RATE`` requests pass, however many workers
    and concurrent clients (one atomic decision in Redis per request); fails closed."""

    throttle_classes = [FailClosedScopedThrottle]
    throttle_scope = "limited"

    def get(self, request: Request) -> Response:
        return Response({"ok": True})
