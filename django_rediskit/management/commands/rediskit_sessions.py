"""``manage.py rediskit_sessions list|revoke|stats``: the device index from the shell.

Session keys are never printed; devices are named by their opaque ids. ``stats`` scans for up
to ``--budget`` seconds, with a progress bar (of that budget) on stderr when it is a terminal
(``--no-progress`` turns it off).
"""

from __future__ import annotations

import time
from argparse import ArgumentParser
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from django_rediskit.management.progress import progress_bar
from django_rediskit.patterns import glob_escape
from django_rediskit.sessions import devices
from django_rediskit.sessions.index import OUTAGES, redis_io, session_backend

SCAN_COUNT = 500


class Command(BaseCommand):
    help = "List, revoke and count sessions tracked by the django_rediskit session engine."

    def add_arguments(self, parser: ArgumentParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        listing = sub.add_parser("list", help="A user's devices.")
        listing.add_argument("--user", required=True, help="Username or primary key.")
        revoke = sub.add_parser("revoke", help="End one device (--device) or all of a user's.")
        revoke.add_argument("--user", required=True, help="Username or primary key.")
        revoke.add_argument("--device", help="Device id; omit to revoke every session.")
        stats = sub.add_parser("stats", help="Count users and devices (bounded SCAN).")
        stats.add_argument("--budget", type=float, default=5.0, help="Seconds of scanning.")
        stats.add_argument("--no-progress", action="store_true", help="No progress bar.")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            if options["action"] == "stats":
                self._stats(options["budget"], options["no_progress"])
                return
            user = self._user(options["user"])
            if options["action"] == "list":
                self._list(user)
            elif options.get("device"):
                if not devices.revoke(user, options["device"], reason="admin"):
                    raise CommandError("That user has no such device.")
                self.stdout.write("Revoked 1 device.")
            else:
                count = devices.revoke_all(user, reason="admin")
                self.stdout.write(f"Revoked {count} sessions.")
        except OUTAGES as exc:
            raise CommandError(f"Redis is unreachable: {type(exc).__name__}") from exc

    def _user(self, ident: str) -> Any:
        model = get_user_model()
        found = model._default_manager.filter(**{model.USERNAME_FIELD: ident}).first()
        if found is None and ident.isdigit():
            found = model._default_manager.filter(pk=int(ident)).first()
        if found is None:
            raise CommandError(f"No user {ident!r}.")
        return found

    def _list(self, user: Any) -> None:
        found = devices.list_devices(user)
        for device in found:
            self.stdout.write(
                f"{device.device_id}  {device.browser} on {device.os}  ip={device.ip or '-'}  "
                f"created={device.created_at:%Y-%m-%d %H:%M}  "
                f"last={device.last_activity:%Y-%m-%d %H:%M}  "
                f"expires={device.expires_at:%Y-%m-%d %H:%M}"
            )
        self.stdout.write(f"{len(found)} device(s).")

    def _stats(self, budget: float, no_progress: bool) -> None:
        if not budget > 0:
            raise CommandError("--budget must be a positive number of seconds.")
        backend = session_backend()
        started = time.monotonic()
        deadline = started + budget
        users = sessions = 0
        complete = True
        with (
            redis_io(backend) as client,
            progress_bar(self.stderr, "Counting sessions", 100, disabled=no_progress) as bar,
        ):
            pattern = f"{glob_escape(backend.feature_key('users'))}:*:m"
            for key in client.scan_iter(match=pattern, count=SCAN_COUNT):
                users += 1
                # One field per session, plus a "#..." client field (lua/session_user.lua).
                fields: Any = client.hkeys(key)  # bytes: the client does not decode
                sessions += sum(1 for field in fields if not field.startswith(b"#"))
                now = time.monotonic()
                if users % 100 == 0:  # the bar shows the share of the time budget spent
                    spent = min(99.0, 100 * (now - started) / budget)
                    bar.update(spent, note=f"{users} users, {sessions} sessions")
                if now > deadline:
                    complete = False
                    break
            bar.update(100, note=f"{users} users, {sessions} sessions")
        note = "" if complete else " (partial: time budget reached)"
        self.stdout.write(f"users with sessions: {users}{note}")
        self.stdout.write(f"indexed authenticated sessions: {sessions}{note}")
