"""``manage.py rediskit_info``: how each rediskit cache is configured and how its Redis is doing.

It answers the first questions of an incident or a review in one place: which server (password
hidden), which key prefix and value format, whether this process's circuit breaker is open, and
whether the server is set up to behave as a cache (an eviction policy that can evict every entry).
The server is asked directly, past the circuit breaker, so the answer is the truth of now.
"""

from __future__ import annotations

import json
from typing import IO, Any, cast

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from django_rediskit.aliases import backend_for_alias, rediskit_aliases
from django_rediskit.connection import redact_url

#: INFO fields shown as they are, under the names used in the report.
INFO_FIELDS = {
    "version": "redis_version",
    "mode": "redis_mode",
    "uptime_seconds": "uptime_in_seconds",
    "used_memory": "used_memory",
    "used_memory_human": "used_memory_human",
    "maxmemory": "maxmemory",
    "maxmemory_human": "maxmemory_human",
    "maxmemory_policy": "maxmemory_policy",
    "connected_clients": "connected_clients",
    "ops_per_second": "instantaneous_ops_per_sec",
    "evicted_keys": "evicted_keys",
    "expired_keys": "expired_keys",
    "keyspace_hits": "keyspace_hits",
    "keyspace_misses": "keyspace_misses",
}


def eviction_warnings(maxmemory: int, policy: str) -> list[str]:
    """What in the server's memory settings works against a cache, in plain words."""
    found: list[str] = []
    if policy == "noeviction":
        found.append(
            "maxmemory-policy is noeviction: once Redis is full every cache write fails with an "
            "OOM error instead of evicting old entries; use allkeys-lru or allkeys-lfu for a cache."
        )
    elif policy.startswith("volatile-"):
        found.append(
            f"maxmemory-policy is {policy}: entries stored with timeout=None are never evicted, "
            "and once only they remain every write fails; use allkeys-lru or allkeys-lfu."
        )
    if maxmemory == 0:
        found.append(
            "maxmemory is 0 (no limit): the cache grows until the machine runs out of memory; "
            "set maxmemory so Redis evicts instead."
        )
    return found


def server_report(client: Any, nodes: list[Any] | None = None) -> dict[str, Any]:
    """INFO highlights and DBSIZE (summed over ``nodes``, every primary of a cluster, when
    given). Connection failures propagate: the caller reports them.

    A server that refuses INFO or DBSIZE (an ACL without those commands) still answered, so the
    refusal is reported next to whatever else could be read.
    """
    report: dict[str, Any] = {}
    try:
        info = client.info()
    except (RedisConnectionError, RedisTimeoutError):
        raise
    except RedisError as exc:
        report["info_error"] = str(exc)
    else:
        report.update({name: info.get(field) for name, field in INFO_FIELDS.items()})
        hits, misses = info.get("keyspace_hits", 0), info.get("keyspace_misses", 0)
        report["keyspace_hit_ratio"] = hits / (hits + misses) if hits + misses else None
        report["warnings"] = eviction_warnings(
            int(info.get("maxmemory", 0)), str(info.get("maxmemory_policy", ""))
        )
    try:
        report["dbsize"] = sum(int(node.dbsize()) for node in nodes or [client])
    except (RedisConnectionError, RedisTimeoutError):
        raise
    except RedisError as exc:
        report["dbsize_error"] = str(exc)
    return report


def alias_report(alias: str) -> dict[str, Any]:
    """Everything the command shows for one alias; ``error`` is set when Redis is unreachable."""
    backend = backend_for_alias(alias)
    location = settings.CACHES[alias].get("LOCATION", "")
    urls = [location] if isinstance(location, str) else list(location)
    codec = backend.client.codec
    breaker = backend.breaker
    report: dict[str, Any] = {
        "alias": alias,
        "urls": [redact_url(url.strip()) for url in urls],
        "topology": backend.topology.kind,
        "key_prefix": backend.key_prefix,
        "version": backend.version,
        "serializer": codec.serializer.name,
        "compressor": codec.compressor.name if codec.compressor is not None else None,
        "compress_min_length": codec.compress_min_length,
        "signed": codec.signer is not None,
        "breaker": {
            "state": "open" if breaker.is_open else "closed",
            "failure_threshold": breaker.failure_threshold,
            "recovery_time": breaker.recovery_time,
        },
        "process_stats": backend.stats.as_dict(),
        "server": None,
        "error": None,
    }
    try:
        topology = backend.topology
        report["server"] = server_report(topology.client(write=True), topology.primaries())
    except RedisError as exc:
        report["error"] = f"Redis unreachable at {report['urls'][0]}: {type(exc).__name__}: {exc}"
    return report


def _percent(ratio: float | None) -> str:
    return "n/a" if ratio is None else f"{ratio * 100:.1f}%"


