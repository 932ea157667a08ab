"""Concurrent saves and cached reads with real transactions: no stale read after COMMIT."""

from __future__ import annotations

import random
import threading
from typing import Any

import pytest
from django.core.cache import cache
from django.db import connection, transaction

from django_rediskit.invalidation import object_tag
from tests.testapp.models import Category, Product

pytestmark = pytest.mark.django_db(transaction=True)

ROWS = 4
WRITES_PER_ROW = 40
READERS = 12


def test_no_stale_read_after_commit() -> None:
    if connection.vendor != "postgresql":
        pytest.skip(
            "concurrent write transactions need PostgreSQL (run with tests.settings_postgres)"
        )
    category = Category.objects.create(name="c")
    pks = [Product.objects.create(name=f"p{i}", category=category, price=0).pk for i in range(ROWS)]
    committed = dict.fromkeys(pks, 0)  # highest price whose save() has returned (COMMIT + flush)
    lock = threading.Lock()
    writers_done = threading.Event()
    stale: list[tuple[int, int, int]] = []
    reads: list[int] = []
    errors: list[BaseException] = []

    def writer(pk: int) -> None:
        try:
            for price in range(1, WRITES_PER_ROW + 1):
                with transaction.atomic():
                    product = Product.objects.select_for_update().get(pk=pk)
                    product.price = price
                    product.save()
                with lock:
                    committed[pk] = price
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    def reader() -> None:
        rng = random.Random()
        try:
            while not writers_done.is_set():
                pk = rng.choice(pks)
                with lock:
                    floor = committed[pk]
                price: Any = cache.get_or_set(
                    f"price:{pk}",
                    lambda pk=pk: Product.objects.get(pk=pk).price,
                    60,
                    tags=[object_tag(Product, pk)],
                )
                reads.append(1)
                if price < floor:
                    stale.append((pk, price, floor))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    readers = [threading.Thread(target=reader) for _ in range(READERS)]
    writers = [threading.Thread(target=writer, args=(pk,)) for pk in pks]
    for thread in readers + writers:
        thread.start()
    for thread in writers:
        thread.join()
    writers_done.set()
    for thread in readers:
        thread.join()

    assert errors == []
    assert len(reads) > ROWS * WRITES_PER_ROW
    assert stale == []
    for pk in pks:  # and what the cache holds at the end is the final state, or nothing
        # (a miss when the last invalidation came after the last reader's read)
        held = cache.get(f"price:{pk}", tags=[object_tag(Product, pk)])
        assert held in (None, WRITES_PER_ROW)
        assert (
            cache.get_or_set(
                f"price:{pk}",
                lambda pk=pk: Product.objects.get(pk=pk).price,
                60,
                tags=[object_tag(Product, pk)],
            )
            == WRITES_PER_ROW
        )
