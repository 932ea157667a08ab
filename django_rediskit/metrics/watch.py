"""``rediskit_info --watch``: a live terminal view of every rediskit alias (``pip install rich``).

Each refresh reads, per alias: Redis's own INFO (memory, server ops/s, keyspace hits), the totals
that every process publishes under ``<prefix>:mx:`` (``REDISKIT["METRICS"]["PUBLISH"]``), summed
over the processes still alive (their keys expire), a bounded SCAN sample of the keys per
namespace, and this process's own breaker. Rates (cache ops/s, hits/s) are differences between
two refreshes of the summed totals, so they cover every worker, not only the one asking.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from redis.exceptions import RedisError

from django_rediskit import conf

#: Keys looked at per alias and refresh for the per-namespace counts (SCAN, never KEYS).
SAMPLE_BUDGET = 2_000


@dataclass
class AliasView:
    """What one refresh shows for one alias."""

    alias: str
    memory: str = "?"
    server_ops: Any = "?"
    dbsize: Any = "?"
    processes: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    breaker_open: bool = False
    namespaces: dict[str, int] = field(default_factory=dict)
    sampled: int = 0
    error: str | None = None

    def total(self, kind: str) -> int:
        """A per-alias figure (hits, misses, calls, errors) of this alias, summed."""
        return self.counts.get(f"{kind}|{self.alias}", 0)

    def rejections(self) -> dict[str, int]:
        found: dict[str, int] = {}
        for name, value in self.counts.items():
            parts = name.split("|")
            if parts[0] == "throttle" and parts[-1] in ("rejected", "fail_closed"):
                found[parts[1]] = found.get(parts[1], 0) + value
        return found


def namespace_counts(backend: Any, budget: int = SAMPLE_BUDGET) -> tuple[dict[str, int], int]:
    """Keys per namespace among the first ``budget`` keys of the alias's prefix."""
    from django_rediskit.patterns import glob_escape

    names = {token: name for name, token in conf.NAMESPACES.items()}
    prefix = backend.key_prefix
    counts: Counter[str] = Counter()
    seen = 0
    for raw in backend.topology.scan_iter(glob_escape(prefix) + ":*", 500, write=True):
        key = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
        token = key[len(prefix) + 1 :].split(":", 1)[0]
        counts[names.get(token, "cache entries" if token.isdigit() else "other")] += 1
        seen += 1
        if seen >= budget:
            break
    return dict(counts), seen


def snapshot(alias: str) -> AliasView:
    from django_rediskit.aliases import backend_for_alias
    from django_rediskit.management.commands.rediskit_info import alias_report
    from django_rediskit.metrics.publish import read_published, summed

    report = alias_report(alias)
    view = AliasView(alias, breaker_open=report["breaker"]["state"] == "open")
    if report["error"]:
        view.error = report["error"]
        return view
    server = report["server"] or {}
    view.memory = server.get("used_memory_human", "?")
    view.server_ops = server.get("ops_per_second", "?")
    view.dbsize = server.get("dbsize", "?")
    backend = backend_for_alias(alias)
    try:
        total = summed(read_published(alias))
        view.namespaces, view.sampled = namespace_counts(backend)
    except RedisError as exc:
        view.error = f"{type(exc).__name__}: {exc}"
        return view
    view.processes = total["processes"]
    view.counts = total["counts"]
    view.breaker_open = view.breaker_open or any(total["breaker_open"].values())
    if not view.processes:  # nothing published: this process's own counters
        stats = report["process_stats"]
        view.counts = {f"hits|{alias}": stats["hits"], f"misses|{alias}": stats["misses"]}
    return view


def _rate(now: AliasView, before: AliasView | None, kinds: tuple[str, ...], seconds: float) -> str:
    if before is None or seconds <= 0:
        return "…"
    moved = sum(now.total(kind) - before.total(kind) for kind in kinds)
    return f"{max(moved, 0) / seconds:.1f}"


def _column(view: AliasView, before: AliasView | None, seconds: float) -> list[str]:
    breaker = "[red]open[/red]" if view.breaker_open else "closed"
    if view.error:
        return [f"[red]{view.error}[/red]", *["-"] * 9, breaker]
    hits, misses = view.total("hits"), view.total("misses")
    ratio = f"{hits / (hits + misses) * 100:.1f}%" if hits + misses else "n/a"
    rejected = ", ".join(f"{scope}: {n}" for scope, n in sorted(view.rejections().items()))
    spread = ", ".join(f"{name} {n}" for name, n in sorted(view.namespaces.items()))
    # cache calls are only known from published totals; lookups are always known
    ops_kinds = ("calls",) if view.processes else ("hits", "misses")
    return [
        ratio,
        f"{hits} / {misses}",
        _rate(view, before, ops_kinds, seconds),
        str(view.server_ops),
        str(view.memory),
        str(view.dbsize),
        f"{spread or '-'} (of {view.sampled} sampled)",
        rejected or "none",
        str(view.total("errors")),
        str(view.processes) if view.processes else "this one only (PUBLISH off)",
        breaker,
    ]


ROWS = (
    "hit ratio",
    "hits / misses",
    "cache ops/s",
    "server ops/s",
    "memory",
    "keys",
    "keys by namespace",
    "throttle rejections",
    "errors",
    "processes",
    "breaker",
)


def render(views: list[AliasView], previous: dict[str, AliasView], seconds: float) -> Any:
    """One column per alias, one row per figure (fits a narrow terminal)."""
    from rich.table import Table

    table = Table(title="django-rediskit", title_justify="left")
    table.add_column("")
    columns = []
    for view in views:
        table.add_column(view.alias)
        columns.append(_column(view, previous.get(view.alias), seconds))
    for index, name in enumerate(ROWS):
        table.add_row(name, *(column[index] if index < len(column) else "" for column in columns))
    return table


def watch(
    aliases: list[str],
    console: Any,
    interval: float = 2.0,
    iterations: int = 0,
    after_frame: Callable[[int], None] | None = None,
) -> int:
    """Refresh every ``interval`` seconds, ``iterations`` times (0: until interrupted).

    On a terminal the view redraws in place (rich ``Live``); otherwise each refresh is printed
    below the last, so a log or a test reads every frame. Returns the number of frames shown.
    """
    from rich.live import Live

    previous: dict[str, AliasView] = {}
    last = time.monotonic()
    frame = 0
    live = Live(console=console, auto_refresh=False) if console.is_terminal else None
    try:
        if live is not None:
            live.start()
        while True:
            now = time.monotonic()
            views = [snapshot(alias) for alias in aliases]
            shown = render(views, previous, now - last)
            if live is not None:
                live.update(shown, refresh=True)
            else:
                console.print(f"--- refresh {frame + 1}")
                console.print(shown)
            previous, last = {view.alias: view for view in views}, now
            frame += 1
            if after_frame is not None:
                after_frame(frame)
            if iterations and frame >= iterations:
                return frame
            time.sleep(interval)
    except KeyboardInterrupt:
        return frame
    finally:
        if live is not None:
            live.stop()
