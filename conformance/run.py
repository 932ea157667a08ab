"""Run Django's and DRF's own test suites against django-rediskit's classes.

    python conformance/run.py                     # the whole plan (what `make conformance` runs)
    python conformance/run.py --django 5.2 --suite cache --topology standalone

Sources come from the published source distributions (``pip download --no-binary :all:``),
cached with their unpacked trees and the Django 6 virtualenv under ``.conformance/`` (ignored
by git) so a rerun only runs tests. Each topology gets a private server group from
``tests/servers.py``; every suite writes per-test outcomes to JSON (``rediskit_conformance``),
and this script prints one table and exits non-zero when a test that applies failed, erred or
skipped itself without being listed in ``rediskit_conformance/skips.py``.
"""

from __future__ import annotations

import argparse
import functools
import glob
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CACHE_DIR = REPO / ".conformance"
sys.path.insert(0, str(REPO))

from tests import servers  # noqa: E402  (the repo's private-server helpers)

# ---- the pins: the one place the upstream versions are named ---------------------------------
DJANGO = {"6.1": "6.1.3", "5.2": "5.2.19"}  # newest 6.x, and the 5.2 LTS
DRF = "3.18.3"
#: DRF's tests/conftest.py imports it; not a dependency of ours
DRF_TEST_REQUIREMENTS = ["dj-database-url"]
#: where each Django line runs: the repo's own .venv (Python 3.11) or a venv of its own
VENVS = {"5.2": REPO / ".venv", "6.1": REPO / ".venv-conformance-django61"}
VENV_PYTHON = {"5.2": None, "6.1": "3.12"}  # None: the repo's .venv, made by `make`

#: (Django line, topology, suites): what a run without arguments does
PLAN = [
    ("6.1", "standalone", ["cache", "sessions", "drf"]),
    ("5.2", "standalone", ["cache", "sessions"]),
    # every suite on the other topologies too: a few seconds each once the group is up
    ("6.1", "cluster", ["cache", "sessions", "drf"]),
    ("6.1", "sentinel", ["cache", "sessions", "drf"]),
]
#: the fewest passes a suite may report (catches a binding that silently runs fewer tests)
MIN_PASSED = {
    ("cache", "6.1"): 59,
    ("sessions", "6.1"): 76,
    ("drf", "6.1"): 29,
    ("cache", "5.2"): 51,
    ("sessions", "5.2"): 76,
    ("drf", "5.2"): 29,
}
#: failures printed per suite (all of them are in .conformance/logs/)
LISTED_FAILURES = 20
SUITE_NAMES = {
    "cache": "Django cache",
    "sessions": "Django sessions",
    "drf": "DRF throttling",
}


@dataclass
class Outcome:
    suite: str
    line: str  # the Django line the suite ran on
    topology: str
    tests: dict[str, dict[str, str]] = field(default_factory=dict)
    crash: str = ""  # the process failed without writing results
    returncode: int = 0
    seconds: float = 0.0

    def count(self, *kinds: str) -> int:
        return sum(1 for t in self.tests.values() if t["outcome"] in kinds)

    @property
    def version(self) -> str:
        django = f"Django {DJANGO[self.line]}"
        return f"DRF {DRF} on {django}" if self.suite == "drf" else django

    @property
    def unlisted_skips(self) -> list[str]:
        return [
            test_id
            for test_id, t in self.tests.items()
            if t["outcome"] == "skipped" and not t["detail"].startswith("[listed]")
        ]

    @property
    def problems(self) -> list[str]:
        found = []
        if self.crash:
            found.append(self.crash)
        if self.returncode and not self.crash and not self.count("failed", "error"):
            found.append(f"the test process exited {self.returncode} with no failing test")
        if self.count("failed", "error"):
            found.append(f"{self.count('failed', 'error')} failed or erred")
        if self.unlisted_skips:
            found.append(f"{len(self.unlisted_skips)} skipped without a listed reason")
        floor = MIN_PASSED.get((self.suite, self.line), 1)
        if not self.crash and self.count("passed") < floor:
            found.append(f"{self.count('passed')} passed, fewer than the {floor} expected")
        return found


