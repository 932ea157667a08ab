"""Redis down at commit, the user test helper, and bad registrations."""

from __future__ import annotations

import logging

import pytest
from django.core.cache import caches
from django.core.exceptions import ImproperlyConfigured
from django.db import models, transaction
from django.test import override_settings

from django_rediskit import pending
from django_rediskit.invalidation import model_tag, object_tag, register
from django_rediskit.invalidation.testing import capture_invalidations
from tests.servers import RedisServer
from tests.testapp.models import Category, Product


@pytest.mark.django_db(transaction=True)
def test_redis_down_at_commit_still_commits_logs_and_counts(
    private_redis: RedisServer, caplog: pytest.LogCaptureFixture, settings: object
) -> None:
    down = {
        "BACKEND": "django_rediskit.cache.RedisCache",
        "LOCATION": private_redis.url,
        "KEY_PREFIX": "down",
        "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.2},
    }
    with override_settings(
        CACHES={**settings.CACHES, "flaky": down}, REDISKIT={"CACHE_ALIAS": "flaky"}
    ):  # type: ignore[attr-defined]
        private_redis.stop()
        failures_before = pending.failures()
        with caplog.at_level(logging.ERROR), transaction.atomic():
            category = Category.objects.create(name="committed anyway")
        assert Category.objects.filter(pk=category.pk).exists()
        assert pending.failures() == failures_before + 1
        logged = "\n".join(r.getMessage() for r in caplog.records)
        assert object_tag(Category, category.pk) in logged
        assert caches["flaky"].breaker is not None


@pytest.mark.django_db
def test_capture_invalidations_in_a_test_case() -> None:
    category = Category.objects.create(name="c")
    with capture_invalidations() as tags:
        Product.objects.create(name="p", category=category)
    assert model_tag(Product) in tags
    with capture_invalidations(execute=False) as tags:
        category.save()
    assert tags == {object_tag(Category, category.pk), model_tag(Category)}


def test_bad_registrations_are_configuration_errors() -> None:
    with pytest.raises(ImproperlyConfigured, match="no field 'nope'"):
        register(Product, tag_fields=["nope"])
    with pytest.raises(ImproperlyConfigured, match="must be a ForeignKey"):
        register(Product, related=["name"])
    assert isinstance(Product._meta.get_field("category"), models.ForeignKey)


def test_register_is_exported_from_the_package_top_level() -> None:
    import django_rediskit
    from django_rediskit.invalidation.registry import register as real

    assert django_rediskit.register is real
    with pytest.raises(AttributeError):
        django_rediskit.no_such_name  # noqa: B018
