"""Serve the API; start an embedded SecantusDB daemon first when DATABASE_URL is unset.

The app only ever sees a MongoDB URL. SecantusDB (GPL-2.0) runs as a separate
process, started here, so the app modules never import it and every gunicorn
worker shares one database.

    python launcher.py            # gunicorn (make run); HOST, PORT, DATABASE_URL, INSTANCE_PATH from env or .env
    python launcher.py --dev      # Flask's reloader instead, debugger off (make dev)

Ctrl-C, SIGTERM or a closed terminal stop the server first, letting requests in flight
finish, and the database last. The server and the database run in sessions of their own,
so the terminal's Ctrl-C reaches this process alone and the order is ours to keep.
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import sys
import time
from types import FrameType
from typing import Any

from dotenv import load_dotenv
from pymongo import MongoClient
from pymongo.errors import PyMongoError

ROOT = os.path.dirname(os.path.abspath(__file__))
DB_START_SECONDS = 20
# One node: no failover for a retried write to ride out, so the driver's retryable
# writes only add work (the server stores every write's outcome for a possible retry).
EMBEDDED_URL_OPTIONS = "directConnection=true&retryWrites=false"
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def check_port(host: str, port: int, command: str) -> None:
    """Fail at once, naming PORT=, when the address is taken (gunicorn would retry for seconds)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        raise SystemExit(f"launcher: HOST={host} is not an address of this machine ({exc.strerror}).") from None
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers bind
        try:
            sock.bind(address)
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise SystemExit(f"launcher: cannot listen on {host}:{port} ({exc.strerror}).") from None
            raise SystemExit(
                f"launcher: port {port} on {host} is already in use (another server?). "
                f"Stop it, or choose another port: PORT={port + 1} {command}"
            ) from None


def start_embedded_database(instance_path: str) -> tuple[subprocess.Popen[bytes], str, int]:
    """Start secantusd-py on a free loopback port with its data under the instance folder."""
    storage = os.path.join(instance_path, "secantus")
    os.makedirs(storage, exist_ok=True)
    port = int(os.environ.get("EMBEDDED_DB_PORT") or free_port("127.0.0.1"))
    daemon = os.path.join(os.path.dirname(sys.executable), "secantusd-py")
    process = subprocess.Popen(
        [daemon, "--host", "127.0.0.1", "--port", str(port), "--storage-path", storage, "--log-level", "WARNING"],
        cwd=instance_path,  # so no stray secantusd.toml in the project is picked up
        start_new_session=True,  # Ctrl-C must not stop it before the server's last request
    )
    url = f"mongodb://127.0.0.1:{port}/book_library?{EMBEDDED_URL_OPTIONS}"
    try:
        wait_for_database(process, url, storage)
    except BaseException:  # not started in time, or stopped while starting
        stop_database(process, port)
        raise
    print(f"launcher: embedded database on 127.0.0.1:{port}, data in {storage}", flush=True)
    return process, url, port


def wait_for_database(process: subprocess.Popen[bytes], url: str, storage: str) -> None:
    deadline = time.monotonic() + DB_START_SECONDS
    client: MongoClient[dict[str, Any]]
    with MongoClient(url, serverSelectionTimeoutMS=250) as client:
        while True:
            if process.poll() is not None:
                raise SystemExit(
                    f"The embedded database exited (code {process.returncode}). "
                    f"Is another server already using {storage}?"
                )
            try:
                client.admin.command("ping")
                return
            except PyMongoError:
                if time.monotonic() > deadline:
                    raise SystemExit("The embedded database did not start in time.") from None


def stop(process: subprocess.Popen[bytes] | None, timeout: float = 15) -> None:
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def stop_database(process: subprocess.Popen[bytes] | None, port: int, timeout: float = 15) -> None:
    """SIGTERM (it stops cleanly, data flushed), then a connection now and then: its accept
    loop notices the stop only when a client arrives, and would otherwise wait seconds."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    deadline = time.monotonic() + timeout
    while True:
        try:
            process.wait(0.05)
            return
        except subprocess.TimeoutExpired:
            pass
        if time.monotonic() > deadline:
            process.kill()
            process.wait()
            return
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        except OSError:  # already closed: it is on its way out
            pass


def server_command(host: str, port: str, dev: bool) -> list[str]:
    if dev:
        return [
            sys.executable,
            "-m",
            "flask",
            "--app",
            "app:create_app",
            "run",
            "--host",
            host,
            "--port",
            port,
            "--reload",
            "--no-debugger",
        ]
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "--config",
        os.path.join(ROOT, "gunicorn.conf.py"),
        "--bind",
        f"{host}:{port}",
        "app:create_app()",
    ]


def serve(command: list[str], env: dict[str, str], dev: bool) -> int:
    """Run the server until it exits; the first stop signal stops it gracefully, a second at once."""
    server = subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True)
    try:
        return wait_forwarding_signals(server, dev)
    finally:
        stop(server, timeout=35)


def wait_forwarding_signals(server: subprocess.Popen[bytes], dev: bool) -> int:
    stops = 0

    def forward(_signum: int, _frame: FrameType | None) -> None:
        nonlocal stops
        stops += 1
        if dev:  # the reloader and its child stop on Ctrl-C, as in a terminal of their own
            try:
                os.killpg(server.pid, signal.SIGINT if stops == 1 else signal.SIGKILL)
            except ProcessLookupError:  # already gone
                pass
        else:  # gunicorn: TERM lets workers finish their requests, QUIT does not wait
            server.send_signal(signal.SIGTERM if stops == 1 else signal.SIGQUIT)

    for signum in STOP_SIGNALS:
        signal.signal(signum, forward)
    return server.wait()


def main(argv: list[str]) -> int:
    dev = "--dev" in argv
    for signum in STOP_SIGNALS:  # until the server runs, any of them stops the launcher cleanly
        signal.signal(signum, signal.default_int_handler)
    load_dotenv(os.path.join(ROOT, ".env"))
    host = os.environ.get("HOST") or "127.0.0.1"
    port = os.environ.get("PORT") or "5000"
    instance_path = os.path.abspath(os.environ.get("INSTANCE_PATH") or os.path.join(ROOT, "instance"))
    env = dict(os.environ, INSTANCE_PATH=instance_path)
    if not env.get("PUBLIC_URL"):  # the OpenAPI document names the address served here
        shown_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        env["PUBLIC_URL"] = f"http://{shown_host}:{port}"
    check_port(host, int(port), "make dev" if dev else "make run")

    database, database_port = None, 0
    try:
        if not env.get("DATABASE_URL"):
            database, env["DATABASE_URL"], database_port = start_embedded_database(instance_path)
        return serve(server_command(host, port, dev), env, dev)
    except KeyboardInterrupt:  # stopped before the server started
        return 130
    finally:
        stop_database(database, database_port)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
