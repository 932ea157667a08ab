"""Session engine benchmark: rediskit vs Django's cache engine on the same private Redis.

    python benchmarks/sessions_bench.py [--cycles 20000] [--sessions 10000]

Measures load+save cycles per second (anonymous, and authenticated with device tracking) and
the Redis memory per session (INFO used_memory delta). Django's engine runs on Django's own
``RedisCache`` backend, as a site switching to rediskit would have it. Starts its own
redis-server (nothing persisted) and never touches another server.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


#: A typical desktop client, as the middleware would record it.
BROWSER = (
    "203.0.113.9",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36",
)


def configure(url: str) -> None:
    import django
    from django.conf import settings

    settings.configure(
        SECRET_KEY="bench",
        INSTALLED_APPS=[
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "django.contrib.sessions",
            "django_rediskit",
        ],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
        CACHES={
            "default": {
                "BACKEND": "django_rediskit.cache.RedisCache",
                "LOCATION": url,
                "KEY_PREFIX": "rk",
            },
            "django": {
                "BACKEND": "django.core.cache.backends.redis.RedisCache",
                "LOCATION": url,
                "KEY_PREFIX": "dj",
            },
        },
        SESSION_CACHE_ALIAS="django",
        USE_TZ=True,
    )
    django.setup()


def cycles_per_second(store_cls: Any, data: dict[str, Any], cycles: int) -> float:
    """Create one session, then time ``cycles`` requests that load it, modify it, save it."""
    store = store_cls()
    store.update(data)
    store.save()
    key = store.session_key
    started = time.perf_counter()
    for i in range(cycles):
        session = store_cls(key)
        session["n"] = session.get("n", 0) + i
        session.save()
    return cycles / (time.perf_counter() - started)


def used_memory(client: Any) -> int:
    return int(client.info("memory")["used_memory"])


def memory_per_session(
    store_cls: Any,
    client: Any,
    data_for: Any,
    count: int,
    per_user: int,
    agent: tuple[str, str] | None = None,
) -> float:
    """used_memory delta per session; ``agent`` = (IP, User-Agent) as the middleware records
    them (the device list's IP / browser / OS), None for a session saved outside a request."""
    before = used_memory(client)
    for i in range(count):
        store = store_cls()
        store.update(data_for(i // per_user))
        if agent is not None and hasattr(store, "set_client"):
            store.set_client(*agent)
        store.save()
    return (used_memory(client) - before) / count


def index_script_cost(server: Any, client: Any) -> None:
    """Redis-side time of one activity write's index call (lua/session_user.lua), by how many
    sessions the user has: every call reads the user's whole hash to prune it."""
    from django_rediskit.lua import script
    from django_rediskit.sessions.index import index_args, session_backend, user_keys

    keys = user_keys(session_backend(), "bench-cost")
    for sessions in (1, 5, 50):
        server.flush()
        for i in range(sessions):
            argv = index_args(f"{i:032d}", 3_600_000, "A" * 22, 0, BROWSER)
            script("session_user")(keys=keys, args=argv, client=client)
        argv = index_args(f"{0:032d}", 3_600_000, "A" * 22, 0, BROWSER, existing_only=True)
        client.config_resetstat()
        for _ in range(2000):
            script("session_user")(keys=keys, args=argv, client=client)
        stats = client.info("commandstats")["cmdstat_evalsha"]
        print(f"index script, {sessions:2d} sessions/user: {stats['usec_per_call']:.1f} us/call")


def device_api(store_cls: Any, data_for: Any) -> None:
    """list_devices p50/p95 with 50 devices; revoke_all of 100 sessions."""
    from django.contrib.auth.models import User
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from django_rediskit.sessions import list_devices, revoke_all

    user = User.objects.create_user("bench")
    for _ in range(50):
        store = store_cls()
        store.update(data_for(user.pk))
        store.set_client("203.0.113.9", "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0")
        store.save()
    timings = []
    for _ in range(1000):
        started = time.perf_counter()
        assert len(list_devices(user)) == 50
        timings.append(time.perf_counter() - started)
    timings.sort()
    print(
        f"list_devices, 50 devices: p50 {timings[500] * 1000:.2f} ms"
        f"   p95 {timings[950] * 1000:.2f} ms"
    )
    for _ in range(50):
        store = store_cls()
        store.update(data_for(user.pk))
        store.save()
    started = time.perf_counter()
    ended = revoke_all(user)
    print(f"revoke_all, {ended} sessions: {(time.perf_counter() - started) * 1000:.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=20_000)
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--memory-only", action="store_true", help="skip the timing parts")
    options = parser.parse_args()

    from tests.servers import RedisServer

    server = RedisServer().start()
    try:
        configure(server.url)
        from django.contrib.sessions.backends.cache import SessionStore as DjangoStore

        from django_rediskit.sessions.backend import SessionStore as KitStore

        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "")
        from django.conf import settings

        settings.SESSION_ENGINE = "django_rediskit.sessions.backend"
        client = server.client()
        anonymous = {"cart": [1, 2, 3], "_csrftoken": "x" * 32}

        def authenticated(uid: int) -> dict[str, Any]:
            return {
                "_auth_user_id": str(uid),
                "_auth_user_backend": "django.contrib.auth.backends.ModelBackend",
                "_auth_user_hash": "f" * 64,
                "cart": [1, 2, 3],
            }

        results: dict[str, float] = {}
        timed = (
            ()
            if options.memory_only
            else (("anonymous", anonymous), ("authenticated", authenticated(1)))
        )
        for label, data in timed:
            cycles_per_second(KitStore, data, 500)  # warm up both (scripts, pools)
            cycles_per_second(DjangoStore, data, 500)
            kit = cycles_per_second(KitStore, data, options.cycles)
            dj = cycles_per_second(DjangoStore, data, options.cycles)
            results[label] = kit / dj
            print(
                f"{label:14s} rediskit {kit:9.0f} cycles/s   django cache {dj:9.0f} cycles/s"
                f"   ratio {kit / dj:.2f}x"
            )
        server.flush()
        for per_user, agent in ((1, None), (5, None), (1, BROWSER), (5, BROWSER)):
            dj_mem = memory_per_session(
                DjangoStore, client, authenticated, options.sessions, per_user
            )
            server.flush()
            kit_mem = memory_per_session(
                KitStore, client, authenticated, options.sessions, per_user, agent
            )
            server.flush()
            label = "IP + user agent" if agent else "no client"
            print(
                f"memory/authenticated session ({per_user} per user, {label}): rediskit"
                f" {kit_mem:.0f} B   django cache {dj_mem:.0f} B   delta {kit_mem - dj_mem:+.0f} B"
            )
        dj_anon = memory_per_session(DjangoStore, client, lambda _: anonymous, options.sessions, 1)
        server.flush()
        kit_anon = memory_per_session(KitStore, client, lambda _: anonymous, options.sessions, 1)
        print(
            f"memory/anonymous session: rediskit {kit_anon:.0f} B   django cache {dj_anon:.0f} B"
            f"   delta {kit_anon - dj_anon:+.0f} B"
        )
        server.flush()
        if not options.memory_only:
            index_script_cost(server, client)
            server.flush()
            device_api(KitStore, authenticated)
    finally:
        server.close()


if __name__ == "__main__":
    main()
