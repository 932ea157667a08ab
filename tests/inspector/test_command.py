"""``manage.py rediskit_keys sample`` against a real server."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
import redis
from django.core.management import CommandError, call_command
from django.test import override_settings


def test_sample_reports_namespaces_and_redacts_sessions(
    inspect_settings: Any, raw: redis.Redis
) -> None:
    raw.execute_command("DEBUG", "POPULATE", 3000, "app:1")
    raw.hset("app:u:{7}:m", mapping={f"f{i}": "x" * 50 for i in range(300)})
    sid = "0123456789abcdef0123456789abcdef"
    raw.set(f"app:s:{sid}", "payload")
    raw.expire(f"app:s:{sid}", 100)
    out, err = StringIO(), StringIO()
    call_command("rediskit_keys", "sample", "--alias", "inspect", stdout=out, stderr=err)
    text = out.getvalue()
    assert "Scope: every key of the database" in text  # inspect_settings widens the scope
    assert "Sampled 3003 keys (whole scope)" in text
    assert "app:1" in text and "app:u:{7}:m" in text
    assert sid not in text and "app:s:<" in text
    assert err.getvalue() == ""  # not a terminal: no bar (tests/test_site_progress.py draws one)
    shown = StringIO()
    call_command(
        "rediskit_keys",
        "sample",
        "--alias",
        "inspect",
        "--show-sensitive",
        "--limit",
        "5000",
        stdout=shown,
        stderr=StringIO(),
    )
    assert sid in shown.getvalue()


def test_sample_limit_and_errors(inspect_settings: Any, raw: redis.Redis, server: Any) -> None:
    raw.execute_command("DEBUG", "POPULATE", 5000, "app:k")
    out = StringIO()
    call_command(
        "rediskit_keys",
        "sample",
        "--alias",
        "inspect",
        "--limit",
        "1000",
        stdout=out,
        stderr=StringIO(),
    )
    assert "Sampled 1000 keys (sample limit reached)" in out.getvalue()
    with pytest.raises(CommandError):
        call_command("rediskit_keys", "sample", "--alias", "nope", stderr=StringIO())
    with pytest.raises(CommandError):
        call_command("rediskit_keys", "sample", "--alias", "inspect", "--limit", "0")
    server.stop()
    with pytest.raises(CommandError, match="unavailable"):
        call_command("rediskit_keys", "sample", "--alias", "inspect", stderr=StringIO())


def test_sample_stays_inside_the_default_scope(inspect_settings: Any, raw: redis.Redis) -> None:
    """On a shared Redis another application's keys are neither counted nor named."""
    raw.set("app:mine", "x")
    raw.set("app:also-mine", "x")
    raw.set("other:their-key", "theirs")
    raw.set("appx:1", "theirs")
    scoped = {key: value for key, value in inspect_settings.items() if key != "SCOPE"}
    with override_settings(REDISKIT={"INSPECTOR": scoped}):  # the default: the alias's prefix
        out = StringIO()
        call_command("rediskit_keys", "sample", "--alias", "inspect", "--match", "a*", stdout=out)
        text = out.getvalue()
        assert "Scope: keys of this alias, app:*; MATCH app:a*" in text
        assert "Sampled 1 keys (whole scope)" in text  # app:also-mine
        out = StringIO()
        call_command("rediskit_keys", "sample", "--alias", "inspect", stdout=out)
        text = out.getvalue()
    assert "Sampled 2 keys (whole scope)" in text
    assert "other" not in text and "appx" not in text and "__rediskit" not in text
    out = StringIO()
    call_command("rediskit_keys", "sample", "--alias", "inspect", stdout=out)  # SCOPE database
    assert "Sampled 5 keys" in out.getvalue() and "other:their-key" in out.getvalue()
