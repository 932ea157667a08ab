"""Which keys the local cache keeps: ``KEYS`` globs read the way Redis reads them, plus prefixes.

The globs are compiled once into one bytes regex that mirrors Redis's ``stringmatchlen``
(``util.c``): ``*`` any run, ``?`` one byte, ``[...]`` a class with ``^`` negation, ranges
(bounds swapped if reversed) and ``\\x`` escapes, a class without its ``]`` running to the end of
the pattern, ``\\x`` outside a class a literal, a trailing ``\\`` a literal backslash. Matching
runs on the UTF-8 bytes of the key, as Redis does (``?`` is one byte, not one character). The
one reader of that syntax is :mod:`django_rediskit.globs`, shared with the inspector.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from django_rediskit.globs import compile_globs


def _universal(pattern: str) -> bool:
    """Patterns that match every key: only stars (the default ``"*"``, ``"**"``)."""
    return bool(pattern) and set(pattern) == {"*"}


def key_matcher(patterns: Sequence[str]) -> Callable[[bytes], object] | None:
    """A function telling whether a key's bytes match any of ``patterns``; None if they match
    every key (the hot path then skips matching entirely)."""
    if isinstance(patterns, (str, bytes)):
        raise TypeError("KEYS must be a list of glob patterns, not one string")
    patterns = list(patterns)
    for pattern in patterns:
        if not isinstance(pattern, str):
            raise TypeError(f"KEYS patterns must be str, not {type(pattern).__name__}")
    if not patterns:
        raise ValueError("KEYS needs at least one glob pattern (use ['*'] for every key)")
    if any(_universal(p) for p in patterns):
        return None
    return compile_globs(patterns).fullmatch


def tracking_prefixes(prefixes: Sequence[str]) -> tuple[str, ...]:
    """The prefixes to track, none a prefix of another (Redis refuses overlapping BCAST
    prefixes on one connection: ``a:`` already covers ``a:b``, so the longer one is dropped)."""
    if isinstance(prefixes, (str, bytes)):
        raise TypeError("prefixes must be a list of key prefixes, not one string")
    names = list(prefixes)
    for name in names:
        if not isinstance(name, str):
            raise TypeError(f"prefixes must be str, not {type(name).__name__}")
    if not names:
        raise ValueError("the local cache needs at least one key prefix to track")
    kept: list[str] = []
    for name in sorted(set(names), key=lambda p: (len(p), p)):
        if not any(name.startswith(shorter) for shorter in kept):
            kept.append(name)
    return tuple(sorted(kept))
