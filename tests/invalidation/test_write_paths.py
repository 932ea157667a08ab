"""Every write path of a registered model drops the right tagged entries, after COMMIT only."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from django_rediskit.invalidation import (
    cached_queryset,
    field_tag,
    generation_tag,
    invalidate_model,
    model_tag,
    object_tag,
)
from tests.cache.commands import count_commands
from tests.testapp.models import (
    Category,
    DiscountedProduct,
    Label,
    Product,
    Review,
    SpecialProduct,
    Unregistered,
)

pytestmark = pytest.mark.django_db(transaction=True)


def remember(*tags: str) -> str:
    """Cache an entry carrying ``tags``; returns its key."""
    key = "entry:" + "|".join(sorted(tags))
    cache.set(key, "cached", tags=list(tags))
    assert cache.get(key) == "cached"
    return key


def fresh(key: str) -> bool:
    return cache.get(key) == "cached"


@pytest.fixture
def shop() -> Iterator[dict[str, Any]]:
    coffee = Category.objects.create(name="coffee")
    tea = Category.objects.create(name="tea")
    beans = Product.objects.create(name="beans", category=coffee, price=10)
    leaves = Product.objects.create(name="leaves", category=tea, price=5)
    yield {"coffee": coffee, "tea": tea, "beans": beans, "leaves": leaves}


def test_save_invalidates_object_and_model_tags_not_others(shop: dict[str, Any]) -> None:
    beans, leaves = shop["beans"], shop["leaves"]
    mine = remember(object_tag(Product, beans.pk))
    listing = remember(model_tag(Product))
    other = remember(object_tag(Product, leaves.pk))
    beans.price = 11
    beans.save()
    assert not fresh(mine)
    assert not fresh(listing)
    assert fresh(other)


@pytest.mark.standalone_only
def test_save_costs_no_extra_query_and_one_round_trip_after_commit(shop: dict[str, Any]) -> None:
    plain = Unregistered.objects.create(name="baseline")
    with CaptureQueriesContext(connection) as baseline, transaction.atomic():
        plain.name = "changed"
        plain.save()
    coffee = shop["coffee"]
    with (
        count_commands() as log,
        CaptureQueriesContext(connection) as registered,
        transaction.atomic(),
    ):
        coffee.name = "espresso"
        coffee.save()
        assert log.round_trips == 0  # nothing reaches Redis before COMMIT
    assert len(registered.captured_queries) == len(baseline.captured_queries)
    assert log.round_trips == 1
    assert set(log.commands) == {"UNLINK"}


def test_rollback_sends_nothing(shop: dict[str, Any]) -> None:
    key = remember(object_tag(Category, shop["coffee"].pk))
    with count_commands() as log, pytest.raises(RuntimeError), transaction.atomic():
        shop["coffee"].name = "never"
        shop["coffee"].save()
        raise RuntimeError("roll back")
    assert log.commands == []
    assert fresh(key)
    # The next transaction on this connection does not inherit the dropped tags.
    with count_commands() as log:
        Unregistered.objects.create(name="x")
    assert log.commands == []


def test_create_and_delete(shop: dict[str, Any]) -> None:
    listing = remember(model_tag(Product))
    product = Product.objects.create(name="new", category=shop["coffee"])
    assert not fresh(listing)
    mine = remember(object_tag(Product, product.pk))
    listing = remember(model_tag(Product))
    product.delete()
    assert not fresh(mine)
    assert not fresh(listing)


def test_queryset_delete(shop: dict[str, Any]) -> None:
    beans = remember(object_tag(Product, shop["beans"].pk))
    leaves = remember(object_tag(Product, shop["leaves"].pk))
    Product.objects.filter(name="beans").delete()
    assert not fresh(beans)
    assert fresh(leaves)


def test_update_small_uses_object_tags_large_uses_generation(shop: dict[str, Any]) -> None:
    beans = remember(object_tag(Product, shop["beans"].pk))
    leaves = remember(object_tag(Product, shop["leaves"].pk), generation_tag(Product))
    listing = remember(model_tag(Product))
    Product.objects.filter(pk=shop["beans"].pk).update(price=99)
    assert not fresh(beans)
    assert not fresh(listing)
    assert fresh(leaves)
    from django.test import override_settings

    with override_settings(REDISKIT={"INVALIDATION": {"UPDATE_PK_CAP": 1}}):
        Product.objects.all().update(price=1)
    assert not fresh(leaves)  # over the cap: the og: generation went


def test_bulk_update_and_bulk_create(shop: dict[str, Any]) -> None:
    beans = remember(object_tag(Product, shop["beans"].pk))
    leaves = remember(object_tag(Product, shop["leaves"].pk))
    shop["beans"].price = 50
    Product.objects.bulk_update([shop["beans"]], ["price"])
    assert not fresh(beans)
    assert fresh(leaves)
    listing = remember(model_tag(Product))
    Product.objects.bulk_create([Product(name="bulk", category=shop["tea"])])
    assert not fresh(listing)


def test_m2m_add_remove_clear_from_both_sides(shop: dict[str, Any]) -> None:
    beans = shop["beans"]
    bold = Label.objects.create(name="bold")
    through = Product.labels.through
    for change in (
        lambda: beans.labels.add(bold),
        lambda: beans.labels.remove(bold),
        lambda: bold.products.add(beans),
        lambda: bold.products.remove(beans),
        lambda: beans.labels.add(bold),
        lambda: beans.labels.clear(),
        lambda: bold.products.add(beans),
        lambda: bold.products.clear(),
    ):
        product_entry = remember(object_tag(Product, beans.pk))
        label_entry = remember(object_tag(Label, bold.pk))
        joined_list = remember(model_tag(through))
        change()
        assert not fresh(product_entry)
        assert not fresh(label_entry)
        assert not fresh(joined_list)


def test_fixture_loading_invalidates_without_queries(shop: dict[str, Any], tmp_path: Any) -> None:
    fixture = tmp_path / "categories.json"
    fixture.write_text('[{"model": "testapp.category", "pk": 900, "fields": {"name": "loaded"}}]')
    entry = remember(object_tag(Category, 900))
    listing = remember(model_tag(Category))
    call_command("loaddata", str(fixture), verbosity=0)
    assert not fresh(entry)
    assert not fresh(listing)


def test_delete_invalidates_related_parent(shop: dict[str, Any]) -> None:
    review = Review.objects.create(product=shop["beans"])
    page = remember(object_tag(Product, shop["beans"].pk))
    review.delete()
    assert not fresh(page)


def test_proxy_shares_the_concrete_tags(shop: dict[str, Any]) -> None:
    proxy = DiscountedProduct.objects.get(pk=shop["beans"].pk)
    entry = remember(object_tag(Product, proxy.pk))
    assert object_tag(DiscountedProduct, 1) == object_tag(Product, 1)
    proxy.price = 3
    proxy.save()
    assert not fresh(entry)


def test_multi_table_child_invalidates_parents(shop: dict[str, Any]) -> None:
    special = SpecialProduct.objects.create(name="special", category=shop["coffee"])
    parent_entry = remember(object_tag(Product, special.pk))
    parent_list = remember(model_tag(Product))
    child_entry = remember(object_tag(SpecialProduct, special.pk))
    special.perk = "free cup"
    special.save()
    assert not fresh(parent_entry)
    assert not fresh(parent_list)
    assert not fresh(child_entry)


def test_tag_field_change_invalidates_old_and_new_lists(
    shop: dict[str, Any], django_assert_num_queries: Any
) -> None:
    coffee, tea = shop["coffee"], shop["tea"]
    beans = Product.objects.get(pk=shop["beans"].pk)
    coffee_list = remember(field_tag(Product, "category", coffee.pk))
    tea_list = remember(field_tag(Product, "category", tea.pk))
    beans.category = tea
    with django_assert_num_queries(1):  # the UPDATE only: old values were stashed at load
        beans.save()
    assert not fresh(coffee_list)
    assert not fresh(tea_list)
    # update_fields narrows: saving only the price leaves the category lists alone.
    coffee_list = remember(field_tag(Product, "category", coffee.pk))
    tea_list = remember(field_tag(Product, "category", tea.pk))
    beans.price = 7
    beans.save(update_fields=["price"])
    assert fresh(coffee_list)
    assert fresh(tea_list)


def test_key_templates_are_deleted(shop: dict[str, Any]) -> None:
    cache.set(f"product:{shop['beans'].pk}:detail", "page")
    shop["beans"].save()
    assert cache.get(f"product:{shop['beans'].pk}:detail") is None


def test_invalidate_model(shop: dict[str, Any]) -> None:
    entry = remember(object_tag(Product, shop["beans"].pk), generation_tag(Product))
    listing = remember(model_tag(Product))
    invalidate_model(Product)
    assert not fresh(entry)
    assert not fresh(listing)


def test_unregistered_models_keep_fast_delete() -> None:
    from django.db.models.deletion import Collector

    Unregistered.objects.create(name="a")
    collector = Collector(using="default")
    assert collector.can_fast_delete(Unregistered.objects.all())
    assert not collector.can_fast_delete(Category.objects.all())


@pytest.mark.standalone_only
def test_cached_queryset_tags_every_joined_table(shop: dict[str, Any]) -> None:
    queryset = Product.objects.select_related("category").filter(category__name="coffee")
    rows = cached_queryset(queryset, 60)
    assert [p.name for p in rows] == ["beans"]
    with count_commands() as log:
        assert [p.name for p in cached_queryset(queryset, 60)] == ["beans"]
    assert log.round_trips == 1 and "MGET" in log.commands  # served from Redis
    shop["coffee"].name = "espresso"
    shop["coffee"].save()  # a Category write drops a Product list that joins categories
    assert cached_queryset(queryset, 60) == []
    assert [p.name for p in Product.objects.filter(category__name="tea").cached(60)] == ["leaves"]


def test_writer_never_reads_or_stores_entries_it_will_invalidate(shop: dict[str, Any]) -> None:
    beans = shop["beans"]
    tag = object_tag(Product, beans.pk)
    cache.set("detail", "old price 10", tags=[tag])
    queryset = Product.objects.filter(pk=beans.pk)
    assert cached_queryset(queryset, 60)[0].price == 10
    with transaction.atomic():
        beans.price = 12
        beans.save()
        assert cache.get("detail", "miss") == "miss"
        assert cache.get("detail", "miss", tags=[tag]) == "miss"
        cache.set("detail", "uncommitted 12", tags=[tag])
        assert cached_queryset(queryset, 60)[0].price == 12  # its own write, not the cache
        seen_by_others: list[Any] = []
        other = threading.Thread(target=lambda: seen_by_others.append(cache.get("detail", "miss")))
        other.start()
        other.join()
        assert seen_by_others == ["miss"]  # the uncommitted value was never stored
    assert cache.get("detail", "miss") == "miss"
    assert cached_queryset(queryset, 60)[0].price == 12


def test_invalidation_reaches_redis_only_after_the_row_is_visible(
    shop: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from django_rediskit.cache.backend import RedisCache

    beans = shop["beans"]
    seen_from_other_connection: list[int] = []
    original = RedisCache.invalidate_tags

    def check_visibility(self: RedisCache, *tags: str) -> int:
        def read() -> None:
            seen_from_other_connection.append(Product.objects.get(pk=beans.pk).price)
            connection.close()

        reader = threading.Thread(target=read)  # its own DB connection
        reader.start()
        reader.join()
        return original(self, *tags)

    monkeypatch.setattr(RedisCache, "invalidate_tags", check_visibility)
    with transaction.atomic():
        beans.price = 77
        beans.save()
        assert seen_from_other_connection == []
    assert seen_from_other_connection == [77]
