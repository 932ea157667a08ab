"""Progress bars of the long management commands: drawn (rich) on a real terminal (a pty),
never on a pipe or a file, never with --no-progress; results unchanged either way."""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.cache import cache, caches
from django.core.management import CommandError, call_command
from django.test import override_settings

from django_rediskit.management.progress import wanted
from tests.servers import RedisServer


class Terminal:
    """A pseudo-terminal: the command writes to its slave side (a tty), a thread drains it."""

    def __init__(self) -> None:
        master, slave = os.openpty()
        self.master = master
        self.stream = os.fdopen(slave, "w", buffering=1)
        self.chunks: list[bytes] = []
        self.reader = threading.Thread(target=self._drain, daemon=True)
        self.reader.start()

    def _drain(self) -> None:
        while True:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:  # the slave side was closed
                return
            if not chunk:
                return
            self.chunks.append(chunk)

    def text(self) -> str:
        self.stream.close()
        self.reader.join(5)
        os.close(self.master)
        return b"".join(self.chunks).decode(errors="replace")


@pytest.fixture
def terminal() -> Iterator[Terminal]:
    tty = Terminal()
    yield tty
    if not tty.stream.closed:
        tty.text()


def test_only_a_terminal_gets_a_bar(terminal: Terminal) -> None:
    assert wanted(terminal.stream, disabled=False)
    assert not wanted(terminal.stream, disabled=True)
    assert not wanted(io.StringIO(), disabled=False)
    closed = io.StringIO()
    closed.close()
    assert not wanted(closed, disabled=False)


def test_invalidate_pattern_draws_a_bar_on_a_terminal(terminal: Terminal) -> None:
    cache.set_many({f"bulk:{i}": i for i in range(1500)}, 60)
    out = io.StringIO()
    call_command("rediskit_invalidate", "--pattern", "bulk:*", stdout=out, stderr=terminal.stream)
    drawn = terminal.text()
    assert "Deleted 1500 key(s)" in out.getvalue()
    assert "Deleting bulk:*" in drawn and "1500/1500" in drawn and "1500 deleted" in drawn
    assert cache.get("bulk:3") is None


def test_no_progress_flag_draws_nothing(terminal: Terminal) -> None:
    cache.set_many({f"bulk:{i}": i for i in range(300)}, 60)
    out = io.StringIO()
    call_command(
        "rediskit_invalidate",
        "--pattern",
        "bulk:*",
        "--dry-run",
        "--no-progress",
        stdout=out,
        stderr=terminal.stream,
    )
    assert "300 key(s) match" in out.getvalue()
    assert terminal.text() == ""


def test_key_sampler_bar(terminal: Terminal, inspect_settings: Any, raw: Any) -> None:  # noqa: F811
    raw.execute_command("DEBUG", "POPULATE", 2000, "app:p")
    out = io.StringIO()
    call_command(
        "rediskit_keys", "sample", "--alias", "inspect", stdout=out, stderr=terminal.stream
    )
    drawn = terminal.text()
    assert "Sampled 2001 keys (whole scope)" in out.getvalue()  # + the rig's marker key
    assert "Sampling keys" in drawn and "2001/2001" in drawn


def test_session_stats_bar_and_bad_budget(terminal: Terminal) -> None:
    out = io.StringIO()
    call_command("rediskit_sessions", "stats", "--budget", "2", stdout=out, stderr=terminal.stream)
    assert "users with sessions:" in out.getvalue()
    assert "Counting sessions" in terminal.text()
    for budget in ("0", "-1", "nan"):
        with pytest.raises(CommandError, match="--budget must be a positive"):
            call_command("rediskit_sessions", "stats", "--budget", budget, stdout=io.StringIO())


def test_redis_down_ends_the_bar_with_an_error(
    terminal: Terminal, private_redis: RedisServer, settings: Any
) -> None:
    down = {
        **settings.CACHES,
        "down": {"BACKEND": "django_rediskit.cache.RedisCache", "LOCATION": private_redis.url},
    }
    with override_settings(CACHES=down):
        caches["down"].set("bulk:1", 1)
        private_redis.stop()
        with pytest.raises(Exception, match=r"(?i)connect|refused|redis"):
            call_command(
                "rediskit_invalidate",
                "--pattern",
                "bulk:*",
                "--cache",
                "down",
                stdout=io.StringIO(),
                stderr=terminal.stream,
            )


# The inspector's fixtures (a private server under CACHES["inspect"]).
from tests.inspector.conftest import inspect_settings, raw, recorder, server  # noqa: E402, F401
