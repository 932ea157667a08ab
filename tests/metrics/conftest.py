"""Fixtures: exporters switched on through settings, as a site switches them on."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.test import override_settings
from prometheus_client import REGISTRY

from django_rediskit.metrics import events


def metrics_on(**section: Any) -> Any:
    return override_settings(REDISKIT={"METRICS": section})


@pytest.fixture
def prometheus() -> Iterator[Callable[..., float]]:
    """Prometheus on; yields ``sample(name, **labels)`` (0 if absent)."""
    with metrics_on(PROMETHEUS=True):
        assert events.ENABLED

        def sample(name: str, **labels: str) -> float:
            return REGISTRY.get_sample_value(name, labels) or 0.0

        yield sample
    assert not events.ENABLED
