"""Issue 10, behaviour 6: ``register``/``unregister`` from the top level, and no registered model
silently skips ``update()``, ``bulk_update()`` or ``bulk_create()``.

A registered model whose managers build Django's plain QuerySet fails the system check
(E201 / E202); one with the kit's QuerySet drops its entries after COMMIT, and a rollback drops
nothing (run on PostgreSQL by ``make test``: ``--ds=tests.settings_postgres``).
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from django.core import checks
from django.core.cache import cache
from django.db import connection, models, transaction
from django.db.models import F
from django.db.models.signals import m2m_changed, post_delete, post_init, post_save
from django.test import override_settings

import django_rediskit
from django_rediskit import pending
from django_rediskit.invalidation import (
    NotRegistered,
    RedisKitQuerySet,
    model_tag,
    object_tag,
    pending_tags,
)
from django_rediskit.invalidation.checks import check_registered_models, invalidates
from django_rediskit.invalidation.registry import registration
from tests.servers import RedisServer
from tests.testapp.models import (
    Category,
    Label,
    Magazine,
    Pamphlet,
    PlainBook,
    Product,
    Shelf,
    Unregistered,
)

pytestmark = pytest.mark.django_db(transaction=True)


def remember(*tags: str) -> str:
    key = "entry:" + "|".join(sorted(tags))
    cache.set(key, "cached", tags=list(tags))
    assert cache.get(key) == "cached"
    return key


def fresh_elsewhere(key: str) -> bool:
    """Whether another thread (its own DB connection, so no pending tags) still reads ``key``:
    what every other process sees while a transaction is open."""
    seen: list[bool] = []
    thread = threading.Thread(target=lambda: seen.append(cache.get(key) == "cached"))
    thread.start()
    thread.join()
    return seen == [True]


@pytest.fixture
def plain_book_registered() -> Iterator[None]:
    django_rediskit.register(PlainBook)
    try:
        yield
    finally:
        django_rediskit.unregister(PlainBook)


@pytest.fixture
def pamphlet_unregistered() -> Iterator[None]:
    django_rediskit.unregister(Pamphlet)
    try:
        yield
    finally:
        django_rediskit.register(Pamphlet)


def ids(messages: list[checks.CheckMessage], model: type[models.Model]) -> list[str]:
    return sorted(m.id or "" for m in messages if m.obj is model)


# --- register / unregister ----------------------------------------------------------------------


def test_register_and_unregister_are_top_level_names() -> None:
    from django_rediskit.invalidation import registry

    assert django_rediskit.register is registry.register
    assert django_rediskit.unregister is registry.unregister
    assert {"register", "unregister"} <= set(django_rediskit.__all__)


def test_after_unregister_writes_no_longer_invalidate(pamphlet_unregistered: None) -> None:
    pamphlet = Pamphlet.objects.create(title="a")
    mine = remember(object_tag(Pamphlet, pamphlet.pk))
    listing = remember(model_tag(Pamphlet))
    assert registration(Pamphlet) is None
    for signal in (post_init, post_save, post_delete):
        assert not signal.has_listeners(Pamphlet)  # disconnected: Django's fast delete is back
    pamphlet.title = "b"
    pamphlet.save()
    Pamphlet.objects.filter(pk=pamphlet.pk).update(title="c")
    Pamphlet.objects.bulk_create([Pamphlet(title="d")])
    assert cache.get(mine) == "cached" and cache.get(listing) == "cached"
    pamphlet.delete()
    assert cache.get(mine) == "cached"


def test_register_again_after_unregister_invalidates_again(pamphlet_unregistered: None) -> None:
    django_rediskit.register(Pamphlet)
    pamphlet = Pamphlet.objects.create(title="a")
    mine = remember(object_tag(Pamphlet, pamphlet.pk))
    pamphlet.save()
    assert cache.get(mine) is None
    django_rediskit.unregister(Pamphlet)  # the fixture registers it again


def test_unregister_of_a_model_not_registered_is_a_clear_error() -> None:
    with pytest.raises(NotRegistered, match=r"testapp\.Unregistered is not registered"):
        django_rediskit.unregister(Unregistered)
    with pytest.raises(LookupError):
        django_rediskit.unregister(Shelf)
    with pytest.raises(TypeError, match="model class"):
        django_rediskit.unregister("testapp.Category")  # type: ignore[arg-type]


def test_unregister_twice_raises_the_second_time(pamphlet_unregistered: None) -> None:
    with pytest.raises(NotRegistered):
        django_rediskit.unregister(Pamphlet)


def test_unregister_keeps_a_through_model_the_other_side_still_needs() -> None:
    """Product and Label share the labels through model: with Label unregistered, adding a
    label to a product still drops the product's entries."""
    category = Category.objects.create(name="c")
    product = Product.objects.create(name="p", category=category)
    label = Label.objects.create(name="l")
    django_rediskit.unregister(Label)
    try:
        assert m2m_changed.has_listeners(Product.labels.through)
        mine = remember(object_tag(Product, product.pk))
        label.products.add(product)
        assert cache.get(mine) is None
    finally:
        django_rediskit.register(Label)


