"""Inspector at scale (goals K1, K2, K4 of research/sessions-admin.md §6).

Starts a private redis-server (debug commands on, ``slowlog-log-slower-than 5000``), fills it with
``DEBUG POPULATE`` (10 million keys by default) plus one 1,000,000-member hash, set, sorted set and
list, then drives the real admin views through Django's test client:

* K1: the first browse page (and 100 following pages): SCAN calls, round trips, server time
  (p50 / p95 / max of the whole Django request), and the process RSS growth over the 100 pages;
* K2: SLOWLOG entries over 5 ms that the inspector's own connections caused, across 100 page
  views of the big keys and 100 browse pages (its connections carry a CLIENT SETNAME);
* K4: each big key's first page: how many commands, and the server time of each one
  (measured with the slowlog threshold at 0 for just those views).

Run: ``.venv/bin/python benchmarks/inspector_scale.py [--keys 10000000] [--members 1000000]``.
"""

from __future__ import annotations

import argparse
import base64
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

import django  # noqa: E402

django.setup()

from django.contrib.auth.models import User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.test import Client, override_settings  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402

from tests.inspector.conftest import RECORDER, RecordingConnection  # noqa: E402
from tests.inspector.test_values import FILL  # noqa: E402
from tests.servers import RedisServer  # noqa: E402

CLIENT_NAME = "rediskit-inspector-bench"
BASE = "/admin/django_rediskit/rediskey/"


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def ref(key: bytes) -> str:
    return base64.urlsafe_b64encode(key).rstrip(b"=").decode()


def timed(client: Client, path: str, params: dict[str, str]) -> tuple[Any, float]:
    started = time.perf_counter()
    response = client.get(path, params)
    elapsed = (time.perf_counter() - started) * 1000
    assert response.status_code == 200, (path, params, response.status_code)
    return response, elapsed


def ours(entries: list[Any]) -> list[Any]:
    return [entry for entry in entries if entry[5] == CLIENT_NAME.encode()]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--keys", type=int, default=10_000_000)
    parser.add_argument("--members", type=int, default=1_000_000)
    args = parser.parse_args()

    server = RedisServer(["--slowlog-log-slower-than", "5000", "--slowlog-max-len", "100000"])
    server.start()
    raw = server.client(socket_timeout=None)
    try:
        started = time.perf_counter()
        raw.execute_command("DEBUG", "POPULATE", args.keys, "app:pop")
        for kind, script in FILL.items():
            raw.eval(script, 1, f"app:big:{kind}", args.members)
        raw.set("app:big:string", b"x" * (8 * 1024 * 1024))
        print(f"seeded {raw.dbsize():,} keys in {time.perf_counter() - started:.1f} s")
        raw.slowlog_reset()

        setup_test_environment()
        call_command("migrate", verbosity=0)
        from django.conf import settings

        caches = dict(settings.CACHES)
        caches["bench"] = {
            "BACKEND": "django_rediskit.cache.RedisCache",
            "LOCATION": server.url,
            "KEY_PREFIX": "app",
            "OPTIONS": {
                "CONNECTION_POOL_KWARGS": {
                    "connection_class": RecordingConnection,
                    "client_name": CLIENT_NAME,
                }
            },
        }
        inspector = {"READ_ONLY": True, "ALIASES": ["bench"]}
        with override_settings(CACHES=caches, REDISKIT={"INSPECTOR": inspector}):
            run(raw, args)
    finally:
        raw.close()
        server.close()


def run(raw: Any, args: argparse.Namespace) -> None:
    client = Client()
    client.force_login(User.objects.create_superuser("bench", password="x"))
    timed(client, BASE, {"alias": "bench"})  # connect, load the script

    # K1: first page, then 100 pages following the cursor.
    RECORDER.reset()
    response, first_ms = timed(client, BASE, {"alias": "bench"})
    scans, trips = RECORDER.count("SCAN"), RECORDER.round_trips
    rows = len(response.context["rows"])
    first_samples = []
    for _ in range(20):
        _, elapsed = timed(client, BASE, {"alias": "bench"})
        first_samples.append(elapsed)
    rss_before = rss_kib()
    cursor = ""
    samples = []
    for _ in range(100):
        response, elapsed = timed(client, BASE, {"alias": "bench", "cursor": cursor})
        samples.append(elapsed)
        cursor = response.context["page"].next_cursor or ""
    rss_after = rss_kib()
    RECORDER.reset()
    _, sparse_ms = timed(client, BASE, {"alias": "bench", "q": "app:nomatch:*"})
    sparse_scans = RECORDER.count("SCAN")
    sparse = [timed(client, BASE, {"alias": "bench", "q": "app:nomatch:*"})[1] for _ in range(20)]

    print(f"\nK1 browse (DBSIZE {raw.dbsize():,})")
    print(
        f"  first page: {rows} rows, {scans} SCAN calls, {trips} round trips "
        f"(= SCANs + 1 pipeline), {first_ms:.1f} ms"
    )
    print(
        f"  first page x20: p50 {statistics.median(first_samples):.1f} ms, "
        f"max {max(first_samples):.1f} ms"
    )
    q = statistics.quantiles(samples, n=20)
    print(
        f"  100 next pages: p50 {statistics.median(samples):.1f} ms, p95 {q[18]:.1f} ms, "
        f"max {max(samples):.1f} ms"
    )
    print(
        f"  sparse filter (no match): {sparse_scans} SCAN calls, p50 "
        f"{statistics.median(sparse):.1f} ms, max {max([*sparse, sparse_ms]):.1f} ms"
    )
    print(f"  RSS over 100 pages: {rss_before} -> {rss_after} KiB (+{rss_after - rss_before} KiB)")

    # K4: each big key's first page, every command's server time (slowlog threshold 0).
    print("\nK4 big keys, first page")
    raw.config_set("slowlog-log-slower-than", 0)
    for kind in ("hash", "set", "zset", "list", "string"):
        key = f"app:big:{kind}".encode()
        raw.slowlog_reset()
        RECORDER.reset()
        _, elapsed = timed(client, BASE + "key/", {"alias": "bench", "k": ref(key)})
        entries = ours(raw.execute_command("SLOWLOG", "GET", 100))
        durations = [(entry[3][0].decode(), int(entry[2])) for entry in entries]
        names = [command[0].decode() for command in RECORDER.commands]
        print(
            f"  {kind:<6} {len(names)} commands {names} server µs {durations} "
            f"request {elapsed:.1f} ms"
        )
    raw.config_set("slowlog-log-slower-than", 5000)

    # K2: 100 page views of big keys + 100 browse pages; count slow entries from our client.
    raw.slowlog_reset()
    kinds = ("hash", "set", "zset", "list", "string")
    for index in range(100):
        key = f"app:big:{kinds[index % len(kinds)]}".encode()
        response, _ = timed(client, BASE + "key/", {"alias": "bench", "k": ref(key)})
        if response.context.get("next_value_url"):
            client.get(response.context["next_value_url"])
    cursor = ""
    for _ in range(100):
        response, _ = timed(client, BASE, {"alias": "bench", "cursor": cursor})
        cursor = response.context["page"].next_cursor or ""
    slow = ours(raw.execute_command("SLOWLOG", "GET", 1000))
    print(f"\nK2 SLOWLOG entries > 5 ms from the inspector over 300 views: {len(slow)}")
    for entry in slow[:10]:
        print(f"   {entry[2]} µs {entry[3][:4]}")


if __name__ == "__main__":
    main()
