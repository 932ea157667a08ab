"""``REDISKIT["INSPECTOR"]``: the inspector's settings, with defaults and validation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from django_rediskit import conf
from django_rediskit.inspector.scan import Budget

#: ``SCOPE`` values: the alias's own keys (``<KEY_PREFIX>:*``), or every key of its database.
SCOPES = ("prefix", "database")

DEFAULTS: dict[str, Any] = {
    # Every mutation is refused unless this is set to False explicitly (DEBUG does not count:
    # a development flag left on must not make a shared Redis writable).
    "READ_ONLY": True,
    # What the inspector browses and may change: "prefix" (the alias's KEY_PREFIX) or
    # "database" (every key of the alias's database, other applications' included).
    "SCOPE": "prefix",
    # CACHES aliases offered in the admin; None = every alias that uses our backend.
    "ALIASES": None,
    "PAGE_SIZE": 50,
    "SCAN_COUNT": 1000,
    "MAX_SCAN_CALLS": 20,
    "MAX_SCAN_MS": 150,
    "VALUE_PAGE_SIZE": 100,
    # Globs (fnmatch, on the full key name) treated like session keys: names and values hidden.
    "SENSITIVE_PATTERNS": ["*csrf*", "*token*", "*secret*", "*password*"],
    "SAMPLE_LIMIT": 100_000,
    "SAMPLE_SECONDS": 2.0,
    "BULK_BATCH": 500,
    # Largest string the header / pickle / JSON decoders read whole (GETRANGE, bounded).
    "DECODE_LIMIT": 1024 * 1024,
}


@dataclass(frozen=True)
class InspectorConfig:
    read_only: bool
    scope: str
    aliases: list[str]
    budget: Budget
    value_page_size: int
    sensitive_patterns: list[str]
    sample_limit: int
    sample_seconds: float
    bulk_batch: int
    decode_limit: int


def _our_aliases() -> list[str]:
    from django_rediskit.aliases import rediskit_aliases

    return rediskit_aliases()


def load() -> InspectorConfig:
    """Read and validate the settings; raises ImproperlyConfigured on a bad value."""
    user = conf.get_setting("INSPECTOR") or {}
    if not isinstance(user, dict):
        raise ImproperlyConfigured('REDISKIT["INSPECTOR"] must be a dict.')
    unknown = sorted(set(user) - set(DEFAULTS))
    if unknown:
        raise ImproperlyConfigured(f'REDISKIT["INSPECTOR"] has unknown keys: {unknown}.')
    values = {**DEFAULTS, **user}
    read_only = values["READ_ONLY"]
    if not isinstance(read_only, bool):
        raise ImproperlyConfigured(
            'REDISKIT["INSPECTOR"]["READ_ONLY"] must be True or False (it no longer follows '
            "DEBUG; set False to allow changes)."
        )
    if values["SCOPE"] not in SCOPES:
        raise ImproperlyConfigured(
            f'REDISKIT["INSPECTOR"]["SCOPE"] must be one of {list(SCOPES)}, '
            f"not {values['SCOPE']!r}."
        )
    aliases = values["ALIASES"] if values["ALIASES"] is not None else _our_aliases()
    if not isinstance(aliases, list) or not all(isinstance(alias, str) for alias in aliases):
        raise ImproperlyConfigured('REDISKIT["INSPECTOR"]["ALIASES"] must be a list of aliases.')
    for name in ("PAGE_SIZE", "SCAN_COUNT", "MAX_SCAN_CALLS", "VALUE_PAGE_SIZE", "BULK_BATCH"):
        value = values[name]
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 10_000:
            raise ImproperlyConfigured(
                f'REDISKIT["INSPECTOR"]["{name}"] must be an int from 1 to 10000.'
            )
    return InspectorConfig(
        read_only=read_only,
        scope=values["SCOPE"],
        aliases=list(aliases),
        budget=Budget(
            page_size=values["PAGE_SIZE"],
            count=values["SCAN_COUNT"],
            max_calls=values["MAX_SCAN_CALLS"],
            max_ms=float(values["MAX_SCAN_MS"]),
        ),
        value_page_size=min(values["VALUE_PAGE_SIZE"], 500),
        sensitive_patterns=list(values["SENSITIVE_PATTERNS"]),
        sample_limit=int(values["SAMPLE_LIMIT"]),
        sample_seconds=float(values["SAMPLE_SECONDS"]),
        bulk_batch=min(values["BULK_BATCH"], 500),
        decode_limit=int(values["DECODE_LIMIT"]),
    )
