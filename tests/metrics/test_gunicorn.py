"""Prometheus multiprocess mode: 4 gunicorn workers, one /metrics/ summing all of them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests import servers

ROOT = Path(__file__).resolve().parents[2]


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return str(response.read().decode())


def _samples(body: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
    }


@pytest.mark.slow
def test_four_workers_counters_summed_on_metrics(
    private_redis: servers.RedisServer, tmp_path: Path
) -> None:
    gunicorn = shutil.which("gunicorn", path=str(Path(sys.executable).parent))
    if gunicorn is None:
        pytest.skip("gunicorn missing: pip install -e '.[dev]'")
    port = servers.free_port()
    multiproc = tmp_path / "prom"
    multiproc.mkdir()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.metrics.site",
        "REDIS_URL": private_redis.url,
        "REDISKIT_TEST_PREFIX": "mxgun",
        "PROMETHEUS_MULTIPROC_DIR": str(multiproc),
    }
    log = open(tmp_path / "gunicorn.log", "wb")  # noqa: SIM115 (closed in finally)
    process = subprocess.Popen(
        [
            gunicorn,
            "--workers=4",
            f"--bind=127.0.0.1:{port}",
            "--config=python:django_rediskit.metrics.gunicorn",
            "tests.metrics.site:application",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                _get(f"{base}/lookup/warm/")
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise AssertionError((tmp_path / "gunicorn.log").read_text()) from None
                time.sleep(0.2)
        _get(f"{base}/lookup/present/?set=1")
        urls = [f"{base}/lookup/present/"] * 30 + [f"{base}/lookup/absent/"] * 10
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(_get, urls))
        assert sorted(answer.split()[1] for answer in answers) == ["hit"] * 30 + ["miss"] * 10
        pids = {answer.split()[0] for answer in answers}
        assert len(pids) >= 2, "the requests should have spread over several workers"
        # warm (1 miss) + set-then-get (1 hit) + 30 hits + 10 misses, over every worker
        expected = {"hit": 31.0, "miss": 11.0}
        seen: dict[str, float] = {}
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            samples = _samples(_get(f"{base}/metrics/"))
            seen = {
                result: samples.get(
                    (
                        "rediskit_cache_requests_total",
                        (("alias", "default"), ("op", "get"), ("result", result)),
                    ),
                    0.0,
                )
                for result in expected
            }
            if seen == expected:
                break
            time.sleep(0.2)
        assert seen == expected
        latency = samples[
            ("rediskit_cache_latency_seconds_count", (("alias", "default"), ("op", "get")))
        ]
        assert latency == 42  # every get of every worker, each timed once
        assert len(list(multiproc.glob("*.db"))) >= 2  # one file set per worker
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()
