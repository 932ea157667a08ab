"""Gunicorn hooks for Prometheus multiprocess mode.

In ``gunicorn.conf.py``::

    from django_rediskit.metrics.gunicorn import child_exit  # noqa: F401

so a dead worker's live gauges (the breaker state) leave the sum.
"""

from __future__ import annotations

from typing import Any


def child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]
