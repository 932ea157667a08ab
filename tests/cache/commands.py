"""Count the Redis commands and round trips a piece of code sends (test helper)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

from redis.client import Pipeline, Redis


@dataclass
class CommandLog:
    commands: list[str] = field(default_factory=list)
    round_trips: int = 0


@contextlib.contextmanager
def count_commands() -> Iterator[CommandLog]:
    """Record each command name; a pipeline execute counts as one round trip."""
    log = CommandLog()
    original_execute = Redis.execute_command
    original_pipeline = Pipeline.execute

    def execute_command(self: Redis, *args: Any, **options: Any) -> Any:
        if not isinstance(self, Pipeline):
            log.commands.append(str(args[0]).upper())
            log.round_trips += 1
        return original_execute(self, *args, **options)

    def execute(self: Pipeline, raise_on_error: bool = True) -> Any:
        log.round_trips += 1
        log.commands.extend(str(args[0]).upper() for args, _ in self.command_stack)
        return original_pipeline(self, raise_on_error)

    with (
        mock.patch.object(Redis, "execute_command", execute_command),
        mock.patch.object(Pipeline, "execute", execute),
    ):
        yield log
