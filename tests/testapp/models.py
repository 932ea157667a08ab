"""Models for the invalidation tests: FKs, m2m both ways, a proxy, multi-table inheritance,
SET_NULL children and managers of every kind."""

from __future__ import annotations

from django.db import models

from django_rediskit.invalidation import RedisKitModel, RedisKitQuerySet, register


@register
class Category(RedisKitModel):
    name = models.CharField(max_length=50)


class Label(RedisKitModel):
    name = models.CharField(max_length=50)


@register(tag_fields=["category"], keys=["product:{pk}:detail"])
class Product(RedisKitModel):
    name = models.CharField(max_length=50)
    price = models.IntegerField(default=0)
    category = models.ForeignKey(Category, on_delete=models.CASCADE, related_name="products")
    labels = models.ManyToManyField(Label, related_name="products", blank=True)


register(Label)


class DiscountedProduct(Product):
    """Proxy: same rows, same tags."""

    class Meta:
        proxy = True


@register
class SpecialProduct(Product):
    """Multi-table child: its writes change Product rows too."""

    perk = models.CharField(max_length=50, default="")


@register(related=["product"])
class Review(RedisKitModel):
    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="reviews")
    stars = models.IntegerField(default=5)


class Unregistered(models.Model):
    name = models.CharField(max_length=50)


class Shelf(models.Model):
    """A parent whose deletion sets its children's foreign keys to NULL (an UPDATE, no signal)."""

    name = models.CharField(max_length=50)


class PlainBook(models.Model):
    """Django's plain managers. Registered only inside tests (see tests/invalidation/
    test_managers.py): registered, it is what system checks E201 / E202 refuse."""

    title = models.CharField(max_length=50)
    shelf = models.ForeignKey(
        Shelf, null=True, blank=True, on_delete=models.SET_NULL, related_name="plain_books"
    )


class Magazine(models.Model):
    """Invalidating through a manager of its own (not RedisKitModel), default and base."""

    title = models.CharField(max_length=50)
    issue = models.IntegerField(default=1)
    shelf = models.ForeignKey(
        Shelf, null=True, blank=True, on_delete=models.SET_NULL, related_name="magazines"
    )

    objects = RedisKitQuerySet.as_manager()

    class Meta:
        base_manager_name = "objects"


register(Magazine)


@register
class Pamphlet(RedisKitModel):
    """RedisKitModel with a Meta of its own: the invalidating base manager is still inherited."""

    title = models.CharField(max_length=50)
    shelf = models.ForeignKey(
        Shelf, null=True, blank=True, on_delete=models.SET_NULL, related_name="pamphlets"
    )

    class Meta:
        ordering = ["pk"]