# --- the system check ----------------------------------------------------------------------------


def test_check_fires_for_a_registered_model_with_plain_managers(
    plain_book_registered: None,
) -> None:
    messages = check_registered_models()
    assert ids(messages, PlainBook) == ["django_rediskit.E201", "django_rediskit.E202"]
    e201 = next(m for m in messages if m.id == "django_rediskit.E201")
    assert e201.level == checks.ERROR
    assert "testapp.PlainBook" in e201.msg and "'objects'" in e201.msg
    assert "objects = RedisKitManager()" in (e201.hint or "")
    assert "RedisKitQuerySet.as_manager()" in (e201.hint or "")
    e202 = next(m for m in messages if m.id == "django_rediskit.E202")
    assert "shelf" in e202.msg
    assert 'base_manager_name = "objects"' in (e202.hint or "")
    # Registered in django_rediskit/checks.py: `manage.py check` reports it.
    found = checks.run_checks(tags=[checks.Tags.models])
    assert {"django_rediskit.E201", "django_rediskit.E202"} <= {m.id for m in found}


def test_check_is_silent_for_models_with_the_invalidating_queryset() -> None:
    """Every model the test app registers (RedisKitModel, a Meta of its own, a manager built with
    RedisKitQuerySet.as_manager(), a proxy, a multi-table child) passes."""
    assert check_registered_models() == []
    assert registration(PlainBook) is None
    found = checks.run_checks(tags=[checks.Tags.models])
    assert not [m for m in found if (m.id or "").startswith("django_rediskit.E20")]


def test_check_limited_to_app_configs(plain_book_registered: None) -> None:
    from django.apps import apps

    assert check_registered_models([apps.get_app_config("auth")]) == []
    testapp = check_registered_models([apps.get_app_config("testapp")])
    assert ids(testapp, PlainBook) == ["django_rediskit.E201", "django_rediskit.E202"]


class OverridingManager(models.Manager[Any]):
    def get_queryset(self) -> RedisKitQuerySet[Any]:
        return RedisKitQuerySet(self.model, using=self._db)


class BrokenManager(models.Manager[Any]):
    def get_queryset(self) -> Any:
        raise RuntimeError("needs a request")


def test_invalidates_recognises_each_kind_of_manager() -> None:
    assert invalidates(Magazine.objects)
    assert invalidates(Product.objects)
    assert invalidates(OverridingManager())
    assert not invalidates(models.Manager())
    assert not invalidates(BrokenManager())
    assert not invalidates(PlainBook._base_manager)
    assert invalidates(Pamphlet._base_manager) and invalidates(Magazine._base_manager)


# --- with our QuerySet: bulk writes invalidate after COMMIT, a rollback nothing ----------------


@pytest.fixture
def magazines() -> list[Magazine]:
    shelf = Shelf.objects.create(name="s")
    return [Magazine.objects.create(title=f"m{i}", shelf=shelf) for i in range(3)]


def test_update_drops_entries_after_commit_only(magazines: list[Magazine]) -> None:
    first, _, third = magazines
    mine = remember(object_tag(Magazine, first.pk))
    listing = remember(model_tag(Magazine))
    other = remember(object_tag(Magazine, third.pk))
    with transaction.atomic():
        assert Magazine.objects.filter(pk=first.pk).update(issue=2) == 1
        assert object_tag(Magazine, first.pk) in pending_tags()
        assert fresh_elsewhere(mine)  # not before COMMIT: other readers see committed rows
        assert cache.get(mine) is None  # the writer itself never reads around its own write
    assert not fresh_elsewhere(mine) and not fresh_elsewhere(listing)
    assert fresh_elsewhere(other)


def test_rolled_back_update_drops_nothing(magazines: list[Magazine]) -> None:
    first = magazines[0]
    mine = remember(object_tag(Magazine, first.pk))
    listing = remember(model_tag(Magazine))
    with pytest.raises(RuntimeError), transaction.atomic():
        Magazine.objects.filter(pk=first.pk).update(issue=9)
        raise RuntimeError("roll back")
    assert Magazine.objects.get(pk=first.pk).issue == 1
    assert fresh_elsewhere(mine) and fresh_elsewhere(listing)
    assert pending_tags() == set()


def test_bulk_update_and_bulk_create_drop_entries_after_commit(
    magazines: list[Magazine],
) -> None:
    first, second, third = magazines
    touched = [remember(object_tag(Magazine, m.pk)) for m in (first, second)]
    untouched = remember(object_tag(Magazine, third.pk))
    listing = remember(model_tag(Magazine))
    with transaction.atomic():
        first.issue, second.issue = 5, 6
        Magazine.objects.bulk_update([first, second], ["issue"])
        assert all(fresh_elsewhere(key) for key in touched)
    assert not any(fresh_elsewhere(key) for key in touched)
    assert fresh_elsewhere(untouched) and not fresh_elsewhere(listing)
    listing = remember(model_tag(Magazine))
    with transaction.atomic():
        Magazine.objects.bulk_create([Magazine(title="new")])
        assert fresh_elsewhere(listing)
    assert not fresh_elsewhere(listing)


