from django.apps import AppConfig


class ShopConfig(AppConfig):
    name = "shop"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.models.signals import post_save

        from shop.counters import product_changed
        from shop.models import Product

        post_save.connect(product_changed, sender=Product, dispatch_uid="shop-product-changed")
