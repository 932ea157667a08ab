"""KeyBuilder: hierarchy, environment prefix, validation, glob-escaping, argument digests."""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group, User
from django.core.cache import cache
from django.test import override_settings

from django_rediskit.cache.keys import ANY, KeyBuilder, canonical, digest


def test_hierarchical_keys_and_children() -> None:
    users = KeyBuilder("shop", env="")
    assert users.key("user", 42, "profile") == "shop:user:42:profile"
    assert users("user", 42) == "shop:user:42"
    assert users.child("user", 42).key("cart") == "shop:user:42:cart"
    assert users.format("user:{id}:profile", id=7) == "shop:user:7:profile"
    assert users.key(User(pk=3)) == "shop:auth.user.3"
    token = uuid.UUID(int=1)
    assert users.key(token) == f"shop:{token}"


def test_environment_prefix_comes_from_settings() -> None:
    with override_settings(REDISKIT={"KEY_ENV": "staging"}):
        assert KeyBuilder("shop").key("x") == "staging:shop:x"
        assert KeyBuilder("shop").child("a").key("b") == "staging:shop:a:b"
    assert KeyBuilder("shop", env="prod").key("x") == "prod:shop:x"
    assert KeyBuilder("shop").key("x") == "shop:x"


@pytest.mark.parametrize(
    ("part", "error"),
    [
        ("a:b", ValueError),  # the separator would make "a:b" and ("a", "b") collide
        ("has space", ValueError),
        ("tab\t", ValueError),
        ("", ValueError),
        (True, TypeError),
        (3.5, TypeError),
        (None, TypeError),
        (User(), ValueError),  # unsaved: no pk
    ],
)
def test_bad_parts_are_rejected(part: object, error: type) -> None:
    with pytest.raises(error):
        KeyBuilder("ns", env="").key(part)  # type: ignore[arg-type]


def test_length_is_validated() -> None:
    builder = KeyBuilder("ns", env="", max_length=20)
    assert builder.key("x" * 17) == "ns:" + "x" * 17
    with pytest.raises(ValueError, match="over 20"):
        builder.key("x" * 18)


def test_pattern_escapes_literals_and_matches_only_them() -> None:
    builder = KeyBuilder("ns", env="")
    assert builder.pattern("user*", ANY, "[x]") == r"ns:user\*:*:\[x\]"
    cache.set(builder.key("user*", 1, "[x]"), 1)
    cache.set(builder.key("userX", 1, "[x]"), 2)
    cache.set(builder.key("user*", 2, "x"), 3)
    assert sorted(cache.keys(builder.pattern("user*", ANY, "[x]"))) == ["ns:user*:1:[x]"]
    assert cache.delete_pattern(builder.pattern("user*", ANY, "[x]")) == 1
    assert cache.get(builder.key("userX", 1, "[x]")) == 2


def test_digest_is_type_exact_and_order_free_where_it_should_be() -> None:
    assert digest({"a": 1, "b": 2}) == digest({"b": 2, "a": 1})
    assert digest({1, 2, 3}) == digest({3, 1, 2})
    assert digest(1) != digest("1") != digest(1.0)
    assert digest(True) != digest(1)
    assert digest([1, 2]) != digest((1, 2))
    assert digest(User(pk=1)) == digest(User(pk=1, username="other"))
    assert digest(User(pk=1)) != digest(Group(pk=1))
    assert canonical(Decimal("1.10")) != canonical(Decimal("1.1"))
    assert canonical(date(2024, 1, 2)) == ["date", "2024-01-02"]


def test_unknown_objects_need_an_explicit_key() -> None:
    class Opaque:
        pass

    class Keyed:
        def __cache_key__(self) -> str:
            return "k1"

    with pytest.raises(TypeError, match="__cache_key__"):
        digest(Opaque())
    assert digest(Keyed()) == digest(Keyed())
