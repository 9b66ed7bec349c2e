"""Where the API's own time goes on its read routes: cProfile over in-process requests.

    .venv/bin/python bench/profile_reads.py [--requests 2000] [--top 25] [ROUTE ...]

ROUTE is one of users, book, page, cursor (all by default). Starts a SecantusDB
daemon on a free loopback port (data in a temporary folder), builds the app as
production does (APP_ENV=production, access log as configured), seeds one reader
with 100 books through the API, then profiles each route over `--requests`
requests made through Flask's test client, and prints the functions with the
most time of their own, and the database round trips' share. The test client
builds the WSGI environ itself, so its own cost (werkzeug.test) is listed apart.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import shutil
import sys
import tempfile
import time
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ["PYTHON_DOTENV_DISABLED"] = "1"

from PIL import Image  # noqa: E402

import launcher  # noqa: E402

# Where the process waits on the database rather than works.
SOCKET_WAITS = ("recv_into", "sendall", "poll", "select")
PASSWORD = "Profile-passw0rd!"


def tiny_png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(out, "PNG")
    return out.getvalue()


def seed(client: Any) -> tuple[dict[str, str], str]:
    email = "profile-reader@example.com"
    client.post("/users/", json={"name": "Profile Reader", "email": email, "password": PASSWORD})
    token = client.post("/users/login", json={"email": email, "password": PASSWORD}).get_json()["data"]["token"]
    headers = {"Authorization": f"Bearer {token}"}
    book_id = ""
    for n in range(100):
        form = {"title": f"Book {n}", "description": "A book.", "category": "science"}
        form["cover_image"] = (io.BytesIO(tiny_png()), "cover.png")  # type: ignore[assignment]
        book_id = client.post("/books/", data=form, headers=headers).get_json()["data"]["id"]
    return headers, book_id


def profile(client: Any, path: str, headers: dict[str, str], requests: int, top: int) -> None:
    for _ in range(50):  # warm caches (token, routes) first
        assert client.get(path, headers=headers).status_code == 200
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    for _ in range(requests):
        client.get(path, headers=headers)
    profiler.disable()
    elapsed = (time.perf_counter() - started) / requests * 1000
    stats = pstats.Stats(profiler)
    rows = stats.stats  # type: ignore[attr-defined]
    waiting = sum(row[2] for func, row in rows.items() if any(name in func[2] for name in SOCKET_WAITS))
    own = sum(row[2] for row in rows.values()) - waiting
    print(
        f"\n== GET {path}: {elapsed:.2f} ms per request in process, of which waiting on the database "
        f"{waiting / requests * 1000:.2f} ms and the process's own work {own / requests * 1000:.2f} ms"
    )
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(top + len(SOCKET_WAITS))
    lines = [line for line in text.getvalue().splitlines() if line.strip()]
    print("\n".join(line for line in lines[3:] if not any(name in line for name in SOCKET_WAITS)))
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(r"/(api|auth|logs|database)/|models")
    print("\n".join(line for line in text.getvalue().splitlines()[4:] if line.strip())[:4000])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("routes", nargs="*", default=["users", "book", "page", "cursor"])
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="profile-reads-")
    server, url, port = launcher.start_embedded_database(tmp)  # returns once it answers
    # The request log goes to a file, as gunicorn's does in production.
    log_file = open(os.path.join(tmp, "app.log"), "w")
    os.dup2(log_file.fileno(), 2)
    try:
        from app import create_app

        app = create_app(
            {
                "APP_ENV": "production",
                "SECRET_KEY": os.urandom(32).hex(),
                "DATABASE_URL": url.replace("/book_library?", "/profile?"),
                "PUBLIC_URL": "http://localhost",
                "UPLOAD_FOLDER": os.path.join(tmp, "covers"),
                "INSTANCE_PATH": os.path.join(tmp, "instance"),
                "RATELIMIT_ENABLED": False,
                "MAIL_SENDER": False,
            }
        )
        client = app.test_client()
        headers, book_id = seed(client)
        paths = {"users": "/users/", "book": f"/books/{book_id}", "page": "/books/", "cursor": "/books/?limit=20"}
        for route in args.routes:
            profile(client, paths[route], headers, args.requests, args.top)
            sys.stdout.flush()
        return 0
    finally:
        launcher.stop_database(server, port)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
