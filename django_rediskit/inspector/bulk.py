"""Bulk delete by pattern as a resumable job of bounded steps.

A step scans with the same budget as a browse page, then UNLINKs what it found in pipelines of
single-key UNLINKs (at most ``batch`` per pipeline; single-key so a Cluster node never sees a
cross-slot command). The caller keeps the cursor between steps, so no request runs long and the
admin can show progress and stop at any time. A dry run walks the same steps and only counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django_rediskit import globs
from django_rediskit.inspector.scan import Budget, scan_page

if TYPE_CHECKING:
    from redis import Redis

DEFAULT_BATCH = 500
BULK_BUDGET = Budget(page_size=DEFAULT_BATCH)


@dataclass(frozen=True)
class StepResult:
    matched: int
    deleted: int
    next_cursor: str | None
    examined: int


def bulk_step(
    client: Redis,
    nodes: Sequence[Redis],
    pattern: str,
    cursor: str | None,
    *,
    dry_run: bool,
    budget: Budget = BULK_BUDGET,
    batch: int = DEFAULT_BATCH,
    scope: bytes = b"",
    confirmed: bool = False,
) -> StepResult:
    """One bounded step: scan ``nodes`` within ``budget``, then UNLINK the matches via ``client``.

    ``client`` routes single-key commands (a cluster client in Cluster); ``nodes`` are scanned.
    Only keys starting with ``scope`` are counted or unlinked, whatever the pattern says (the
    views build patterns inside the scope; this is the last line). A pattern matching every
    key of the database is refused unless ``confirmed`` (the user typed the count back).
    """
    if not pattern or (not dry_run and not confirmed and globs.covers(pattern)):
        raise ValueError("refusing to bulk delete every key; give a narrower pattern")
    page = scan_page(nodes, match=pattern, cursor=cursor, budget=budget)
    keys = [key for key in page.keys if key.startswith(scope)]
    deleted = 0
    if not dry_run and keys:
        for start in range(0, len(keys), batch):
            pipe = client.pipeline(transaction=False)
            for key in keys[start : start + batch]:
                pipe.unlink(key)
            deleted += sum(int(n) for n in pipe.execute())
    return StepResult(len(keys), deleted, page.next_cursor, page.examined)
