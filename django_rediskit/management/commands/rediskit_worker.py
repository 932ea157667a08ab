"""``manage.py rediskit_worker [--queue Q] [--concurrency N]``: consume the kit's queues.

Runs the queues of ``REDISKIT["MESSAGING"]["QUEUES"]`` (and the write-behind queue) until
SIGTERM / SIGINT, which stops gracefully: the message being handled finishes and is
acknowledged, fetched but unstarted messages go back to the group, nothing unfinished is
acknowledged. ``--list`` prints the live workers' heartbeats and exits.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_rediskit.messaging.worker import Worker, live_workers, select_queues


class Command(BaseCommand):
    help = "Consume django-rediskit queues (graceful stop on SIGTERM)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--queue", action="append", default=[], help="a queue to run (repeatable; default all)"
        )
        parser.add_argument("--concurrency", type=int, default=1, help="consumer threads per queue")
        parser.add_argument("--batch", type=int, default=None, help="messages per read")
        parser.add_argument("--block-ms", type=int, default=None, help="blocking read time")
        parser.add_argument("--list", action="store_true", help="print live workers and exit")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["list"]:
            for beat in live_workers():
                self.stdout.write(json.dumps(beat, sort_keys=True))
            return
        if options["concurrency"] < 1:
            raise CommandError("--concurrency must be >= 1")
        try:
            queues = select_queues(options["queue"])
        except (ImproperlyConfigured, ImportError, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        worker = Worker(
            queues,
            concurrency=options["concurrency"],
            batch=options["batch"],
            block_ms=options["block_ms"],
        )
        worker.install_signal_handlers()
        names = ", ".join(queue.name for queue, _ in queues)
        self.stdout.write(
            f"rediskit_worker {worker.worker_id}: {names} x{worker.concurrency}", ending="\n"
        )
        self.stdout.flush()
        status = worker.run()
        self.stdout.write(f"rediskit_worker {worker.worker_id}: stopped, handled {worker.handled}")
        if status:
            sys.exit(status)
