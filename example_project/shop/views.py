"""The shop's pages: cached in fragments whose tags name EVERY model the fragment shows.

A product page shows the product, its category's name and its reviews, so its fragment is tagged
``o:shop.product:<pk>``, ``o:shop.category:<category pk>`` and ``f:shop.review:product=<pk>``:
renaming the category in the admin refreshes the product page on the very next request, as
editing the product or adding a review does. Tags are sent after COMMIT by the model signals
(``django_rediskit.invalidation.register`` in models.py).

The header (who is signed in) is rendered per request outside the fragments, so a cached
fragment never carries one user's name to another.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.cache import cache
from django.db.models import Avg, Count, QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.template.loader import render_to_string
from django.utils.functional import SimpleLazyObject

from django_rediskit.cache.decorators import cached
from django_rediskit.invalidation import cached_queryset, field_tag, object_tag
from shop.counters import count_view
from shop.models import Category, Product, Review

#: Seconds a page fragment lives at most; model saves drop it much sooner.
FRAGMENT_TIMEOUT = 600


def redis_url_for_display() -> str:
    """REDIS_URL without its password (a URL given by the user may carry credentials)."""
    url = urlsplit(settings.REDIS_URL)
    if url.password:
        url = url._replace(netloc=url.netloc.replace(f":{url.password}@", ":***@"))
    return urlunsplit(url)


def home(request: HttpRequest) -> HttpResponse:
    """Links to every feature of the demo, with what to try on each."""
    return render(request, "shop/home.html", {"redis_url": redis_url_for_display()})


def card_tags(product: Product) -> list[str]:
    """A product card shows the product, its category's name and its review summary."""
    return [
        object_tag(Product, product.pk),
        object_tag(Category, product.category_id),
        field_tag(Review, "product", product.pk),
    ]


def _catalogue() -> QuerySet[Product]:
    return Product.objects.select_related("category").annotate(
        review_count=Count("reviews"), rating=Avg("reviews__rating")
    )


def _cards(products: list[Product]) -> list[dict[str, Any]]:
    return [{"product": product, "tags": card_tags(product)} for product in products]


def product_list(request: HttpRequest) -> HttpResponse:
    """Every product. The list is tagged m: for every table its query joins (products,
    categories, reviews), so any such save drops it; each card is a fragment of its own."""
    before = cache.stats.hits
    products = cached_queryset(_catalogue(), timeout=FRAGMENT_TIMEOUT)
    served_from_cache = cache.stats.hits > before
    return render(
        request,
        "shop/product_list.html",
        {
            "cards": _cards(products),
            "categories": cached_queryset(Category.objects.all(), timeout=FRAGMENT_TIMEOUT),
            "served_from_cache": served_from_cache,
            "stats": cache.stats.as_dict(),
        },
    )


def category_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """One category's products: the query is tagged f:shop.product:category=<pk> (only saves of
    products in, or moving out of, this category drop it) and o:shop.category:<pk>."""
    category = get_object_or_404(Category, pk=pk)
    ids = cache.get_or_set(
        f"category:{pk}:product-ids",
        lambda: list(category.products.values_list("pk", flat=True)),
        timeout=FRAGMENT_TIMEOUT,
        tags=[field_tag(Product, "category", pk), object_tag(Category, pk)],
    )
    products = list(_catalogue().filter(pk__in=ids)) if ids else []
    return render(request, "shop/category.html", {"category": category, "cards": _cards(products)})


@cached(FRAGMENT_TIMEOUT, tags=lambda pk: object_tag(Product, pk), key="product:{pk}:category")
def product_category_id(pk: int) -> int | None:
    """Which category a product is in: needed to tag its page before rendering it. Tagged with
    the product (moving it to another category is a save of the product)."""
    return Product.objects.filter(pk=pk).values_list("category_id", flat=True).first()


def product_tags(pk: int, category_id: int) -> list[str]:
    """The product page shows the product, its category, its reviews and the other products of
    its category (names and prices): one tag for each."""
    return [
        object_tag(Product, pk),
        object_tag(Category, category_id),
        field_tag(Review, "product", pk),
        field_tag(Product, "category", category_id),
    ]


def _product_context(pk: int, use_cache: bool) -> dict[str, Any]:
    category_id = product_category_id(pk) if use_cache else product_category_id.func(pk)
    if category_id is None:
        raise Http404("No such product.")
    # Lazy: evaluated only when the fragment renders (a miss), never on a hit.
    product = SimpleLazyObject(lambda: _catalogue().get(pk=pk))
    return {
        "pk": pk,
        "use_cache": use_cache,
        "tags": product_tags(pk, category_id),
        "timeout": FRAGMENT_TIMEOUT,
        "product": product,
        "reviews": SimpleLazyObject(lambda: list(Review.objects.filter(product_id=pk)[:50])),
        "related": SimpleLazyObject(
            lambda: list(Product.objects.filter(category_id=category_id).exclude(pk=pk))
        ),
    }


def product_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """One product, from its cached fragment; the view counter (write-behind) outside it."""
    context = _product_context(pk, use_cache=True)
    context["views"] = count_view(pk)
    return render(request, "shop/product_detail.html", context)


def product_detail_uncached(request: HttpRequest, pk: int) -> HttpResponse:
    """The same page computed from the database on every request (the benchmark's baseline)."""
    return render(request, "shop/product_detail.html", _product_context(pk, use_cache=False))


# --- the same product page on the async paths (served by uvicorn: `make serve-asgi`) ----------


def _render_product_body(pk: int, category_id: int) -> str:
    context = _product_context(pk, use_cache=False)
    context["tags"] = product_tags(pk, category_id)
    return render_to_string("shop/_product_body.html", context)


async def product_detail_async(request: HttpRequest, pk: int) -> HttpResponse:
    """The product page with the cache's native async methods: a hit is one ``await
    cache.aget`` per key and never leaves the event loop. On a miss the tag versions are read
    BEFORE the database, so a save committed while rendering makes the stored copy stale at
    once (the next read recomputes) instead of serving old data for 600 s."""
    category_key = f"async:product:{pk}:category"
    category_id = await cache.aget(category_key, tags=[object_tag(Product, pk)])
    if category_id is None:
        versions = await cache.atag_versions(object_tag(Product, pk))
        category_id = await sync_to_async(product_category_id.func)(pk)
        if category_id is None:
            raise Http404("No such product.")
        if versions is not None:  # None: Redis is down; serve from the database, store nothing
            await cache.aset(category_key, category_id, FRAGMENT_TIMEOUT, versions=versions)
    tags = product_tags(pk, category_id)
    body_key = f"async:product:{pk}:body"
    body = await cache.aget(body_key, tags=tags)
    if body is None:
        versions = await cache.atag_versions(*tags)
        body = await sync_to_async(_render_product_body)(pk, category_id)
        if versions is not None:
            await cache.aset(body_key, body, FRAGMENT_TIMEOUT, versions=versions)
    user = await request.auser()
    return await sync_to_async(render)(
        request, "shop/product_async.html", {"body": body, "user": user, "pk": pk}
    )
