"""``manage.py rediskit_invalidate --tag T [--tag T2] [--pattern P] [--dry-run]``.

Tags are dropped in one round trip whatever the number of entries they carry. A pattern is a
glob over cache keys (as in ``cache.delete_pattern``), matched with SCAN in bounded batches and
deleted with UNLINK, with a progress bar on stderr; ``--dry-run`` only counts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_rediskit.cache.decorators import backend_for

if TYPE_CHECKING:
    from django_rediskit.cache.backend import RedisCache

BAR_WIDTH = 30


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
        total = max(sum(int(node.dbsize()) for node in topology.primaries()), 1)
        count = backend.scan_count
        show = not options["no_progress"]
        scanned = matched = deleted = 0
        batch: list[bytes | str] = []
        for scanned, key in enumerate(topology.scan_iter(match, count, write=True), start=1):
            matched += 1
            if not options["dry_run"]:
                batch.append(key)
                if len(batch) >= backend.delete_batch_size:
                    deleted += topology.unlink(batch)
                    batch.clear()
            if show and matched % count == 0:
                self._progress(min(scanned / total, 0.99), matched)
        if batch:
            deleted += topology.unlink(batch)
        if show:
            self._progress(1.0, matched)
            self.stderr.write("")
        if options["dry_run"]:
            self.stdout.write(f"Dry run: {matched} key(s) match {pattern!r}.")
        else:
            self.stdout.write(self.style.SUCCESS(f"Deleted {deleted} key(s) matching {pattern!r}."))

    def _progress(self, fraction: float, matched: int) -> None:
        filled = int(fraction * BAR_WIDTH)
        bar = "#" * filled + "." * (BAR_WIDTH - filled)
        self.stderr.write(f"\r[{bar}] {fraction:4.0%}  {matched} matched", ending="")
        self.stderr.flush()
