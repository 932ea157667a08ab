"""The Grafana dashboard in docs/ queries only metrics the exporter really serves."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana-dashboard.json"


def test_every_queried_metric_is_exported(prometheus: Callable[..., float]) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    queried = {name for expr in exprs for name in re.findall(r"\brediskit_[a-z_]+", expr)}
    assert len(queried) >= 8
    served: set[str] = set()
    for family in text_string_to_metric_families(generate_latest(REGISTRY).decode()):
        served.add(family.name)
        kind_suffixes = {
            "counter": ["_total"],
            "histogram": ["_bucket", "_count", "_sum"],
        }.get(family.type, [])
        served.update(family.name + suffix for suffix in kind_suffixes)
    assert queried <= served, sorted(queried - served)
    # labels the panels group by exist on those metrics (no key or user labels anywhere)
    grouped = {label for expr in exprs for label in re.findall(r"by \(([^)]*)\)", expr)}
    labels = {part.strip() for group in grouped for part in group.split(",")}
    assert labels <= {"alias", "op", "result", "scope", "outcome", "event", "state", "le"}
