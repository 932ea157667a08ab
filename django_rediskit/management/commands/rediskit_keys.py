"""``manage.py rediskit_keys sample``: the inspector's bounded sampler, in a terminal.

It runs the same code as the admin stats page (``django_rediskit.inspector.sampler``) without the
request time budget, with a progress bar on stderr when it is a terminal (``--no-progress``
turns it off). Session ids and keys matching
``SENSITIVE_PATTERNS`` are printed hashed unless ``--show-sensitive`` is given.

It samples within the inspector's ``SCOPE``, as browsing and deleting do: by default the
alias's own keys (``<KEY_PREFIX>:*``), never another application's on a shared Redis, and
``--match`` is a glob inside that scope.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from redis.exceptions import RedisError

from django_rediskit import conf
from django_rediskit.inspector import config as inspector_config
from django_rediskit.inspector.access import BadKeyReference, Target, Viewer
from django_rediskit.inspector.display import escape_text
from django_rediskit.inspector.sampler import SampleReport, sample
from django_rediskit.management.progress import progress_bar


class Command(BaseCommand):
    help = "Sample the keyspace of a cache alias: namespaces, biggest keys, keys without TTL."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("action", choices=["sample"])
        parser.add_argument("--alias", default=None, help="CACHES alias (default: CACHE_ALIAS)")
        parser.add_argument("--limit", type=int, default=None, help="keys to sample")
        parser.add_argument(
            "--match", default="*", help="SCAN MATCH glob, inside the inspector's SCOPE"
        )
        parser.add_argument("--top", type=int, default=10, help="rows per top list")
        parser.add_argument("--show-sensitive", action="store_true", help="print session ids")
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")

    def handle(self, *args: Any, **options: Any) -> None:
        config = inspector_config.load()
        alias = options["alias"] or conf.get_setting("CACHE_ALIAS")
        limit = config.sample_limit if options["limit"] is None else options["limit"]
        if limit < 1 or options["top"] < 1:
            raise CommandError("--limit and --top must be positive")
        try:
            target = Target.for_alias(alias, config)
            match = target.pattern("", options["match"], literal=False)
        except BadKeyReference as exc:
            raise CommandError(str(exc)) from None
        viewer = Viewer(target, config, sensitive_ok=options["show_sensitive"])
        try:
            with progress_bar(
                self.stderr, "Sampling keys", limit, disabled=options["no_progress"]
            ) as bar:
                report = sample(
                    target.client,
                    target.nodes,
                    limit=limit,
                    match=match,
                    top=options["top"],
                    progress=lambda done, most: bar.update(min(done, most), total=most),
                )
                bar.update(report.sampled, total=limit if not report.finished else report.sampled)
        except RedisError as exc:
            raise CommandError(f"Redis is unavailable: {exc}") from None
        self._print(
            report, viewer, options["top"], f"{target.scope_text}; MATCH {escape_text(match)}"
        )

    def _print(self, report: SampleReport, viewer: Viewer, top: int, scope: str) -> None:
        out = self.stdout.write
        state = "whole scope" if report.finished else "sample limit reached"
        out(f"Scope: {scope}")
        out(
            f"Sampled {report.sampled} keys ({state}); {report.memory} bytes; "
            f"{report.without_ttl} without TTL."
        )
        out("\nNamespaces (keys, bytes):")
        for namespace, count, memory in report.top_namespaces(top):
            out(f"  {namespace:<40} {count:>10} {memory:>14}")
        out("\nTypes: " + ", ".join(f"{kind}={n}" for kind, n in report.types.most_common()))
        out("TTL: " + ", ".join(f"{label}={n}" for label, n in report.ttl_buckets.most_common()))
        out("\nBiggest by memory:")
        for size, key in report.biggest_by_memory:
            out(f"  {size:>12}  {viewer.display(key)}")
        out("\nLongest:")
        for length, key in report.biggest_by_length:
            out(f"  {length:>12}  {viewer.display(key)}")
        out("\nWithout TTL (examples):")
        for key in report.no_ttl_examples:
            out(f"  {viewer.display(key)}")
