"""The shop's pages: cached with tags that model saves invalidate after COMMIT."""

from __future__ import annotations

from typing import Any

from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from django_rediskit.invalidation import cached_queryset, field_tag, object_tag
from shop.models import Category, Product


def product_list(request: HttpRequest) -> HttpResponse:
    """Every product: tagged m:shop.product and m:shop.category (it joins categories), so any
    product or category save drops it."""
    before = cache.stats.hits
    products = cached_queryset(Product.objects.select_related("category"), timeout=600)
    return render(
        request,
        "shop/product_list.html",
        {
            "products": products,
            "served_from_cache": cache.stats.hits > before,
            "stats": cache.stats.as_dict(),
        },
    )


def category_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """One category's products: tagged f:shop.product:category=<pk>, so only saves of products
    in (or moving out of) this category drop it."""
    category = get_object_or_404(Category, pk=pk)
    names = cache.get_or_set(
        f"category:{pk}:product-names",
        lambda: list(category.products.values_list("name", flat=True)),
        timeout=600,
        tags=[field_tag(Product, "category", pk), object_tag(Category, pk)],
    )
    return render(request, "shop/category.html", {"category": category, "names": names})


def _product_card(pk: int) -> dict[str, Any]:
    product = get_object_or_404(Product.objects.select_related("category"), pk=pk)
    return {"name": product.name, "category": product.category.name, "price": str(product.price)}


def product_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """One product: tagged o:shop.product:<pk>; saving that product drops it."""
    card = cache.get_or_set(
        f"product:{pk}:card", lambda: _product_card(pk), timeout=600, tags=[object_tag(Product, pk)]
    )
    return render(request, "shop/product_detail.html", {"card": card})
