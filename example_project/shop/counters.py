"""Messaging in the shop: product page views by write-behind, a "product changed" event.

- ``save_views``: every product page view increments a counter in Redis at once (one round
  trip); ``manage.py rediskit_worker`` (started by ``make demo``) writes the exact total to
  ``ProductViews`` a moment later, coalescing the increments of one product.
- ``product_changed``: after a product's save COMMITS, a "product-changed" message is published
  on the ``shop`` channel (at-most-once: a subscriber that is away misses it; the page itself
  is refreshed by tag invalidation, not by this event). Try it with
  ``manage.py shell -c "from django_rediskit.messaging.pubsub import subscribe; ..."``.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction

from django_rediskit.connection.policy import RedisUnavailable
from django_rediskit.messaging.pubsub import publish
from django_rediskit.messaging.writebehind import write_behind
from shop.models import Product, ProductViews

logger = logging.getLogger(__name__)

CHANNEL = "shop"


def stored_views(pk: str) -> int:
    """The total in the database: where a counter starts when Redis does not have it."""
    found = ProductViews.objects.filter(product_id=pk).values_list("views", flat=True).first()
    return int(found or 0)


@write_behind(read=stored_views)
def save_views(pk: str, total: int) -> None:
    """Applied by the worker: the absolute total, so a redelivered message never counts twice."""
    ProductViews.objects.update_or_create(product_id=int(pk), defaults={"views": total})


def count_view(pk: int) -> int | None:
    """The product's views including this one; None while Redis is down (the page is served
    anyway: a lost page view is not worth an error page)."""
    try:
        return int(save_views.incr(pk))
    except RedisUnavailable:
        logger.warning("Redis unavailable: view of product %s not counted", pk)
        return None


def product_changed(sender: type[Product], instance: Product, **_: Any) -> None:
    """post_save receiver: publish once the transaction commits (a rollback says nothing)."""
    message = {"event": "product-changed", "id": instance.pk, "name": instance.name}

    def send() -> None:
        try:
            publish(CHANNEL, message)
        except RedisUnavailable:
            logger.warning("Redis unavailable: product-changed %s not published", instance.pk)

    transaction.on_commit(send, robust=True)
