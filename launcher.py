"""Serve the API with gunicorn; start an embedded SecantusDB daemon first when DATABASE_URL is unset.

The app only ever sees a MongoDB URL. SecantusDB (GPL-2.0) runs as a separate
process, started here, so the app modules never import it and every gunicorn
worker shares one database.

    python launcher.py            # HOST, PORT, DATABASE_URL, INSTANCE_PATH from env or .env
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

from dotenv import load_dotenv
from pymongo import MongoClient
from pymongo.errors import PyMongoError

ROOT = os.path.dirname(os.path.abspath(__file__))
DB_START_SECONDS = 20
# One node: no failover for a retried write to ride out, so the driver's retryable
# writes only add work (the server stores every write's outcome for a possible retry).
EMBEDDED_URL_OPTIONS = "directConnection=true&retryWrites=false"


def free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def start_embedded_database(instance_path: str) -> tuple[subprocess.Popen, str]:
    """Start secantusd-py on a free loopback port with its data under the instance folder."""
    storage = os.path.join(instance_path, "secantus")
    os.makedirs(storage, exist_ok=True)
    port = int(os.environ.get("EMBEDDED_DB_PORT") or free_port("127.0.0.1"))
    daemon = os.path.join(os.path.dirname(sys.executable), "secantusd-py")
    process = subprocess.Popen(
        [daemon, "--host", "127.0.0.1", "--port", str(port), "--storage-path", storage, "--log-level", "WARNING"],
        cwd=instance_path,  # so no stray secantusd.toml in the project is picked up
    )
    url = f"mongodb://127.0.0.1:{port}/book_library?{EMBEDDED_URL_OPTIONS}"
    deadline = time.monotonic() + DB_START_SECONDS
    with MongoClient(url, serverSelectionTimeoutMS=250) as client:
        while True:
            if process.poll() is not None:
                raise SystemExit(
                    f"The embedded database exited (code {process.returncode}). "
                    f"Is another server already using {storage}?"
                )
            try:
                client.admin.command("ping")
                break
            except PyMongoError:
                if time.monotonic() > deadline:
                    stop(process)
                    raise SystemExit("The embedded database did not start in time.") from None
    print(f"launcher: embedded database on 127.0.0.1:{port}, data in {storage}", flush=True)
    return process, url


def stop(process: subprocess.Popen | None, timeout: float = 15) -> None:
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def main() -> int:
    load_dotenv(os.path.join(ROOT, ".env"))
    host = os.environ.get("HOST") or "127.0.0.1"
    port = os.environ.get("PORT") or "5000"
    instance_path = os.path.abspath(os.environ.get("INSTANCE_PATH") or os.path.join(ROOT, "instance"))
    env = dict(os.environ, INSTANCE_PATH=instance_path)

    database = None
    server = None
    try:
        if not env.get("DATABASE_URL"):
            database, env["DATABASE_URL"] = start_embedded_database(instance_path)
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "--config",
                os.path.join(ROOT, "gunicorn.conf.py"),
                "--bind",
                f"{host}:{port}",
                "app:create_app()",
            ],
            cwd=ROOT,
            env=env,
        )

        def forward(signum, _frame):
            server.send_signal(signum)  # gunicorn drains in-flight requests on TERM

        signal.signal(signal.SIGTERM, forward)
        signal.signal(signal.SIGINT, forward)
        return server.wait()
    finally:
        stop(server, timeout=35)
        stop(database)


if __name__ == "__main__":
    sys.exit(main())