# ---- sources and environments ------------------------------------------------------------------
def python312() -> str:
    """A Python 3.12 (Django 6 needs it): pyenv's 3.12.x, else a working ``python3.12``."""
    root = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    if shutil.which("pyenv"):
        root = subprocess.run(
            ["pyenv", "root"], capture_output=True, text=True, check=True
        ).stdout.strip()
    candidates = sorted(glob.glob(f"{root}/versions/3.12.*/bin/python"))
    found = shutil.which("python3.12")
    if found:
        candidates.append(found)  # last: a pyenv shim may name a version that is not active
    for candidate in candidates:
        probe = subprocess.run([candidate, "-c", "import sys; print(sys.version_info >= (3, 12))"],
                               capture_output=True, text=True)  # fmt: skip
        if probe.stdout.strip() == "True":
            return candidate
    sys.exit("conformance: Django 6 needs Python 3.12 (pyenv's 3.12.x or python3.12 on PATH)")


def source_tree(project: str, version: str) -> Path:
    """The unpacked sdist of ``project==version``, downloaded once."""
    dist = "django" if project == "django" else "djangorestframework"
    tree = CACHE_DIR / "src" / f"{dist.lower()}-{version}"
    if (tree / ".unpacked").exists():
        return tree
    downloads = CACHE_DIR / "dl"
    downloads.mkdir(parents=True, exist_ok=True)
    archives = glob.glob(str(downloads / f"{dist}-{version}.tar.gz"))
    if not archives:
        # Django 6's sdist declares Python >= 3.12: pip refuses it from an older interpreter
        downloader = python312() if (dist, version[0]) == ("django", "6") else sys.executable
        subprocess.run(
            [downloader, "-m", "pip", "download", "-qq", "--no-binary", ":all:",
             "--no-deps", f"{dist}=={version}", "-d", str(downloads)],
            check=True,
        )  # fmt: skip
        archives = glob.glob(str(downloads / f"{dist}-{version}.tar.gz"))
    shutil.rmtree(tree, ignore_errors=True)
    with tarfile.open(archives[0]) as archive:
        archive.extractall(tree.parent, filter="data")
    (tree / ".unpacked").touch()
    return tree


#: prints what a venv has installed, to compare with the pins before every run (~0.3 s)
PROBE = """
import importlib.metadata as m, json, pathlib
import django_rediskit
names = ("django", "djangorestframework", "dj-database-url", "pytest-django")
have = {}
for name in names:
    try:
        have[name] = m.version(name)
    except m.PackageNotFoundError:
        have[name] = None
have["rediskit"] = str(pathlib.Path(django_rediskit.__file__).resolve().parent.parent)
print(json.dumps(have))
"""


@functools.cache
def venv_python(line: str) -> str:
    """The interpreter for Django ``line``, with the pinned Django and DRF installed (checked on
    every run, installed only when something differs) and this checkout's django_rediskit."""
    venv = VENVS[line]
    python = venv / "bin" / "python"
    pins = {"django": DJANGO[line], "djangorestframework": DRF}
    own = VENV_PYTHON[line] is not None
    if not python.exists():
        if not own:
            sys.exit(f"conformance: {venv} is missing: run `make .venv/.installed` first")
        subprocess.run([python312(), "-m", "venv", str(venv)], check=True)
    probe = subprocess.run([str(python), "-c", PROBE], capture_output=True, text=True)
    have = json.loads(probe.stdout) if probe.returncode == 0 else {}
    if (
        all(have.get(name) == version for name, version in pins.items())
        and all(have.get(name) for name in ("dj-database-url", "pytest-django"))
        and have.get("rediskit") == str(REPO)
    ):
        return str(python)
    editable = ["-e", f"{REPO}[dev]"] if own else []
    requirements = [f"{name}=={version}" for name, version in pins.items()]
    subprocess.run(
        [str(python), "-m", "pip", "install", "-qq", *editable, *requirements,
         *DRF_TEST_REQUIREMENTS],
        check=True,
    )  # fmt: skip
    return str(python)


