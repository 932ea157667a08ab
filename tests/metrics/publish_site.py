"""Settings of a worker that publishes its totals for ``rediskit_info --watch``."""

from tests.settings import *  # noqa: F403

REDISKIT = {"METRICS": {"PUBLISH": 30}}
