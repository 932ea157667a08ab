"""The docs site builds strictly (Material + mkdocstrings API pages), its images exist, the
benchmark charts are reproducible from the committed results, and the load script's checks fail
on the outcomes they exist to catch."""

from __future__ import annotations

import copy
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _module(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_mkdocs_build_strict(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={"NO_MKDOCS_2_WARNING": "1", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    reference = (tmp_path / "reference" / "cache" / "index.html").read_text()
    assert "invalidate_tags" in reference and "tag_versions" in reference  # from the docstrings
    assert (
        "Unreleased" in (tmp_path / "changelog" / "index.html").read_text()
        or "0.1.0" in (tmp_path / "changelog" / "index.html").read_text()
    )


def test_every_image_the_docs_show_exists() -> None:
    shown = set()
    for page in (ROOT / "docs").glob("*.md"):
        shown |= set(re.findall(r"\]\((img/[^)]+\.png)\)", page.read_text()))
    assert {"img/shop.png", "img/devices.png", "img/inspector.png"} <= shown
    assert {"img/load-throughput.png", "img/load-latency.png"} <= shown
    for image in shown:
        data = (ROOT / "docs" / image).read_bytes()
        assert data.startswith(b"\x89PNG"), image


def test_charts_are_made_from_the_committed_results(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "charts.py"), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "load-throughput.png").read_bytes().startswith(b"\x89PNG")
    assert "| standalone | product page, cached |" in result.stdout
    empty = tmp_path / "empty"
    empty.mkdir()
    missing = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "charts.py"), "--data", str(empty)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert missing.returncode != 0 and "no load-*.json" in missing.stderr


@pytest.fixture
def load() -> ModuleType:
    return _module(ROOT / "benchmarks" / "load.py", "rediskit_load_bench")


@pytest.fixture
def passing() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((ROOT / "docs" / "data" / "load-standalone.json").read_text())
    return data


def test_the_committed_run_passes_its_checks(load: ModuleType, passing: dict[str, Any]) -> None:
    assert load.check(copy.deepcopy(passing)) == []


@pytest.mark.parametrize(
    ("spoil", "message"),
    [
        (lambda r: r["throughput"]["/product/1/"].update(rps=10.0), "target 3x"),
        (lambda r: r["exactness"].update(exact=False), "throttle not exact"),
        (lambda r: r["outage"].update(http_500=1), "HTTP 5xx"),
        (
            lambda r: r["outage"]["phases"]["during"]["/product/1/"].update({"500": 1}),
            "expected only 200",
        ),
        (
            lambda r: r["outage"]["phases"]["during"].update({"/api/limited/": {"200": 3}}),
            "fail closed",
        ),
        (lambda r: r["outage"].update(workers_unchanged=False), "workers were replaced"),
        (lambda r: r["outage"].update(keys_after=0), "nothing was cached again"),
        (lambda r: r["outage"].update(limited_recovered_after_s=None), "never admitted"),
    ],
)
def test_the_checks_catch_failures(
    load: ModuleType, passing: dict[str, Any], spoil: Any, message: str
) -> None:
    results = copy.deepcopy(passing)
    spoil(results)
    assert any(message in failure for failure in load.check(results)), load.check(results)


def test_percentile_and_summary(load: ModuleType) -> None:
    samples = [load.Sample("/x", 200, 0.0, i / 1000) for i in range(1, 101)]
    samples.append(load.Sample("/x", 0, 0.0, 5.0))  # unanswered: counted, not in latencies
    result = load.summary(samples, elapsed=2.0)
    assert result["requests"] == 101 and result["rps"] == 50.5
    assert result["p50_ms"] == 51.0 and result["p99_ms"] == 100.0
    assert result["status"] == {"0": 1, "200": 100}


def test_the_benchmarks_page_shows_the_committed_results() -> None:
    charts = _module(ROOT / "benchmarks" / "charts.py", "rediskit_load_charts")
    results = charts.load(ROOT / "docs" / "data")
    assert list(results) == ["standalone", "sentinel", "cluster"]
    page = (ROOT / "docs" / "benchmarks.md").read_text()
    assert charts.section(results) in page  # rerun `benchmarks/charts.py --update-docs`
    for result in results.values():
        assert result["failures"] == [], result["failures"]
