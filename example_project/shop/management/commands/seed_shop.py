"""``manage.py seed_shop``: the demo catalogue, idempotent (run on every ``make demo``)."""

from decimal import Decimal
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from shop.models import Category, Product, Review

CATALOGUE = {
    "Coffee": (
        "Whole beans and ground coffee, roasted weekly.",
        [
            ("Espresso beans 1 kg", "24.90", "A dark, chocolatey blend for espresso."),
            ("Filter roast 500 g", "12.50", "Light roast with notes of citrus."),
            ("Single origin Kenya 250 g", "14.00", "Blackcurrant and tomato-leaf acidity."),
        ],
    ),
    "Tea": (
        "Loose-leaf teas from small gardens.",
        [
            ("Sencha 100 g", "9.80", "Grassy Japanese green tea."),
            ("Assam 250 g", "11.20", "Malty black tea, good with milk."),
            ("Earl Grey 100 g", "8.40", "Black tea with bergamot oil."),
        ],
    ),
    "Gear": (
        "Grinders, kettles and brewers.",
        [
            ("Hand grinder", "79.00", "Steel burrs, 40 click settings."),
            ("Pour-over kettle", "45.00", "Gooseneck spout for a steady pour."),
            ("French press 1 l", "29.00", "Borosilicate glass, steel mesh filter."),
        ],
    ),
}
AUTHORS = ["Ada", "Grace", "Linus", "Guido", "Barbara", "Ken", "Margaret", "Dennis"]
COMMENTS = [
    "Exactly as described.",
    "Would buy again.",
    "Good value for the price.",
    "Arrived quickly and well packed.",
    "Not my favourite, but solid.",
]


class Command(BaseCommand):
    help = "Create the demo catalogue: categories, products and reviews (idempotent)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--reviews", type=int, default=12, help="Reviews per product (default 12)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        per_product: int = options["reviews"]
        if per_product < 0:
            self.stderr.write("--reviews must be >= 0")
            raise SystemExit(2)
        for category_name, (about, products) in CATALOGUE.items():
            category, _ = Category.objects.get_or_create(
                name=category_name, defaults={"description": about}
            )
            for name, price, description in products:
                product, _ = Product.objects.get_or_create(
                    name=name,
                    category=category,
                    defaults={"price": Decimal(price), "description": description},
                )
                missing = per_product - product.reviews.count()
                Review.objects.bulk_create(
                    Review(
                        product=product,
                        author=AUTHORS[(product.pk + i) % len(AUTHORS)],
                        rating=5 - (product.pk + i) % 3,
                        text=COMMENTS[(product.pk + i) % len(COMMENTS)],
                    )
                    for i in range(max(0, missing))
                )
        self.stdout.write(
            f"Seeded {Category.objects.count()} categories, {Product.objects.count()} products, "
            f"{Review.objects.count()} reviews."
        )
