from django.contrib import admin

from shop.models import Category, Product, ProductViews, Review


@admin.register(Category)
class CategoryAdmin(admin.ModelAdmin):
    list_display = ["name"]


class ReviewInline(admin.TabularInline):
    model = Review
    extra = 0


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ["name", "category", "price"]
    list_filter = ["category"]
    inlines = [ReviewInline]


@admin.register(Review)
class ReviewAdmin(admin.ModelAdmin):
    list_display = ["product", "author", "rating", "created"]


@admin.register(ProductViews)
class ProductViewsAdmin(admin.ModelAdmin):
    """Read-only: the totals ``rediskit_worker`` writes behind (editing them here would be
    overwritten by the next flush)."""

    list_display = ("product", "views")

    def has_add_permission(self, request: object) -> bool:
        return False

    def has_change_permission(self, request: object, obj: object = None) -> bool:
        return False
