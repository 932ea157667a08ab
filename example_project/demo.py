"""`make demo`: prepare the example shop and serve it on http://127.0.0.1:8000 (or DEMO_PORT).

In this order, so that a failed start changes nothing:

1. The HTTP port is claimed first (``DEMO_PORT``, default 8000). If it is busy (another
   ``make demo``?) the demo stops right there: no Redis started, no password touched.
2. Redis: ``REDIS_URL`` if given; otherwise a private ``redis-server`` started here on a free
   port (``REDIS_SERVER_BIN`` names another binary, e.g. valkey-server) and stopped with the
   demo. The demo never talks to a server it was not told about
   (a Redis already on 127.0.0.1:6379 holds somebody else's data).
3. A per-checkout ``SECRET_KEY`` and admin password, generated on first run into the ignored
   ``example_project/.demo/`` (``SECRET_KEY`` in the environment wins). The password is the
   same on every run and printed every time.

``--server gunicorn`` (``make serve``) and ``--server uvicorn`` (``make serve-asgi``) serve the
same site production-like: ``DEBUG=0``, static files collected, ``--workers`` processes (4 by
default), all sharing the one Redis.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEMO_USER = "admin"
DEFAULT_PORT = 8000
HOST = "127.0.0.1"


def demo_port() -> int:
    text = os.environ.get("DEMO_PORT", str(DEFAULT_PORT))
    try:
        port = int(text)
    except ValueError:
        port = 0
    if not 1 <= port <= 65535:
        raise SystemExit(f"DEMO_PORT must be a port number (1-65535), not {text!r}.")
    return port


def claim_port(port: int) -> socket.socket:
    """Bind the demo's HTTP port now, or stop with a clear message if something holds it.

    The socket is kept (bound, not listening) until just before the web server starts, so a
    second demo started meanwhile finds the port busy too. No SO_REUSEADDR: a bind must fail
    while any server listens there.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind((HOST, port))
    except OSError as exc:
        sock.close()
        raise SystemExit(
            f"Port {port} on {HOST} is already in use ({exc.strerror}): is another "
            "`make demo` running? Stop it (Ctrl-C in its terminal), or pick another port:\n"
            f"    DEMO_PORT={port + 1} make demo\n"
            "Nothing was changed (the admin password stays the same)."
        ) from None
    return sock


def _answers(port: int) -> bool:
    """PING our own private server (only ever the port we started it on)."""
    try:
        with socket.create_connection((HOST, port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _die_with_parent() -> None:
    """In the redis-server child before exec: SIGTERM it if the demo dies, however it dies."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def start_private_redis(binary: str) -> str:
    """A redis-server of the demo's own (no persistence, loopback only); its URL."""
    port = _free_port()
    directory = tempfile.mkdtemp(prefix="rediskit-demo-")
    process = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            HOST,
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            directory,
        ],
        stdout=subprocess.DEVNULL,
        preexec_fn=_die_with_parent,
    )

    def stop() -> None:
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(5)
        shutil.rmtree(directory, ignore_errors=True)

    atexit.register(stop)
    for _ in range(200):
        if _answers(port):
            return f"redis://{HOST}:{port}/0"
        if process.poll() is not None:
            break
        time.sleep(0.05)
    raise SystemExit(f"Started {binary} on port {port} but it does not answer.")


def find_redis() -> tuple[str, str]:
    """(URL, how it was chosen). Only REDIS_URL or a server started here: never a guess."""
    given = os.environ.get("REDIS_URL")
    if given:
        return given, "given in REDIS_URL"
    binary = shutil.which(os.environ.get("REDIS_SERVER_BIN", "redis-server"))
    if binary:
        return start_private_redis(binary), "a private redis-server started for this demo"
    raise SystemExit(
        "No redis-server found to start a private one. Install it (apt-get install "
        "redis-server, brew install redis), or point the demo at a Redis of yours with "
        "REDIS_URL=redis://host:port/db, then rerun `make demo`."
    )


def ensure_admin(password: str) -> None:
    """The demo's superuser, with this checkout's password (set only if it differs)."""
    from django.contrib.auth import get_user_model

    user_model = get_user_model()
    user, created = user_model.objects.get_or_create(
        username=DEMO_USER, defaults={"is_staff": True, "is_superuser": True}
    )
    if created or not user.check_password(password):
        user.set_password(password)
        user.save()


