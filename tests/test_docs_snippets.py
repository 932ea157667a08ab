"""Every ```python block of docs/*.md is exercised: run, in page order, against the suite's
private Redis (the test settings' ``default`` cache), or at least compiled.

The convention (documented in docs/contributing.md, "Code snippets in the docs"), as HTML
comments on the line right before a block, invisible in the rendered site:

- no comment: the block runs. The blocks of one page share a namespace, in order, like a
  tutorial a reader types along.
- ``<!-- snippet-setup: STATEMENTS -->``: STATEMENTS run first (stand-ins for the reader's own
  objects, e.g. ``html = "<p>card</p>"``), then the block runs.
- ``<!-- snippet: not-run: REASON -->``: compiled only (a settings fragment that extends lists the
  reader already has, models of an app, code that needs a request). REASON is required.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.core.cache import cache

DOCS = Path(__file__).resolve().parent.parent / "docs"
FENCE = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
MARK = re.compile(r"<!--\s*snippet(-setup)?:\s*(.*?)\s*-->\s*\Z", re.S)


@dataclass
class Snippet:
    page: str
    line: int
    code: str
    setup: str = ""
    not_run: str | None = None

    @property
    def where(self) -> str:
        return f"docs/{self.page}:{self.line}"


def snippets(page: Path) -> list[Snippet]:
    text = page.read_text()
    found: list[Snippet] = []
    for match in FENCE.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        snippet = Snippet(page.name, line, match.group(1))
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        mark = MARK.search(before)
        if mark and mark.group(1):
            snippet.setup = mark.group(2)
        elif mark:
            kind, _, reason = mark.group(2).partition(":")
            if kind.strip() != "not-run" or not reason.strip():
                raise AssertionError(f"{snippet.where}: write <!-- snippet: not-run: REASON -->")
            snippet.not_run = reason.strip()
        found.append(snippet)
    return found


PAGES = sorted(DOCS.glob("*.md"))


def test_the_convention_is_parsed(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "```python\nx = 1\n```\n\n<!-- snippet-setup: y = 2 -->\n```python\nx + y\n```\n"
        "<!-- snippet: not-run: needs a request -->\n```python\nrequest.user\n```\n"
    )
    first, second, third = snippets(page)
    assert (first.code, first.setup, first.not_run) == ("x = 1\n", "", None)
    assert second.setup == "y = 2" and second.not_run is None
    assert third.not_run == "needs a request"
    page.write_text("<!-- snippet: skip -->\n```python\nx\n```\n")
    with pytest.raises(AssertionError, match="not-run: REASON"):
        snippets(page)


def test_the_docs_have_snippets_and_most_run() -> None:
    every = [snippet for page in PAGES for snippet in snippets(page)]
    runnable = [snippet for snippet in every if snippet.not_run is None]
    assert len(every) >= 40, len(every)
    assert len(runnable) >= len(every) / 2, [s.where for s in every if s.not_run]


@pytest.mark.django_db
@pytest.mark.parametrize("page", PAGES, ids=[page.name for page in PAGES])
def test_page_snippets(page: Path) -> None:
    namespace: dict[str, object] = {"__name__": "__main__"}
    for snippet in snippets(page):
        code = compile(snippet.code, snippet.where, "exec")  # every block is valid Python
        if snippet.not_run is not None:
            continue
        try:
            if snippet.setup:
                exec(compile(snippet.setup, f"{snippet.where} (setup)", "exec"), namespace)
            exec(code, namespace)
        except Exception as exc:
            raise AssertionError(f"{snippet.where} failed: {exc!r}\n{snippet.code}") from exc
    cache.clear()
    # clear() spares queues (by design): drop the ones the messaging page made, so no stream
    # without a TTL outlives this test on the shared server.
    from django_rediskit.messaging import Queue

    for name in ("emails",):
        Queue(name).delete()
