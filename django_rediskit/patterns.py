"""Redis glob patterns built from untrusted text (prefixes, versions, user input).

Shared by the cache, sessions, the inspector and the commands; no Django import, so the
inspector's Redis-facing logic can use it.
"""

from __future__ import annotations

import re

_GLOB_SPECIALS = re.compile(r"([*?\[\]\\])")


def glob_escape(text: str) -> str:
    """Escape Redis glob metacharacters so ``text`` matches only itself in SCAN MATCH."""
    return _GLOB_SPECIALS.sub(r"\\\1", text)