def test_related_manager_update_invalidates(magazines: list[Magazine]) -> None:
    shelf = magazines[0].shelf
    assert shelf is not None
    keys = [remember(object_tag(Magazine, m.pk)) for m in magazines]
    shelf.magazines.update(issue=3)
    assert not any(fresh_elsewhere(key) for key in keys)


def test_set_null_on_delete_goes_through_the_invalidating_base_manager() -> None:
    shelf = Shelf.objects.create(name="s")
    magazine = Magazine.objects.create(title="m", shelf=shelf)
    pamphlet = Pamphlet.objects.create(title="p", shelf=shelf)
    keys = [
        remember(object_tag(Magazine, magazine.pk)),
        remember(object_tag(Pamphlet, pamphlet.pk)),
    ]
    with transaction.atomic():
        shelf.delete()
        assert all(fresh_elsewhere(key) for key in keys)
    assert Magazine.objects.get(pk=magazine.pk).shelf_id is None
    assert not any(fresh_elsewhere(key) for key in keys)


def test_the_gap_e202_reports_is_real(plain_book_registered: None) -> None:
    """Why E202 exists: with Django's automatic base manager, the SET_NULL update of a
    registered model's rows keeps their entries, silently."""
    shelf = Shelf.objects.create(name="s")
    book = PlainBook.objects.create(title="b", shelf=shelf)
    key = remember(object_tag(PlainBook, book.pk))
    shelf.delete()
    assert PlainBook.objects.get(pk=book.pk).shelf_id is None
    assert fresh_elsewhere(key)  # stale: exactly what the check refuses at start-up


def test_update_with_redis_down_at_commit_still_commits(
    private_redis: RedisServer, caplog: pytest.LogCaptureFixture, settings: Any
) -> None:
    down = {
        "BACKEND": "django_rediskit.cache.RedisCache",
        "LOCATION": private_redis.url,
        "KEY_PREFIX": "down",
        "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.2},
    }
    magazine = Magazine.objects.create(title="m")
    with override_settings(
        CACHES={**settings.CACHES, "flaky": down}, REDISKIT={"CACHE_ALIAS": "flaky"}
    ):
        private_redis.stop()
        failures = pending.failures()
        with caplog.at_level(logging.ERROR), transaction.atomic():
            Magazine.objects.filter(pk=magazine.pk).update(issue=7)
    assert Magazine.objects.get(pk=magazine.pk).issue == 7
    assert pending.failures() == failures + 1
    assert object_tag(Magazine, magazine.pk) in "\n".join(r.getMessage() for r in caplog.records)


def test_concurrent_updates_never_leave_a_stale_read_after_commit() -> None:
    """Writers bump rows with ``update()`` in real transactions while readers cache them: once
    an update has committed, no reader gets an older value."""
    if connection.vendor != "postgresql":
        pytest.skip("concurrent write transactions need PostgreSQL (tests.settings_postgres)")
    rows, writes, readers_count = 3, 25, 6
    pks = [Magazine.objects.create(title=f"m{i}", issue=0).pk for i in range(rows)]
    committed = dict.fromkeys(pks, 0)
    lock = threading.Lock()
    done = threading.Event()
    stale: list[tuple[int, int, int]] = []
    errors: list[BaseException] = []
    reads: list[int] = []

    def read(pk: int) -> int:
        value: int = cache.get_or_set(
            f"issue:{pk}",
            lambda: Magazine.objects.get(pk=pk).issue,
            60,
            tags=[object_tag(Magazine, pk)],
        )
        return value

    def writer(pk: int) -> None:
        try:
            for _ in range(writes):
                with transaction.atomic():
                    Magazine.objects.filter(pk=pk).update(issue=F("issue") + 1)
                with lock:
                    committed[pk] += 1
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    def reader(seed: int) -> None:
        rng = random.Random(seed)
        try:
            while not done.is_set():
                pk = rng.choice(pks)
                with lock:
                    floor = committed[pk]
                value = read(pk)
                reads.append(1)
                if value < floor:
                    stale.append((pk, value, floor))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    readers = [threading.Thread(target=reader, args=(n,)) for n in range(readers_count)]
    writers = [threading.Thread(target=writer, args=(pk,)) for pk in pks]
    for thread in readers + writers:
        thread.start()
    for thread in writers:
        thread.join()
    done.set()
    for thread in readers:
        thread.join()
    assert errors == []
    assert reads and stale == []
    for pk in pks:
        assert read(pk) == writes