# ---- servers -----------------------------------------------------------------------------------
def start_topology(name: str) -> servers.Topology:
    if name == "cluster":
        return servers.RedisCluster().start()
    if name == "sentinel":
        return servers.SentinelGroup().start()
    return servers.RedisServer().start()


# ---- suites ------------------------------------------------------------------------------------
SHIM = '"""Written by conformance/run.py: binds upstream tests to django-rediskit."""\n{}\n'


def run_django(suite: str, line: str, python: str, env: dict[str, str], log: Path) -> int:
    tree = source_tree("django", DJANGO[line]) / "tests"
    app, module, names = {
        "cache": ("cache", "cache_tests", "RediskitCacheTests"),
        "sessions": (
            "sessions_tests",
            "session_tests",
            "RediskitSessionTests, RediskitSessionMiddlewareTests, RediskitOwnMiddlewareTests",
        ),
    }[suite]
    shim = tree / app / "test_rediskit.py"
    shim.write_text(SHIM.format(f"from rediskit_conformance.{module} import {names}  # noqa"))
    command = [python, "runtests.py", "--settings=rediskit_conformance.settings",
               "--parallel=1", "--noinput", "-v", "2", f"{app}.test_rediskit"]  # fmt: skip
    return _run(command, tree, env, log)


DRF_IMPORT = (
    "from rest_framework.throttling import (\n"
    "    AnonRateThrottle, BaseThrottle, ScopedRateThrottle, SimpleRateThrottle,\n"
    "    UserRateThrottle\n"
    ")\n"
)
OUR_IMPORT = (
    "from rest_framework.throttling import BaseThrottle\n"
    "\n"
    "from django_rediskit.throttling.drf import (\n"
    "    AnonRateThrottle, ScopedRateThrottle, SimpleRateThrottle, UserRateThrottle\n"
    ")\n"
)


def run_drf(python: str, env: dict[str, str], log: Path) -> int:
    tree = source_tree("drf", DRF)
    original = (tree / "tests" / "test_throttling.py").read_text()
    if DRF_IMPORT not in original:
        raise RuntimeError("DRF's test_throttling.py import block changed: update run.py")
    (tree / "tests" / "test_rediskit_throttling.py").write_text(
        original.replace(DRF_IMPORT, OUR_IMPORT)
    )
    command = [python, "-m", "pytest", "-p", "rediskit_conformance.drf_plugin",
               "-p", "no:cacheprovider", "tests/test_rediskit_throttling.py"]  # fmt: skip
    return _run(command, tree, env, log)


def _run(command: list[str], cwd: Path, env: dict[str, str], log: Path) -> int:
    with log.open("w") as handle:
        handle.write(f"$ cd {cwd} && {' '.join(command)}\n")
        handle.flush()
        return subprocess.run(
            command, cwd=cwd, env=env, stdout=handle, stderr=subprocess.STDOUT
        ).returncode


def run_suite(suite: str, line: str, topology: str, url: str) -> Outcome:
    outcome = Outcome(suite, line, topology)
    python = venv_python(line)
    logs = CACHE_DIR / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    stem = f"{suite}-django{DJANGO[line]}-{topology}"
    results, log = logs / f"{stem}.json", logs / f"{stem}.log"
    results.unlink(missing_ok=True)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]).rstrip(":"),
        "REDISKIT_CONFORMANCE_URL": url,
        "REDISKIT_CONFORMANCE_RESULTS": str(results),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    started = time.monotonic()
    if suite == "drf":
        outcome.returncode = run_drf(python, env, log)
    else:
        outcome.returncode = run_django(suite, line, python, env, log)
    outcome.seconds = time.monotonic() - started
    if results.exists():
        outcome.tests = json.loads(results.read_text())["tests"]
    else:
        outcome.crash = f"no results written; see {log.relative_to(REPO)}"
    return outcome


