"""Redis glob patterns read the way Redis reads them: one parser for every feature.

The inspector asks what a pattern *covers* (a bulk delete must refuse ``**`` as it refuses
``*``); the local cache compiles its ``KEYS`` globs into one regex; ``sscan(match=...)`` filters
decoded members. All three read patterns through :func:`tokens`, so they can never disagree.
No Django import: it sits at the top, below every feature.


A bulk delete must know whether a pattern covers a whole scope (every key of the database, or
every key of an alias). Comparing the pattern with ``"*"`` is not enough: ``**``, ``*?*``,
``[^]*``, ``?*`` and ``app:[\\x00-\\xff]*`` all match (nearly) everything. So the pattern is
parsed into the tokens Redis's ``stringmatchlen`` (``util.c``) sees: a star, or one position
that admits a set of bytes (a literal byte, ``?``, or a ``[...]`` class with ``^``, ranges,
escapes and the same handling of a missing ``]``).

``covers(pattern, base)`` then answers: does the pattern match every key that starts with
``base``, apart from a few that are too short? It runs the pattern over ``base`` (the states a
glob can be in after reading it), and from a reachable state asks whether the rest is only
stars and positions that admit every byte, with at least one star. If it is not, some long
key under ``base`` escapes the pattern: a position admitting fewer than 256 bytes is failed by a
key made of a byte it refuses, and without a star only keys of one length match.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ALL_BYTES = frozenset(range(256))


@dataclass(frozen=True)
class Star:
    """``*``: any run of bytes, possibly empty."""


@dataclass(frozen=True)
class One:
    """One byte out of ``allowed``."""

    allowed: frozenset[int]


Token = Star | One


def _parse_class(pattern: bytes, i: int) -> tuple[One, int]:
    """A ``[...]`` class starting after its ``[`` at ``i``; returns the token and the next index.

    Mirrors Redis: a leading ``^`` negates; ``\\x`` is a literal x; ``a-z`` is a range (bounds
    swapped if reversed); a class without its ``]`` runs to the end of the pattern.
    """
    negate = i < len(pattern) and pattern[i] == ord("^")
    if negate:
        i += 1
    allowed: set[int] = set()
    while i < len(pattern):
        char = pattern[i]
        if char == ord("\\") and i + 1 < len(pattern):
            allowed.add(pattern[i + 1])
            i += 2
        elif char == ord("]"):
            i += 1
            break
        elif i + 2 < len(pattern) and pattern[i + 1] == ord("-"):
            low, high = sorted((char, pattern[i + 2]))
            allowed.update(range(low, high + 1))
            i += 3
        else:
            allowed.add(char)
            i += 1
    chosen = ALL_BYTES - allowed if negate else frozenset(allowed)
    return One(frozenset(chosen)), i


def tokens(pattern: str | bytes) -> list[Token]:
    """The pattern as Redis matches it: stars (runs of ``*`` collapse) and single positions."""
    data = pattern.encode("utf-8", "surrogateescape") if isinstance(pattern, str) else pattern
    out: list[Token] = []
    i = 0
    while i < len(data):
        char = data[i]
        if char == ord("*"):
            if not out or not isinstance(out[-1], Star):
                out.append(Star())
            i += 1
        elif char == ord("?"):
            out.append(One(ALL_BYTES))
            i += 1
        elif char == ord("["):
            token, i = _parse_class(data, i + 1)
            out.append(token)
        elif char == ord("\\") and i + 1 < len(data):
            out.append(One(frozenset((data[i + 1],))))
            i += 2
        else:
            out.append(One(frozenset((char,))))
            i += 1
    return out


def _advance(toks: list[Token], states: set[int], byte: int) -> set[int]:
    """The states after reading ``byte``; state ``i`` means "tokens before i are matched"."""
    following: set[int] = set()
    for state in states:
        if state >= len(toks):
            continue
        token = toks[state]
        if isinstance(token, Star):
            following.add(state)  # the star eats the byte and stays
        elif byte in token.allowed:
            following.add(state + 1)
    return _close(toks, following)


def _close(toks: list[Token], states: set[int]) -> set[int]:
    """Add the states reachable without reading: a star may match nothing."""
    closed = set(states)
    for state in sorted(states):
        while state < len(toks) and isinstance(toks[state], Star):
            state += 1
            closed.add(state)
    return closed


def _rest_is_universal(toks: list[Token]) -> bool:
    return any(isinstance(t, Star) for t in toks) and all(
        isinstance(t, Star) or t.allowed == ALL_BYTES for t in toks
    )


def covers(pattern: str | bytes, base: bytes = b"") -> bool:
    """Whether ``pattern`` matches every key starting with ``base`` (short ones aside)."""
    toks = tokens(pattern)
    states = _close(toks, {0})
    for byte in base:
        states = _advance(toks, states, byte)
        if not states:
            return False
    return any(_rest_is_universal(toks[state:]) for state in states)


def matches(pattern: str | bytes, key: bytes) -> bool:
    """Whether Redis's MATCH would return ``key`` for ``pattern`` (used to test this module)."""
    toks = tokens(pattern)
    states = _close(toks, {0})
    for byte in key:
        states = _advance(toks, states, byte)
        if not states:
            return False
    return len(toks) in states


def regex_source(pattern: str | bytes) -> bytes:
    """The bytes regex (for ``re.DOTALL`` full matching) of one glob, on UTF-8 bytes as Redis
    matches (``?`` is one byte, not one character)."""
    out: list[bytes] = []
    for token in tokens(pattern):
        if isinstance(token, Star):
            out.append(b".*")
        elif token.allowed == ALL_BYTES:
            out.append(b".")
        elif not token.allowed:
            out.append(b"(?!)")  # an empty class matches nothing, as in Redis
        elif len(token.allowed) == 1:
            out.append(re.escape(bytes(token.allowed)))
        else:
            out.append(
                b"[" + b"".join(re.escape(bytes((b,))) for b in sorted(token.allowed)) + b"]"
            )
    return b"".join(out)


def compile_globs(patterns: list[str] | tuple[str, ...]) -> re.Pattern[bytes]:
    """One compiled regex matching what any of ``patterns`` matches (use ``fullmatch``)."""
    source = b"|".join(b"(?:" + regex_source(pattern) + b")" for pattern in patterns)
    return re.compile(source, re.DOTALL)
