"""The Python examples in docs/tags.md and docs/patterns.md run as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.core.cache import cache

DOCS = Path(__file__).resolve().parents[2] / "docs"
BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)


@pytest.mark.parametrize("page", ["patterns.md"])
def test_python_examples_run(page: str) -> None:
    blocks = BLOCK.findall((DOCS / page).read_text(encoding="utf-8"))
    assert len(blocks) >= 5
    namespace: dict[str, object] = {"__name__": "docs_examples"}
    for block in blocks:
        exec(compile(block, f"{page}", "exec"), namespace)
    assert namespace["price"] == 9.99
    assert cache.get("product:42:price") is None  # the example invalidated it
    card = namespace["product_card"]
    assert card(7) == {"pk": 7, "name": "Product 7"}  # type: ignore[operator]
    assert cache.get(card.key_for(7), tags=["product:7", "products"]) == card(7)  # type: ignore[attr-defined]


def test_tags_page_example_runs() -> None:
    blocks = BLOCK.findall((DOCS / "tags.md").read_text(encoding="utf-8"))
    html, rows = "<p>card</p>", [1, 2]
    namespace: dict[str, object] = {"html": html, "rows": rows}
    exec(compile(blocks[0], "tags.md", "exec"), namespace)
    assert cache.get("product:42:card") is None
    assert cache.get("category:7:list") is None
