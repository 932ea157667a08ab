"""Models for the invalidation tests: FKs, m2m both ways, a proxy, multi-table inheritance."""

from __future__ import annotations

from django.db import models

from django_rediskit.invalidation import RedisKitModel, register


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
