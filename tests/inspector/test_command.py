"""``manage.py rediskit_keys sample`` against a real server."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
import redis
from django.core.management import CommandError, call_command


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
    assert "Sampled 3003 keys (whole keyspace)" in text
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
    raw.execute_command("DEBUG", "POPULATE", 5000, "k")
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
