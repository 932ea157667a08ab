"""``manage.py rediskit_invalidate --tag T [--tag T2] [--pattern P] [--dry-run]``.

Tags are dropped in one round trip whatever the number of entries they carry. A pattern is a
glob over cache keys (as in ``cache.delete_pattern``), matched with SCAN in bounded batches and
deleted with UNLINK, with a progress bar on stderr when it is a terminal (``--no-progress``
turns it off); ``--dry-run`` only counts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_rediskit.cache.decorators import backend_for
from django_rediskit.management.progress import progress_bar

if TYPE_CHECKING:
    from django_rediskit.cache.backend import RedisCache


class Command(BaseCommand):
    help = "Invalidate cache tags, or delete cache keys matching a glob pattern."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tag", action="append", default=[], help="a tag (repeatable)")
        parser.add_argument("--pattern", help="glob over cache keys, e.g. 'product:*'")
        parser.add_argument("--cache", help="CACHES alias (default: REDISKIT['CACHE_ALIAS'])")
        parser.add_argument("--key-version", type=int, help="key version for --pattern")
        parser.add_argument(
            "--dry-run", action="store_true", help="count what would go, change nothing"
        )
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")

    def handle(self, *args: Any, **options: Any) -> None:
        tags: list[str] = options["tag"]
        pattern: str | None = options["pattern"]
        if not tags and pattern is None:
            raise CommandError("Give at least one --tag or a --pattern.")
        if pattern is not None and not pattern.strip():
            raise CommandError("--pattern must not be empty.")
        if any(not tag for tag in tags):
            raise CommandError("--tag must not be empty.")
        try:
            backend = backend_for(options["cache"])
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from exc
        if tags:
            self._tags(backend, tags, options["dry_run"])
        if pattern is not None:
            self._pattern(backend, pattern, options)

    def _tags(self, backend: RedisCache, tags: list[str], dry_run: bool) -> None:
        if dry_run:
            pipe = backend.topology.client(write=False).pipeline(transaction=False)
            for tag in tags:
                pipe.exists(backend.tag_key(tag))
            live = sum(int(found) for found in pipe.execute())
            self.stdout.write(f"Dry run: {live} of {len(tags)} tag(s) have a live version.")
            return
        dropped = backend.invalidate_tags(*tags)
        self.stdout.write(
            self.style.SUCCESS(
                f"Invalidated {len(tags)} tag(s) ({dropped} had a live version): "
                + ", ".join(repr(tag) for tag in tags)
            )
        )

    def _pattern(self, backend: RedisCache, pattern: str, options: dict[str, Any]) -> None:
        """SCAN every primary (one server, or each node of a cluster) and UNLINK in batches."""
        topology = backend.topology
        match = backend.make_pattern(pattern, version=options["key_version"])
        # The keyspace size bounds the matches: the bar's total until the scan ends.
        total = max(sum(int(node.dbsize()) for node in topology.primaries()), 1)
        count = backend.scan_count
        matched = deleted = 0
        batch: list[bytes | str] = []
        verb = "Counting" if options["dry_run"] else "Deleting"
        with progress_bar(
            self.stderr, f"{verb} {pattern}", total, disabled=options["no_progress"]
        ) as bar:
            for key in topology.scan_iter(match, count, write=True):
                matched += 1
                if not options["dry_run"]:
                    batch.append(key)
                    if len(batch) >= backend.delete_batch_size:
                        deleted += topology.unlink(batch)
                        batch.clear()
                if matched % count == 0:
                    bar.update(matched, total=max(total, matched), note=f"{deleted} deleted")
            if batch:
                deleted += topology.unlink(batch)
            bar.update(matched, total=matched, note=f"{deleted} deleted")
        if options["dry_run"]:
            self.stdout.write(f"Dry run: {matched} key(s) match {pattern!r}.")
        else:
            self.stdout.write(self.style.SUCCESS(f"Deleted {deleted} key(s) matching {pattern!r}."))
