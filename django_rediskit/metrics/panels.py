"""A Django Debug Toolbar panel: what rediskit did for one request.

Add ``"django_rediskit.metrics.panels.RedisKitPanel"`` to ``DEBUG_TOOLBAR_PANELS``. Per request
it lists the cache calls (operation, key, hit or miss, tags, time), the tag and key
invalidations that model changes queued and the ones sent after the commit, the throttle
decisions with their remaining budget, and the session events. Keys are shown because the
panel is a developer's view of their own request; everything is escaped (a key is user data).

While a toolbar request runs, a recording sink is installed, so the hooks are on for every
thread of the process: on a threaded dev server a call made by another request at the same
moment can land in this one's list, and its hit/miss (read as the change of the alias's
counters during the call) can be off. The panel is for development, never production.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from debug_toolbar.panels import Panel
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from django_rediskit.metrics import events

#: Longest key or tag list shown in full.
SHOWN = 200

_current: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "rediskit_toolbar_record", default=None
)


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= SHOWN else text[: SHOWN - 1] + "…"


def _result(hits: int, misses: int) -> str:
    """A call's hit or miss, from how the alias's counters moved during it."""
    if hits and not misses:
        return "hit"
    if misses and not hits:
        return "miss"
    return f"{hits} hits, {misses} misses" if hits or misses else ""


class RequestRecorder(events.Sink):
    """Appends the events of the current request (a context variable) to its record."""

    def __init__(self) -> None:
        self._users = 0
        self._lock = threading.Lock()

    def start(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "calls": [],
            "invalidations": [],
            "throttles": [],
            "sessions": [],
            "seen": {},
        }
        with self._lock:
            self._users += 1
            events.add_sink(self)
        return record

    def stop(self) -> None:
        with self._lock:
            self._users -= 1
            if self._users <= 0:
                self._users = 0
                events.remove_sink(self)

    def cache_call(
        self,
        backend: Any,
        op: str,
        started: float,
        seconds: float,
        args: tuple[Any, ...],
        kwargs: Mapping[str, Any],
    ) -> None:
        record = _current.get()
        if record is None:
            return
        stats = backend.stats
        seen = record["seen"]
        before = seen.get(backend.scope, (stats.hits, stats.misses))
        hits, misses = stats.hits - before[0], stats.misses - before[1]
        seen[backend.scope] = (stats.hits, stats.misses)
        if op in events.TAG_OPS:
            key = ""
            tags: Iterable[str] | None = args
        else:
            key = _short(args[0]) if args else ""
            tags = kwargs.get("tags")
        record["calls"].append(
            {
                "alias": backend.scope,
                "op": op,
                "key": key,
                "result": _result(hits, misses),
                "tags": _short(", ".join(map(str, tags))) if tags else "",
                "ms": round(seconds * 1000, 3),
            }
        )

    def cache_error(self, backend: Any, op: str, exc: BaseException) -> None:
        record = _current.get()
        if record is not None:
            record["calls"].append(
                {
                    "alias": backend.scope,
                    "op": op,
                    "key": "",
                    "result": f"error: {type(exc).__name__}",
                    "tags": "",
                    "ms": 0.0,
                }
            )

    def invalidation_queued(self, tags: Iterable[str], keys: Iterable[str]) -> None:
        record = _current.get()
        if record is not None:
            record["invalidations"].append(
                {"when": "queued", "tags": _short(", ".join(tags)), "keys": _short(", ".join(keys))}
            )

    def invalidation_flushed(self, tags: list[str], keys: list[str], ok: bool) -> None:
        record = _current.get()
        if record is not None:
            record["invalidations"].append(
                {
                    "when": "sent after commit" if ok else "FAILED after commit",
                    "tags": _short(", ".join(tags)),
                    "keys": _short(", ".join(keys)),
                }
            )

    def throttle_decision(self, scope: str, outcome: str, decision: Any) -> None:
        record = _current.get()
        if record is not None:
            statuses = decision.statuses
            record["throttles"].append(
                {
                    "scope": scope,
                    "outcome": outcome,
                    "remaining": min(s.remaining for s in statuses) if statuses else None,
                    "rates": ", ".join(str(s.rate) for s in statuses),
                    "retry_after": round(decision.retry_after, 3),
                }
            )

    def session_event(self, event: str, device_id: str | None) -> None:
        record = _current.get()
        if record is not None:
            record["sessions"].append({"event": event, "device": device_id or ""})


recorder = RequestRecorder()


def _table(headers: tuple[str, ...], rows: list[tuple[Any, ...]]) -> SafeString:
    if not rows:
        return format_html("<p>{}</p>", "None.")
    head = format_html_join("", "<th>{}</th>", ((h,) for h in headers))
    body = format_html_join(
        "",
        "<tr>{}</tr>",
        ((format_html_join("", "<td>{}</td>", ((cell,) for cell in row)),) for row in rows),
    )
    return format_html("<table><thead><tr>{}</tr></thead><tbody>{}</tbody></table>", head, body)


class RedisKitPanel(Panel):  # type: ignore[misc]
    title = "Redis kit"
    template = ""  # rendered in Python (content below), so no template file is needed

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._record: dict[str, Any] | None = None
        self._token: contextvars.Token[dict[str, Any] | None] | None = None

    @property
    def nav_subtitle(self) -> str:
        stats = self.get_stats()  # type: ignore[no-untyped-call]
        calls = stats.get("calls", [])
        hits = sum(1 for call in calls if call["result"] == "hit")
        misses = sum(1 for call in calls if call["result"] == "miss")
        return f"{len(calls)} calls, {hits} hits, {misses} misses"

    def enable_instrumentation(self) -> None:
        self._record = recorder.start()
        from django_rediskit.metrics.events import alias_stats

        self._record["seen"] = {alias: (s.hits, s.misses) for alias, s in alias_stats()}
        self._token = _current.set(self._record)

    def disable_instrumentation(self) -> None:
        if self._token is not None:
            _current.reset(self._token)
            self._token = None
        recorder.stop()

    def generate_stats(self, request: Any, response: Any) -> None:
        record = self._record or {}
        self.record_stats(  # type: ignore[no-untyped-call]
            {name: record.get(name, []) for name in ("calls", "invalidations", "throttles")}
            | {"sessions": record.get("sessions", [])}
        )

    @property
    def content(self) -> SafeString:
        stats = self.get_stats()  # type: ignore[no-untyped-call]
        calls = stats.get("calls", [])
        total = sum(call["ms"] for call in calls)
        return format_html(
            '<div class="rediskit-panel">'
            '<h4>Cache calls ({} in {} ms)</h4><div id="rk-calls">{}</div>'
            '<h4>Invalidations</h4><div id="rk-invalidations">{}</div>'
            '<h4>Throttle decisions</h4><div id="rk-throttles">{}</div>'
            '<h4>Sessions</h4><div id="rk-sessions">{}</div></div>',
            len(calls),
            round(total, 3),
            _table(
                ("Alias", "Operation", "Key", "Result", "Tags", "Time (ms)"),
                [(c["alias"], c["op"], c["key"], c["result"], c["tags"], c["ms"]) for c in calls],
            ),
            _table(
                ("When", "Tags", "Keys"),
                [(i["when"], i["tags"], i["keys"]) for i in stats.get("invalidations", [])],
            ),
            _table(
                ("Scope", "Outcome", "Remaining", "Rates", "Retry after (s)"),
                [
                    (t["scope"], t["outcome"], t["remaining"], t["rates"], t["retry_after"])
                    for t in stats.get("throttles", [])
                ],
            ),
            _table(
                ("Event", "Device"),
                [(s["event"], s["device"]) for s in stats.get("sessions", [])],
            ),
        )
