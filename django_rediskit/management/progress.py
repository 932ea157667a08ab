"""Progress bars for long management commands, drawn with ``rich`` on the command's stderr.

Drawn only when that stream is a terminal and ``--no-progress`` was not given: a cron job, a CI
log or a pipe gets the command's plain result lines and no control characters. The bar goes to
stderr so that ``manage.py rediskit_keys sample > report.txt`` keeps a clean report while the
terminal still shows progress.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)


class Bar:
    """What a command updates; a no-op when no bar is drawn."""

    def __init__(self, progress: Progress | None, task: Any) -> None:
        self._progress = progress
        self._task = task

    def update(self, completed: float, *, total: float | None = None, note: str = "") -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=completed, total=total, note=note)


def wanted(stream: Any, disabled: bool) -> bool:
    """True when a bar should be drawn on ``stream`` (a Django ``OutputWrapper`` or a file)."""
    if disabled:
        return False
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except (ValueError, OSError):  # a closed stream
        return False


@contextlib.contextmanager
def progress_bar(
    stream: Any, description: str, total: float | None, *, disabled: bool = False
) -> Iterator[Bar]:
    """A bar for one long step. ``stream`` is the command's ``self.stderr``."""
    if not wanted(stream, disabled):
        yield Bar(None, None)
        return
    # Django's OutputWrapper appends a newline to each write; rich needs the raw file.
    target: TextIO = getattr(stream, "_out", stream)
    console = Console(file=target, force_terminal=True)
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[note]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(description, total=total, note="")
        yield Bar(progress, task)
