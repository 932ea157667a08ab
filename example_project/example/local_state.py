"""Per-checkout secrets of the demo, kept in an ignored folder (``example_project/.demo/``).

A committed ``SECRET_KEY`` would let anyone who can write to the demo's Redis forge signed
pickles (code execution), so each checkout gets its own on first run. ``DEMO_STATE_DIR`` moves
the folder (tests use a temporary one).
"""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path

EXAMPLE_PROJECT = Path(__file__).resolve().parent.parent


def state_dir() -> Path:
    return Path(os.environ.get("DEMO_STATE_DIR") or EXAMPLE_PROJECT / ".demo")


def read_or_create(name: str, nbytes: int = 32) -> str:
    """The content of ``<state dir>/<name>``, created (mode 0600) with a random token if missing.

    ``O_EXCL`` makes the first writer win when two processes start at once: both then read the
    same value, never two different ones.
    """
    folder = state_dir()
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = folder / name
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        for _ in range(50):  # the first writer may not have written yet
            value = path.read_text().strip()
            if value:
                return value
            time.sleep(0.02)
        raise SystemExit(f"{path} is empty: delete it and run again.") from None
    with os.fdopen(fd, "w") as handle:
        value = secrets.token_urlsafe(nbytes)
        handle.write(value + "\n")
    return value


def secret_key() -> str:
    """``SECRET_KEY`` from the environment, else this checkout's own random one."""
    return os.environ.get("SECRET_KEY") or read_or_create("secret_key", 50)