def prepare(port: int) -> tuple[socket.socket, str]:
    """Everything before serving; returns the claimed port's socket and the admin password."""
    holder = claim_port(port)  # first: a busy port stops the demo before anything else
    url, how = find_redis()
    os.environ["REDIS_URL"] = url
    print(f"Redis: {url} ({how})", flush=True)
    sys.path.insert(0, str(HERE))
    from example import local_state

    os.environ["SECRET_KEY"] = local_state.secret_key()
    password = local_state.read_or_create("admin_password", 12)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example.settings")
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", interactive=False, verbosity=0)
    ensure_admin(password)
    call_command("seed_shop")
    return holder, password


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Serve the example shop.")
    parser.add_argument(
        "--server",
        choices=["runserver", "gunicorn", "uvicorn"],
        default="runserver",
        help="runserver (make demo, DEBUG on), gunicorn (make serve) or uvicorn (make serve-asgi)",
    )
    parser.add_argument("--workers", type=int, default=4, help="gunicorn/uvicorn processes")
    args = parser.parse_args(argv)
    if not 1 <= args.workers <= 64:
        parser.error("--workers must be between 1 and 64")
    return args


def server_command(server: str, port: int, workers: int) -> list[str]:
    """The production-like server's command line (run from example_project/)."""
    bind = f"{HOST}:{port}"
    if server == "gunicorn":
        return [
            sys.executable, "-m", "gunicorn", "example.wsgi:application",
            "--bind", bind, "--workers", str(workers), "--access-logfile", "-",
        ]  # fmt: skip
    return [
        sys.executable, "-m", "uvicorn", "example.asgi:application",
        "--host", HOST, "--port", str(port), "--workers", str(workers), "--no-access-log",
    ]  # fmt: skip


def serve_production_like(server: str, port: int, workers: int, holder: socket.socket) -> None:
    """collectstatic, then the server in a child process (this one keeps the private Redis)."""
    from django.core.management import call_command

    call_command("collectstatic", interactive=False, verbosity=0)
    holder.close()
    env = {**os.environ, "DEBUG": "0", "PYTHONPATH": str(HERE)}
    child = subprocess.Popen(server_command(server, port, workers), cwd=HERE, env=env)
    try:
        child.wait()
    finally:
        if child.poll() is None:
            child.terminate()
            child.wait(30)


def start_worker() -> subprocess.Popen[bytes]:
    """``manage.py rediskit_worker`` beside the web server: it writes the product page views
    (counted in Redis by write-behind) to the database. Stopped with the demo (SIGTERM: it
    finishes the message in hand, acknowledges nothing unfinished)."""
    env = {**os.environ, "PYTHONPATH": str(HERE)}
    worker = subprocess.Popen([sys.executable, "manage.py", "rediskit_worker"], cwd=HERE, env=env)

    def stop() -> None:
        if worker.poll() is None:
            worker.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                worker.wait(30)

    atexit.register(stop)
    return worker


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    # SIGTERM as Ctrl-C: exit normally, so atexit stops the private redis-server.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    port = demo_port()
    if args.server != "runserver":
        os.environ["DEBUG"] = "0"  # before settings load: no debug pages, static from STATIC_ROOT
    holder, password = prepare(port)
    print(f"\nDemo:  http://{HOST}:{port}/  (every feature is linked from there)")
    print(f"Admin: http://{HOST}:{port}/admin/  user {DEMO_USER!r}  password {password!r}")
    from example import local_state

    # flushed: a pipe (a CI log, a supervisor) must see the password before the server runs
    print(f"       (the same on every run; kept in {local_state.state_dir()})\n", flush=True)
    start_worker()
    if args.server != "runserver":
        print(f"Serving with {args.server}, {args.workers} workers, DEBUG off.", flush=True)
        serve_production_like(args.server, port, args.workers, holder)
        return
    from django.core.management import call_command

    holder.close()
    call_command("runserver", f"{HOST}:{port}", use_reloader=False)


if __name__ == "__main__":
    main()
