"""`make demo`: find a Redis, prepare the example shop and serve it on http://127.0.0.1:8000.

Redis is taken from REDIS_URL; else a server answering on 127.0.0.1:6379; else a private
redis-server started here (stopped when the demo stops); else the demo stops and says how to get
one.
"""

from __future__ import annotations

import atexit
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEMO_USER = "admin"


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _start_private_redis() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    directory = tempfile.mkdtemp(prefix="rediskit-demo-")
    process = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            directory,
        ],
        stdout=subprocess.DEVNULL,
    )
    atexit.register(process.terminate)
    for _ in range(100):
        if _answers("127.0.0.1", port):
            return f"redis://127.0.0.1:{port}/0"
        time.sleep(0.05)
    sys.exit("Started redis-server but it does not answer; see its log above.")


def find_redis() -> str:
    if os.environ.get("REDIS_URL"):
        return os.environ["REDIS_URL"]
    if _answers("127.0.0.1", 6379):
        return "redis://127.0.0.1:6379/0"
    if shutil.which("redis-server"):
        url = _start_private_redis()
        print(f"Started a private redis-server for the demo at {url}")
        return url
    sys.exit(
        "No Redis found. Start one (apt-get install redis-server, brew install redis, or "
        "docker run -p 6379:6379 redis:7) or set REDIS_URL=redis://host:port/db, then rerun "
        "`make demo`."
    )


def main() -> None:
    os.environ["REDIS_URL"] = find_redis()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example.settings")
    sys.path.insert(0, str(HERE))
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", interactive=False, verbosity=0)
    from django.contrib.auth import get_user_model

    password = secrets.token_urlsafe(12)
    user_model = get_user_model()
    user, _ = user_model.objects.get_or_create(
        username=DEMO_USER, defaults={"is_staff": True, "is_superuser": True}
    )
    user.set_password(password)
    user.save()
    call_command("seed_shop")
    print(f"\nRedis: {os.environ['REDIS_URL']}")
    print(f"Admin: http://127.0.0.1:8000/admin/  user {DEMO_USER!r}  password {password!r}\n")
    call_command("runserver", "127.0.0.1:8000", use_reloader=False)


if __name__ == "__main__":
    main()
