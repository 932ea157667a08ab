"""Single-key cache operations before and after the connection/cache-layer redesign, one run.

Issue #11 asks that the redesign (topologies, the one failure policy, the cache split into a
facade, a command client and steps) keep the single-key operations' speed on a standalone server.
This runs the same operations through ``django_rediskit.cache.RedisCache`` of two trees — the
current checkout and an older commit checked out with ``git worktree`` — against one private
``redis-server``, in interleaved rounds (old, new, new, old...), each round in a fresh process
importing only its own tree, and reports ops/s per tree and the median of the per-round ratios.

``--stub`` sends every call to a stand-in client that answers at once with the server's own
replies, so the table shows the library's Python cost alone, which is what the redesign can
change; against the server that cost is a few percent of a loopback round trip and run-to-run
noise is as large.

Usage: ``python benchmarks/redesign.py [--before 2734c42] [--rounds 8] [--seconds 0.5] [--stub]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.servers import RedisServer  # noqa: E402

#: The tree the redesign started from: the last commit before ``connection/`` (issue #11).
BEFORE = "2734c42"
OPERATIONS = ("get (hit)", "get (miss)", "set 100 B", "get_many(100)", "incr", "delete")

#: Runs in a child process with one tree first on sys.path; prints ops/s per operation as JSON.
CHILD = r"""
import json, sys, time, uuid
sys.path.insert(0, sys.argv[1])
import django
from django.conf import settings
settings.configure(
    SECRET_KEY="bench", USE_TZ=True,
    CACHES={"default": {"BACKEND": "django_rediskit.cache.RedisCache", "LOCATION": sys.argv[2],
                        "KEY_PREFIX": "b-" + uuid.uuid4().hex[:6]}},
)
django.setup()
import django_rediskit
assert django_rediskit.__file__.startswith(sys.argv[1]), django_rediskit.__file__
from django.core.cache import cache
seconds = float(sys.argv[3])
cache.set("hit", "x" * 100, 600)
cache.set("n", 0, 600)
keys = [f"m{i}" for i in range(100)]
cache.set_many({key: i for i, key in enumerate(keys)}, 600)
client = None
if sys.argv[4] == "stub":
    # The library's own cost: every call goes to a stand-in client that answers at once with
    # what the server answered (django-redis's ``client=`` argument, which both trees take).
    redis = cache.client.get_client() if hasattr(cache.client, "get_client") else None
    redis = redis or cache.topology.client(False)
    hit = redis.get(cache.make_key("hit"))
    many = redis.mget([cache.make_key(key) for key in keys])

    class Stub:
        def get(self, *args, **kwargs): return hit if args[0].endswith(":hit") else None
        def mget(self, *args, **kwargs): return list(many)
        mget_nonatomic = None  # a plain client, not a cluster one
        def __getattr__(self, name): return lambda *args, **kwargs: 1

    client = Stub()
ops = {
    "get (hit)": lambda: cache.get("hit", client=client),
    "get (miss)": lambda: cache.get("absent", client=client),
    "set 100 B": lambda: cache.set("s", "y" * 100, 600, client=client),
    "get_many(100)": lambda: cache.get_many(keys, client=client),
    "incr": lambda: cache.incr("n", client=client),
    "delete": lambda: cache.delete("gone", client=client),
}
result = {}
for name, run in ops.items():
    for _ in range(50):
        run()
    calls, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        for _ in range(20):
            run()
        calls += 20
    result[name] = calls / elapsed
print(json.dumps(result))
"""


def measure(tree: Path, url: str, seconds: float, mode: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(tree), url, str(seconds), mode],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default=BEFORE, help="the older commit")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=0.5, help="per operation and round")
    parser.add_argument(
        "--stub",
        action="store_true",
        help="the library's own cost only: calls go to a client that answers at once",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        old = Path(scratch) / "before"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(old), args.before],
            check=True,
            capture_output=True,
        )
        server = RedisServer().start()
        try:
            runs: dict[str, list[dict[str, float]]] = {"before": [], "after": []}
            for number in range(args.rounds):
                order = [("before", old), ("after", ROOT)]
                for label, tree in order if number % 2 == 0 else reversed(order):
                    mode = "stub" if args.stub else "server"
                    runs[label].append(measure(tree, server.url, args.seconds, mode))
        finally:
            server.close()
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(old)],
                check=False,
                capture_output=True,
            )
    where = "a stand-in client (no I/O)" if args.stub else "one redis-server"
    print(f"{args.rounds} interleaved rounds, {args.seconds} s per operation, {where}")
    print(f"{'operation':<16}{'before ops/s':>14}{'after ops/s':>14}{'after/before':>14}")
    for name in OPERATIONS:
        before = statistics.median(run[name] for run in runs["before"])
        after = statistics.median(run[name] for run in runs["after"])
        ratios = [a[name] / b[name] for a, b in zip(runs["after"], runs["before"], strict=True)]
        print(f"{name:<16}{before:>14,.0f}{after:>14,.0f}{statistics.median(ratios):>14.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
