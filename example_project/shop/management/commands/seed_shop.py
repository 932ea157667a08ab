from decimal import Decimal

from django.core.management.base import BaseCommand

from shop.models import Category, Product

CATALOGUE = {
    "Coffee": [("Espresso beans 1 kg", "24.90"), ("Filter roast 500 g", "12.50")],
    "Tea": [("Sencha 100 g", "9.80"), ("Assam 250 g", "11.20")],
    "Gear": [("Hand grinder", "79.00"), ("Pour-over kettle", "45.00")],
}


class Command(BaseCommand):
    help = "Create the demo catalogue (idempotent)."

    def handle(self, *args: object, **options: object) -> None:
        for category_name, products in CATALOGUE.items():
            category, _ = Category.objects.get_or_create(name=category_name)
            for name, price in products:
                Product.objects.get_or_create(
                    name=name, category=category, defaults={"price": Decimal(price)}
                )
        self.stdout.write(f"Seeded {Product.objects.count()} products.")
