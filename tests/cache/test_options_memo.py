"""``OptionsMemo``: a backend built per request reuses what an equal OPTIONS dict built, and
never what a different one did."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from django_rediskit.cache.options import OptionsMemo


def counting() -> tuple[OptionsMemo[int], list[dict[str, Any]]]:
    built: list[dict[str, Any]] = []

    def build(options: dict[str, Any]) -> int:
        if options.get("BAD"):
            raise ValueError("bad option")
        built.append(copy.deepcopy(options))
        return len(built)

    return OptionsMemo(build, limit=3), built


def test_equal_dicts_share_one_build_and_extra_separates() -> None:
    memo, built = counting()
    first = memo.get({"A": 1, "NESTED": {"K": [1, 2]}}, "secret")
    assert memo.get({"A": 1, "NESTED": {"K": [1, 2]}}, "secret") == first  # another equal dict
    assert memo.get({"A": 1, "NESTED": {"K": [1, 2]}}, "other secret") != first
    assert len(built) == 2


@pytest.mark.parametrize("changed", [{"A": True}, {"A": 1.0}, {"A": 2}, {"A": 1, "B": 0}, {}])
def test_a_value_of_another_type_or_content_is_built_afresh(changed: dict[str, Any]) -> None:
    memo, built = counting()
    memo.get({"A": 1})
    memo.get(changed)
    assert len(built) == 2


def test_an_in_place_edit_is_seen() -> None:
    memo, built = counting()
    options: dict[str, Any] = {"LOCAL_CACHE": {"KEYS": ["a*"]}}
    memo.get(options)
    options["LOCAL_CACHE"]["KEYS"].append("b*")
    memo.get(options)
    assert built == [{"LOCAL_CACHE": {"KEYS": ["a*"]}}, {"LOCAL_CACHE": {"KEYS": ["a*", "b*"]}}]


def test_errors_are_raised_every_time_and_the_memo_is_bounded() -> None:
    memo, built = counting()
    for _ in range(2):
        with pytest.raises(ValueError, match="bad option"):
            memo.get({"BAD": True})
    for n in range(5):
        memo.get({"N": n})
    memo.get({"N": 0})  # pushed out by the three newer ones
    assert [options["N"] for options in built] == [0, 1, 2, 3, 4, 0]
