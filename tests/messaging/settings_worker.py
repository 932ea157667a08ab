"""tests.settings plus one queue for ``rediskit_worker`` (named by ``WORKER_QUEUE``)."""

from __future__ import annotations

import os

from tests.settings import *  # noqa: F403

REDISKIT = {
    "MESSAGING": {
        "QUEUES": {
            os.environ.get("WORKER_QUEUE", "jobs"): {
                "HANDLER": "tests.messaging.handlers.record_slowly",
                "VISIBILITY_TIMEOUT": 30,
                "HANDLER_DEADLINE": 5,
            }
        },
        "HEARTBEAT_INTERVAL": 0.5,
        # the write-behind queue of the crash test: reclaimed 2 s after a SIGKILL
        "WRITE_BEHIND_QUEUE": os.environ.get("WB_QUEUE", "write-behind"),
        "VISIBILITY_TIMEOUT": 2.0,
        "HANDLER_DEADLINE": 1.0,
        "RETRY_BACKOFF": 0.1,
    }
}
