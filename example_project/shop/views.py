"""The shop's pages: a product list kept in Redis with stampede-safe cache-aside."""

from __future__ import annotations

from typing import Any

from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from shop.models import Product


def _product_rows() -> list[dict[str, Any]]:
    return [
        {"name": p.name, "category": p.category.name, "price": str(p.price)}
        for p in Product.objects.select_related("category")
    ]


def product_list(request: HttpRequest) -> HttpResponse:
    before = cache.stats.hits
    products = cache.get_or_set("products:all", _product_rows, timeout=60)
    return render(
        request,
        "shop/product_list.html",
        {
            "products": products,
            "served_from_cache": cache.stats.hits > before,
            "stats": cache.stats.as_dict(),
        },
    )
