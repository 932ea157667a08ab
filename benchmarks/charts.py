"""PNG charts and a Markdown table of ``benchmarks/load.py`` results, for docs/benchmarks.md.

    .venv/bin/python benchmarks/load.py --topology standalone --json docs/data/load-standalone.json
    .venv/bin/python benchmarks/charts.py          # reads docs/data/load-*.json

Writes ``docs/img/load-throughput.png`` (requests/s per page and topology) and
``docs/img/load-latency.png`` (p50 and p99 per page and topology), and prints the tables that
docs/benchmarks.md shows under "HTTP load on the example shop"; ``--update-docs`` writes them
there, between the ``load-results`` markers.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display on a server
import matplotlib.pyplot as plt

ROOT = Path(__file__).resolve().parent.parent
PAGES = {
    "/product/1/": "product page, cached",
    "/product/1/uncached/": "same page, uncached",
    "/api/products/": "throttled API (cached)",
}
ORDER = ["standalone", "sentinel", "cluster"]


def load(folder: Path) -> dict[str, dict[str, Any]]:
    found = {
        path.stem.removeprefix("load-"): json.loads(path.read_text())
        for path in folder.glob("load-*.json")
    }
    return {name: found[name] for name in ORDER if name in found}


def bars(
    results: dict[str, dict[str, Any]], metric: str, title: str, ylabel: str, out: Path
) -> None:
    topologies = list(results)
    width = 0.8 / max(len(topologies), 1)
    figure, axes = plt.subplots(figsize=(8, 4.2), dpi=120)
    for index, topology in enumerate(topologies):
        values = [results[topology]["throughput"][page][metric] for page in PAGES]
        positions = [i + (index - (len(topologies) - 1) / 2) * width for i in range(len(PAGES))]
        drawn = axes.bar(positions, values, width, label=topology)
        axes.bar_label(drawn, fmt="%.0f", fontsize=8)
    axes.set_xticks(range(len(PAGES)), list(PAGES.values()))
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    axes.legend()
    axes.spines[["top", "right"]].set_visible(False)
    figure.tight_layout()
    figure.savefig(out)
    plt.close(figure)


def latency(results: dict[str, dict[str, Any]], out: Path) -> None:
    figure, axes = plt.subplots(
        1, len(results), figsize=(4 * len(results), 4), dpi=120, sharey=True
    )
    axes_list = axes if len(results) > 1 else [axes]
    for ax, (topology, result) in zip(axes_list, results.items(), strict=True):
        labels = [label.replace(", ", "\n") for label in PAGES.values()]
        p50 = [result["throughput"][page]["p50_ms"] for page in PAGES]
        p99 = [result["throughput"][page]["p99_ms"] for page in PAGES]
        ax.bar(labels, p99, color="#e8b08a", label="p99")
        ax.bar(labels, p50, color="#8a4b2a", label="p50")
        ax.set_title(topology)
        ax.tick_params(axis="x", labelsize=8)
        ax.spines[["top", "right"]].set_visible(False)
    axes_list[0].set_ylabel("latency (ms), 32 concurrent clients")
    axes_list[0].legend()
    figure.tight_layout()
    figure.savefig(out)
    plt.close(figure)


def table(results: dict[str, dict[str, Any]]) -> str:
    lines = [
        "| topology | page | req/s | p50 ms | p99 ms |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    for topology, result in results.items():
        for page, label in PAGES.items():
            run = result["throughput"][page]
            numbers = f"{run['rps']:,.0f} | {run['p50_ms']:.0f} | {run['p99_ms']:.0f}"
            lines.append(f"| {topology} | {label} | {numbers} |")
    return "\n".join(lines)


def machine_text(results: dict[str, dict[str, Any]]) -> str:
    first = next(iter(results.values()))["machine"]
    dates = sorted(result["machine"]["date"] for result in results.values())
    loads = "; ".join(f"{name}: {r['machine']['load average']}" for name, r in results.items())
    return (
        f"**Machine:** {first['cpu']}, {first['os']}; Python {first['python']}, Django "
        f"{first['django']}, gunicorn {first['gunicorn']}, redis-py {first['redis-py']}, "
        f"redis-server {first['redis-server']}. **Date:** {dates[0]} to {dates[-1]}.\n"
        f"**Load average** at the end of each run ({loads}): the 2 vCPUs were shared with other "
        "jobs as well as with the 4 workers, Redis and the load generator, so absolute numbers "
        "(and comparisons *between* topologies) are noisy; the ratio inside one run, with the "
        "pages interleaved, is the figure to read."
    )


def outcome_tables(results: dict[str, dict[str, Any]]) -> str:
    checks = [
        "| topology | cached ÷ uncached (target ≥ 3x) | `/api/limited/` admitted, 64 concurrent "
        "clients | disruption under load | HTTP 500 | unanswered | fail-closed API decides "
        "again after | same workers |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    during = [
        "| topology | `/product/1/` (cached page) | `/shop/` | `/api/products/` (fail open) "
        "| `/api/limited/` (fail closed) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, result in results.items():
        exact, down = result["exactness"], result["outage"]
        ratio = (
            result["throughput"]["/product/1/"]["rps"]
            / result["throughput"]["/product/1/uncached/"]["rps"]
        )
        checks.append(
            f"| {name} | {ratio:.2f}x | {exact['admitted']} of {exact['sent']} "
            f"(L = {exact['limit']}) | {down['disruption']} ({down['disrupted_seconds']} s) | "
            f"{down['http_500']} | {down['no_answer']} | {down['limited_recovered_after_s']} s | "
            f"{'yes' if down['workers_unchanged'] else 'no'} |"
        )
        phase = down["phases"].get("during", {})
        cells = [
            ", ".join(f"{code}: {count}" for code, count in sorted(phase.get(path, {}).items()))
            for path in ("/product/1/", "/shop/", "/api/products/", "/api/limited/")
        ]
        during.append(f"| {name} | " + " | ".join(cells) + " |")
    return (
        "\n".join(checks)
        + "\n\nAnswers while Redis was away (requests sent and answered inside the "
        "disruption):\n\n" + "\n".join(during)
    )


def section(results: dict[str, dict[str, Any]]) -> str:
    return (
        machine_text(results)
        + "\n\n### Throughput (10 s per page, in two interleaved halves)\n\n"
        + table(results)
        + "\n\n### Exactness and Redis outages\n\n"
        + outcome_tables(results)
    )


def update_docs(page: Path, text: str) -> None:
    content = page.read_text()
    start = content.index("<!-- load-results:start")
    start = content.index("-->", start) + len("-->")
    end = content.index("<!-- load-results:end -->")
    page.write_text(content[:start] + "\n" + text + "\n" + content[end:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT / "docs" / "data")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    parser.add_argument(
        "--update-docs", action="store_true", help="write the tables into docs/benchmarks.md"
    )
    args = parser.parse_args()
    results = load(args.data)
    if not results:
        raise SystemExit(f"no load-*.json in {args.data}: run benchmarks/load.py --json first")
    args.out.mkdir(parents=True, exist_ok=True)
    bars(
        results,
        "rps",
        "Requests per second, gunicorn 4 workers",
        "requests/s",
        args.out / "load-throughput.png",
    )
    latency(results, args.out / "load-latency.png")
    text = section(results)
    if args.update_docs:
        update_docs(ROOT / "docs" / "benchmarks.md", text)
    print(text)


if __name__ == "__main__":
    main()
