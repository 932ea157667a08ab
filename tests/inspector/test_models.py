"""The admin entry needs no table, and its migration state is current."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.db import connection

from django_rediskit.models import RedisKey


@pytest.mark.django_db
def test_no_table_and_no_pending_migration() -> None:
    assert RedisKey._meta.db_table not in connection.introspection.table_names()
    call_command("makemigrations", "django_rediskit", "--check", "--dry-run", stdout=StringIO())
    codenames = set(
        Permission.objects.filter(content_type__app_label="django_rediskit").values_list(
            "codename", flat=True
        )
    )
    assert codenames == {
        "view_keys",
        "view_values",
        "change_keys",
        "delete_keys",
        "view_sensitive",
        "view_stats",
    }


def test_bad_settings_are_configuration_errors(settings: object) -> None:
    from django.core.exceptions import ImproperlyConfigured
    from django.test import override_settings

    from django_rediskit.inspector import config

    for bad in ({"PAGE_SIZE": 0}, {"TYPO": 1}, {"ALIASES": "default"}, {"SCAN_COUNT": True}):
        with override_settings(REDISKIT={"INSPECTOR": bad}), pytest.raises(ImproperlyConfigured):
            config.load()


def test_system_check_reports_bad_inspector_settings() -> None:
    from django.test import override_settings

    from django_rediskit.inspector.checks import check_inspector_settings

    assert check_inspector_settings() == []
    with override_settings(REDISKIT={"INSPECTOR": {"PAGE_SIZE": -1}}):
        assert [m.id for m in check_inspector_settings()] == ["django_rediskit.E701"]
    with override_settings(REDISKIT={"INSPECTOR": {"ALIASES": ["ghost"]}}):
        assert [m.id for m in check_inspector_settings()] == ["django_rediskit.E702"]