# ---- report ------------------------------------------------------------------------------------
def report(outcomes: list[Outcome]) -> int:
    print()
    header = ("suite", "version", "topology", "passed", "failed", "skipped", "errors", "time")
    rows = [
        (
            SUITE_NAMES[o.suite], o.version,
            o.topology, str(o.count("passed")), str(o.count("failed")),
            str(o.count("skipped")), str(o.count("error") + (1 if o.crash else 0)),
            f"{o.seconds:.0f}s",
        )
        for o in outcomes
    ]  # fmt: skip
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    print(line.format(*header))
    print(line.format(*("-" * w for w in widths)))
    for row in rows:
        print(line.format(*row))

    skipped: dict[str, str] = {}
    for o in outcomes:
        for test_id, t in o.tests.items():
            if t["outcome"] == "skipped":
                skipped[t.get("upstream") or test_id] = t["detail"].removeprefix("[listed] ")
    if skipped:
        print("\nskipped (rediskit_conformance/skips.py), each for a reason:")
        for name, reason in sorted(skipped.items()):
            print(f"  {name}: {reason}")

    failed = False
    for o in outcomes:
        if not o.problems:
            continue
        failed = True
        print(f"\nFAILED {SUITE_NAMES[o.suite]} ({o.version}) on {o.topology}: "
              f"{'; '.join(o.problems)}")  # fmt: skip
        broken = [(i, t) for i, t in sorted(o.tests.items()) if t["outcome"] in ("failed", "error")]
        for test_id, t in broken[:LISTED_FAILURES]:
            tail = [s for s in t["detail"].strip().splitlines() if s.strip()][-3:]
            print(f"  {t['outcome'].upper()} {t.get('upstream') or test_id}")
            for text in tail:
                print(f"      {text.strip()[:160]}")
        if len(broken) > LISTED_FAILURES:
            print(f"  ... and {len(broken) - LISTED_FAILURES} more: see .conformance/logs/")
        for test_id in o.unlisted_skips:
            t = o.tests[test_id]
            print(f"  UNLISTED SKIP {t.get('upstream') or test_id}: {t['detail']}")
    # the closing line counts every test that did not pass as it should: failures, errors,
    # unlisted skips, and a suite that crashed as one
    passed = sum(o.count("passed") for o in outcomes)
    bad = sum(
        o.count("failed", "error") + len(o.unlisted_skips) + (1 if o.crash else 0) for o in outcomes
    )
    print(f"\nconformance: {passed} passed, {bad} failed")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--django", choices=sorted(DJANGO), help="one Django line only")
    parser.add_argument("--topology", choices=["standalone", "cluster", "sentinel"])
    parser.add_argument("--suite", choices=sorted(SUITE_NAMES), action="append")
    args = parser.parse_args(argv)
    if args.django or args.topology or args.suite:
        plan = [(args.django or "6.1", args.topology or "standalone",
                 args.suite or ["cache", "sessions", "drf"])]  # fmt: skip
    else:
        plan = PLAN
    outcomes = []
    for line, topology, suites in plan:
        group = start_topology(topology)
        try:
            for suite in suites:
                group.flush()
                print(f"conformance: {SUITE_NAMES[suite]} on Django {DJANGO[line]}, "
                      f"{topology} ({group.url}) ...", flush=True)  # fmt: skip
                outcomes.append(run_suite(suite, line, topology, group.url))
        finally:
            group.close()
    return report(outcomes)


if __name__ == "__main__":
    sys.exit(main())