def render(report: dict[str, Any]) -> list[str]:
    """The human-readable lines for one alias (warnings are returned by ``warnings_of``)."""
    stats = report["process_stats"]
    breaker = report["breaker"]
    codec = [report["serializer"], "signed" if report["signed"] else "unsigned"]
    if report["compressor"]:
        codec.append(f"{report['compressor']} from {report['compress_min_length']} B")
    else:
        codec.append("no compression")
    lines = [
        f"CACHES[{report['alias']!r}]",
        f"  url            {', '.join(report['urls'])}",
        f"  key prefix     {report['key_prefix']!r} (version {report['version']})",
        f"  values         {', '.join(codec)}",
        f"  breaker        {breaker['state']} (opens after {breaker['failure_threshold']} "
        f"connection failures, for {breaker['recovery_time']:g} s)",
        f"  this process   {stats['hits']} hits, {stats['misses']} misses, {stats['errors']} "
        f"errors, hit ratio {_percent(stats['hit_ratio'])}",
    ]
    server = report["server"]
    if server is None:
        return lines
    if "info_error" in server:
        lines.append(f"  server         INFO refused: {server['info_error']}")
    else:
        limit = server["maxmemory_human"] if server["maxmemory"] else "no limit"
        lines += [
            f"  server         Redis {server['version']} ({server['mode']}), "
            f"up {server['uptime_seconds']} s",
            f"  memory         {server['used_memory_human']} used, maxmemory {limit}, "
            f"policy {server['maxmemory_policy']}",
            f"  keyspace       {server['keyspace_hits']} hits, {server['keyspace_misses']} misses "
            f"({_percent(server['keyspace_hit_ratio'])}), {server['evicted_keys']} evicted, "
            f"{server['expired_keys']} expired",
            f"  load           {server['connected_clients']} clients connected, "
            f"{server['ops_per_second']} ops/s",
        ]
    if "dbsize" in server:
        lines.append(f"  dbsize         {server['dbsize']} keys in this database")
    else:
        lines.append(f"  dbsize         refused: {server['dbsize_error']}")
    return lines


class Command(BaseCommand):
    help = (
        "Show each django-rediskit cache: redacted URL, key prefix, value format, circuit "
        "breaker, this process's hit/miss/error counters and the Redis server's health; "
        "--watch for a live view summed over every publishing process."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--alias",
            action="append",
            dest="aliases",
            metavar="ALIAS",
            help="CACHES alias to report (repeatable); default: every alias using our backend.",
        )
        parser.add_argument(
            "--json", action="store_true", dest="as_json", help="Print one JSON document."
        )
        parser.add_argument(
            "--watch",
            action="store_true",
            help="A live view (needs rich): hit ratio, ops/s, memory, keys per namespace, "
            "throttle rejections, breaker state, summed over every publishing process.",
        )
        parser.add_argument(
            "--interval", type=float, default=2.0, help="Seconds between two refreshes."
        )
        parser.add_argument(
            "--iterations", type=int, default=0, help="Refreshes before exiting (0: until ^C)."
        )

    def handle(self, *args: Any, aliases: list[str] | None, as_json: bool, **options: Any) -> None:
        if not aliases:
            aliases = rediskit_aliases()
            if not aliases:
                raise CommandError(
                    "No CACHES alias uses django_rediskit.cache.RedisCache; nothing to report."
                )
        if options.get("watch"):
            self._watch(aliases, options["interval"], options["iterations"])
            return
        try:
            reports = [alias_report(alias) for alias in aliases]
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from exc
        if as_json:
            self.stdout.write(json.dumps({"aliases": reports}, indent=2, sort_keys=True))
        else:
            self._write_text(reports)
        failed = [report["error"] for report in reports if report["error"]]
        if failed:
            raise CommandError("; ".join(failed))

    def _watch(self, aliases: list[str], interval: float, iterations: int) -> None:
        if interval <= 0 or iterations < 0:
            raise CommandError("--interval must be > 0 and --iterations >= 0.")
        try:
            from rich.console import Console
        except ImportError:
            raise CommandError("--watch needs rich: pip install 'django-rediskit[watch]'") from None
        from django_rediskit.metrics.watch import watch

        try:
            watch(aliases, Console(file=cast("IO[str]", self.stdout)), interval, iterations)
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from exc

    def _write_text(self, reports: list[dict[str, Any]]) -> None:
        for number, report in enumerate(reports):
            if number:
                self.stdout.write("")
            for line in render(report):
                self.stdout.write(line)
            if report["error"]:
                self.stdout.write(self.style.ERROR(f"  ERROR: {report['error']}"))
            for warning in (report["server"] or {}).get("warnings", []):
                self.stdout.write(self.style.WARNING(f"  WARNING: {warning}"))
