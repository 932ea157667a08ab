"""The shop's catalogue. Every model is registered, so its writes invalidate the cache after
COMMIT: ``o:`` tags per row, ``m:`` per table, ``f:`` for the foreign keys named below (a review
saved drops the pages of its product only)."""

from django.db import models

from django_rediskit.invalidation import RedisKitModel, register


@register
class Category(RedisKitModel):
    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True, default="")

    class Meta:
        verbose_name_plural = "categories"
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


@register(tag_fields=["category"])
class Product(RedisKitModel):
    name = models.CharField(max_length=200)
    category = models.ForeignKey(Category, related_name="products", on_delete=models.CASCADE)
    price = models.DecimalField(max_digits=8, decimal_places=2)
    description = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


@register(tag_fields=["product"], related=["product"])
class Review(RedisKitModel):
    product = models.ForeignKey(Product, related_name="reviews", on_delete=models.CASCADE)
    author = models.CharField(max_length=80)
    rating = models.PositiveSmallIntegerField(default=5)
    text = models.TextField(blank=True, default="")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created", "-pk"]

    def __str__(self) -> str:
        return f"{self.author} on {self.product}: {self.rating}/5"


class ProductViews(models.Model):
    """Page views of a product, counted in Redis at once and written here by
    ``rediskit_worker`` (write-behind: ``shop/counters.py``); written nowhere else.

    Not registered for invalidation and not a field of Product on purpose: the worker's writes
    must not invalidate the product's cached page every few seconds.
    """

    product = models.OneToOneField(
        Product, primary_key=True, related_name="page_views", on_delete=models.CASCADE
    )
    views = models.PositiveBigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.product}: {self.views} views"
