"""`make bench`: the API against its ceiling and its floor, side by side, in one run.

    .venv/bin/python bench/run.py [--duration 10] [--warmup 1] [--connections 16] [--workers N]

On this machine only (127.0.0.1), in a temporary folder that is removed at the end:

1. starts a standalone SecantusDB daemon on a free port;
2. starts three gunicorn servers with the same settings (the repository's
   gunicorn.conf.py through bench/gunicorn_bench.conf.py, access log off for all):
   the API (`app:create_app()`, APP_ENV=production, a random SECRET_KEY made for
   this run), a constant route (the ceiling) and a one-`find_one` route (the floor);
3. seeds through the API: a reader with 1,000 books, an uploader and a login account;
4. loads each case with wrk at a fixed concurrency for a fixed time, after a
   short warm-up, and counts non-2xx answers;
5. measures numbered pages (the first, and the one 900 books deep) and cursor pages
   (the first, and one 900 books deep), and beside each read route its same-queries
   floor: a bare route of the floor app making exactly the route's database calls;
6. after the first list case, grows the books collection to 100,000 books across
   1,000 users and lists the reader's 1,000 books again;
7. measures one password-hash check, the 24-megapixel thumbnail (time, memory)
   and the API workers' peak memory while uploading;
8. runs the scripts in SIDE_SCRIPTS (peak memory of the worst accepted covers,
   time of the password-strength check on its hardest inputs).

Prints one table (ratios to the floor hold across machines; absolute numbers
drift) and writes the same to bench/results/latest.json. Prints no ratios when
the floor, measured again near the end, moved more than 25%. See bench/README.md.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
sys.path.insert(0, ROOT)

from bson import ObjectId  # noqa: E402
from PIL import Image  # noqa: E402
from pymongo import MongoClient  # noqa: E402
from werkzeug.security import check_password_hash  # noqa: E402

from launcher import EMBEDDED_URL_OPTIONS  # noqa: E402

HOST = "127.0.0.1"
DATABASE = "book_library_bench"
PASSWORD = "Bench-passw0rd!"
READER_EMAIL = "bench-reader@example.com"
UPLOADER_EMAIL = "bench-uploader@example.com"
LOGIN_EMAIL = "bench-login@example.com"
TEMPLATE_EMAIL = "bench-template@example.com"
# The login case logs in one account from one address as fast as it can. The API's
# default limits (a few logins per minute) would answer nearly all of it with 429,
# so the run raises them: the limiter still counts every login in its store, and a
# one-second window keeps its per-key entries near the size production sees.
LOGIN_LIMITS = {
    "LOGIN_RATE_LIMIT": "200 per second",
    "LOGIN_ACCOUNT_RATE_LIMIT": "200 per second",
    # The reader's 1,000 seeded books and the upload case come from one account each; the
    # seeding sends more than 200 covers a second.
    "COVER_UPLOAD_RATE_LIMIT": "2000 per second",
    # The personal-access-token case sends one token as fast as it can; its requests are
    # still counted (a tally per process, written once a second: far from the limit, as
    # a script within its limits is).
    "TOKEN_RATE_LIMIT": "1000000 per minute",
    "TOKEN_ACCOUNT_RATE_LIMIT": "1000000 per minute",
}
SEED_BOOKS = 1_000
GROWN_BOOKS = 100_000
GROWN_USERS = 1_000
CATEGORIES = ("romance", "poetry", "politics", "picture book", "science", "fantasy", "horror", "thriller")
LUA = os.path.join(BENCH, "wrk", "bench.lua")
RESULTS = os.path.join(BENCH, "results", "latest.json")
START_SECONDS = 30
# The list cases answer a few requests a second on the embedded database: three times
# the load time gives their p50 (and the 100k/1k ratio) enough samples to hold still.
LIST_LONGER = 3
SETTLE_SECONDS = 10
# Cursor pages: 20 books a page; the deep page starts after book 900, reached in pages of 100.
CURSOR_LIMIT = 20
CURSOR_WALK_LIMIT = 100
CURSOR_DEPTH = 900
# The numbered page that starts after book 900 (pages of 20).
DEEP_PAGE = CURSOR_DEPTH // 20 + 1
# The run refuses to print ratios when the floor's two measurements differ by more than this.
DRIFT_LIMIT = 0.25
# The app's share of a read route's time above which the report asks for a profile.
APP_SHARE_LIMIT = 0.25
# Run after the load cases, with no server needed; each prints the lines it adds to the report.
SIDE_SCRIPTS = ("image_memory.py", "strength_check.py")


class BenchError(RuntimeError):
    """A failure worth one clear line, not a traceback."""


# --- processes ----------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


class Server:
    """A child process started in its own session, with its output kept in a log file."""

    def __init__(self, name: str, argv: list[str], env: dict, cwd: str, log_dir: str):
        self.name = name
        self.log_path = os.path.join(log_dir, f"{name}.log")
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            argv,
            env=env,
            cwd=cwd,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise BenchError(f"{self.name} exited with code {self.process.returncode}:\n{self.log_tail()}")

    def log_tail(self, lines: int = 25) -> str:
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as handle:
                return "".join(handle.readlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 20) -> None:
        """TERM (gunicorn drains, then stops its workers), then KILL the process group we started."""
        try:
            if self.process.poll() is None:
                self.process.terminate()
                try:
                    self.process.wait(timeout)
                except subprocess.TimeoutExpired:
                    pass
            try:  # workers left behind by a master that died
                os.killpg(self.process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            self.process.wait(5)
        finally:
            self._log.close()


def worker_pids(master: int) -> list[int]:
    """The gunicorn master's children: its workers."""
    pids: list[int] = []
    try:
        for task in os.listdir(f"/proc/{master}/task"):
            with open(f"/proc/{master}/task/{task}/children", encoding="ascii") as handle:
                pids.extend(int(pid) for pid in handle.read().split())
        return sorted(pids)
    except OSError:
        pass
    for entry in os.listdir("/proc"):  # kernels without /proc/PID/task/TID/children
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as handle:
                    if int(handle.read().rsplit(")", 1)[1].split()[1]) == master:
                        pids.append(int(entry))
            except (OSError, IndexError, ValueError):
                continue
    return sorted(pids)


def proc_status_kib(pid: int, field: str) -> int | None:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process (all its threads) has used so far."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def reset_peak_rss(pids: list[int]) -> bool:
    """Set each process's VmHWM back to its current RSS (Linux clear_refs 5)."""
    ok = True
    for pid in pids:
        try:
            with open(f"/proc/{pid}/clear_refs", "w", encoding="ascii") as handle:
                handle.write("5")
        except OSError:
            ok = False
    return ok


class WorkerMemory:
    """Peak resident memory of a gunicorn master's workers over a stretch of the run."""

    def __init__(self, master: int):
        self.master = master
        self.pids = worker_pids(master)
        self.reset = reset_peak_rss(self.pids)
        self.before = {pid: proc_status_kib(pid, "VmRSS") or 0 for pid in self.pids}

    def result(self) -> dict:
        peaks = {pid: proc_status_kib(pid, "VmHWM") for pid in worker_pids(self.master)}
        peaks = {pid: peak for pid, peak in peaks.items() if peak}
        growth = [peak - self.before[pid] for pid, peak in peaks.items() if pid in self.before]
        return {
            "workers": len(peaks),
            "rss_before_max_kib": max(self.before.values(), default=None),
            "peak_rss_max_kib": max(peaks.values(), default=None),
            "peak_growth_max_kib": max(growth, default=None) if self.reset else None,
            "peak_reset_before_case": self.reset,
            "workers_replaced": sorted(set(peaks) - set(self.before)) != [],
        }

    @staticmethod
    def describe(memory: dict) -> str:
        text = f"{memory['peak_rss_max_kib'] / 1024:.1f} MiB (max of {memory['workers']} workers"
        if memory["peak_growth_max_kib"] is not None:
            text += f"; at most +{memory['peak_growth_max_kib'] / 1024:.1f} MiB over a worker's RSS before"
        else:
            text += "; lifetime high-water mark, could not reset it"
        return text + ")"


def ensure_wrk() -> str:
    path = shutil.which("wrk")
    if path:
        return path
    print("wrk is not installed; installing Debian's package (apt-get install wrk)...", flush=True)
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise BenchError(
            "wrk is needed and could not be installed here (needs root and apt-get). "
            "Install it with: sudo apt-get install wrk"
        )
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.PIPE}
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for argv in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "wrk"]):
        result = subprocess.run(argv, env=env, **quiet)
        if result.returncode != 0:
            raise BenchError(
                f"Installing wrk failed ({' '.join(argv)}): {result.stderr.decode(errors='replace').strip()}"
            )
    path = shutil.which("wrk")
    if not path:
        raise BenchError("apt-get reported success but wrk is still not on PATH.")
    return path


# --- HTTP for seeding -----------------------------------------------------------


def http(
    port: int, method: str, path: str, body: bytes | None = None, headers: dict | None = None, timeout: float = 60
) -> tuple[int, dict | None]:
    request = urllib.request.Request(f"http://{HOST}:{port}{path}", data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    except urllib.error.URLError as exc:  # refused, reset: the server is down or overloaded
        raise ConnectionError(f"{method} {path} on port {port}: {exc.reason}") from None
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, None


def post_json(port: int, path: str, payload: dict) -> tuple[int, dict | None]:
    return http(port, "POST", path, json.dumps(payload).encode(), {"Content-Type": "application/json"})


def multipart(
    fields: dict[str, str], file_field: str, filename: str, file_bytes: bytes, content_type: str = "image/jpeg"
) -> tuple[bytes, str]:
    boundary = "----bench" + secrets.token_hex(8)
    parts = []
    for name, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{file_field}"; filename="{filename}"\r\n'
        f"Content-Type: {content_type}\r\n\r\n".encode()
        + file_bytes
        + b"\r\n"
    )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def wait_http(server: Server, port: int, path: str, deadline: float, expected: int = 200) -> None:
    while True:
        server.check_alive()
        try:
            status, _ = http(port, "GET", path, timeout=2)
            if status == expected:
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise BenchError(f"{server.name} did not answer {expected} on {path} in time:\n{server.log_tail()}")
        time.sleep(0.1)


# --- images ---------------------------------------------------------------------


def photo_like_jpeg(width: int, height: int, quality: int = 85) -> bytes:
    """Smooth colour fields plus fine grain: compresses about like a photograph.

    2 MP comes out near 0.37 MB, 24 MP near 4.4 MB (under the API's 5 MiB limit).
    """
    small = (max(1, width // 24), max(1, height // 24))
    base = Image.merge(
        "RGB", [Image.effect_noise(small, 90).resize((width, height), Image.Resampling.BICUBIC) for _ in "RGB"]
    )
    grain = Image.effect_noise((width, height), 40)
    image = Image.blend(base, Image.merge("RGB", [grain, grain, grain]), 0.08)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality)
    return out.getvalue()


# --- wrk --------------------------------------------------------------------------


def run_wrk(wrk: str, port: int, env_extra: dict, connections: int, threads: int, seconds: float) -> dict:
    env = dict(os.environ, BENCH_NONCE=secrets.token_hex(4), **env_extra)
    argv = [
        wrk,
        f"-t{min(threads, connections)}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "-s",
        LUA,
        f"http://{HOST}:{port}",
    ]
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=seconds + 60)
    for line in result.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            return json.loads(line[len("BENCH_JSON ") :])
    raise BenchError(f"wrk gave no result (exit {result.returncode}):\n{result.stdout}\n{result.stderr}")


def summarise(raw: dict) -> dict:
    seconds = raw["duration_us"] / 1e6
    socket_errors = sum(raw["socket_errors"].values())
    return {
        "requests": int(raw["requests"]),
        "seconds": round(seconds, 3),
        "rps": raw["requests"] / seconds if seconds else 0.0,
        "p50_ms": raw["latency_us"]["p50"] / 1000,
        "p90_ms": raw["latency_us"]["p90"] / 1000,
        "p99_ms": raw["latency_us"]["p99"] / 1000,
        "max_ms": raw["latency_us"]["max"] / 1000,
        "non2xx": int(raw["non2xx"]),
        "first_non2xx_status": int(raw["first_non2xx_status"]) or None,
        "socket_errors": raw["socket_errors"],
        "flagged": raw["non2xx"] > 0 or socket_errors > 0,
    }


# --- the run ----------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.tmp = tempfile.mkdtemp(prefix="book-bench-")
        self.servers: list[Server] = []
        self.client: MongoClient | None = None
        self.results: list[dict] = []
        self.extras: dict = {}
        self.notes: list[str] = []

    # set-up

    def start_database(self, port: int | None = None) -> str:
        port = port or free_port()
        storage = os.path.join(self.tmp, "secantus")
        config = os.path.join(self.tmp, "secantusd.toml")
        open(config, "w").close()  # an empty config file: no auto-discovered settings
        daemon = os.path.join(os.path.dirname(sys.executable), "secantusd-py")
        if not os.path.exists(daemon):
            raise BenchError(f"{daemon} not found: run from the project's virtual environment (make install).")
        self.database = Server(
            "secantusd",
            [
                daemon,
                "--config",
                config,
                "--host",
                HOST,
                "--port",
                str(port),
                "--storage-path",
                storage,
                "--log-level",
                "WARNING",
            ],
            env=dict(os.environ),
            cwd=self.tmp,
            log_dir=self.tmp,
        )
        self.servers.insert(0, self.database)
        url = f"mongodb://{HOST}:{port}/{DATABASE}?{EMBEDDED_URL_OPTIONS}"  # as launcher.py has it
        self.client = MongoClient(url, serverSelectionTimeoutMS=250, tz_aware=True)
        deadline = time.monotonic() + START_SECONDS
        while True:
            self.database.check_alive()
            try:
                self.client.admin.command("ping")
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise BenchError(f"SecantusDB did not start in time:\n{self.database.log_tail()}") from None
        self.database_port = port
        return url

    def restart_database(self) -> None:
        """Stop the daemon and start it again on the same port and data; clients reconnect."""
        self.client.close()
        self.database.stop()
        self.servers.remove(self.database)
        self.start_database(self.database_port)

    def start_servers(self, database_url: str) -> None:
        env = dict(os.environ)
        env.update(
            APP_ENV="production",
            SECRET_KEY=secrets.token_urlsafe(48),  # made for this run, never printed
            DATABASE_URL=database_url,
            UPLOAD_FOLDER=os.path.join(self.tmp, "covers"),
            INSTANCE_PATH=os.path.join(self.tmp, "instance"),
            BENCH_GUNICORN_CONF=os.path.join(ROOT, "gunicorn.conf.py"),
            BENCH_ACCESS_LOG="1" if self.args.access_log else "0",
            PYTHONUNBUFFERED="1",
            **LOGIN_LIMITS,
        )
        self.notes.append(
            "Login, cover-upload and access-token limits raised for the run ("
            + ", ".join(f"{k}={v}" for k, v in LOGIN_LIMITS.items())
            + "): the limiter still counts every request; its defaults would refuse nearly all of those cases."
        )
        gunicorn = [sys.executable, "-m", "gunicorn", "--config", os.path.join(BENCH, "gunicorn_bench.conf.py")]
        if self.args.workers:
            gunicorn += ["--workers", str(self.args.workers)]
        specs = [
            ("api", ["app:create_app()"], "/healthz"),
            ("ceiling", ["--pythonpath", BENCH, "reference_apps:create_ceiling_app()"], "/"),
            ("floor", ["--pythonpath", BENCH, "reference_apps:create_floor_app()"], None),
        ]
        self.ports: dict[str, int] = {}
        self.by_name: dict[str, Server] = {}
        started = []
        for name, app_args, ready_path in specs:
            port = free_port()
            self.ports[name] = port
            # Production needs to know where it is reached; only the API reads it.
            server_env = dict(env, PUBLIC_URL=f"http://{HOST}:{port}")
            server = Server(name, gunicorn + ["--bind", f"{HOST}:{port}"] + app_args, server_env, ROOT, self.tmp)
            self.servers.append(server)
            self.by_name[name] = server
            started.append((server, port, ready_path))
        deadline = time.monotonic() + START_SECONDS
        for server, port, ready_path in started:
            if ready_path:
                wait_http(server, port, ready_path, deadline)
        # The floor answers 404 until a user exists.
        wait_http(self.by_name["floor"], self.ports["floor"], f"/users/{ObjectId()}", deadline, expected=404)
        self.workers = {name: worker_pids(self.by_name[name].pid) for name in self.ports}

    def sign_up_and_log_in(self, name: str, email: str) -> tuple[str, str]:
        status, body = post_json(self.ports["api"], "/users/", {"name": name, "email": email, "password": PASSWORD})
        if status != 201:
            raise BenchError(f"sign-up of {email} answered {status}: {body}")
        status, body = post_json(self.ports["api"], "/users/login", {"email": email, "password": PASSWORD})
        if status != 200:
            raise BenchError(f"login of {email} answered {status}: {body}")
        data = body["data"]
        return data["id"], data.get("token") or data["access_token"]

    def reader_access_token(self) -> str:
        """A personal access token of the reader's that may read the account (the password again)."""
        body = {"name": "bench", "scopes": ["account:read", "books:read"], "password": PASSWORD}
        status, answer = http(
            self.ports["api"],
            "POST",
            "/users/tokens",
            json.dumps(body).encode(),
            {"Content-Type": "application/json", "Authorization": f"Bearer {self.reader_token}"},
        )
        if status != 201 or answer is None:
            raise BenchError(f"creating the reader's access token answered {status}: {answer}")
        token: str = answer["data"]["token"]
        return token

    def seed(self) -> None:
        started = time.monotonic()
        self.reader_id, self.reader_token = self.sign_up_and_log_in("Bench Reader", READER_EMAIL)
        self.uploader_id, self.uploader_token = self.sign_up_and_log_in("Bench Uploader", UPLOADER_EMAIL)
        # Logins get their own account, so that whatever a login does to its account's
        # sessions leaves the reader's token alone.
        self.sign_up_and_log_in("Bench Login", LOGIN_EMAIL)
        # An account that signed up and never logged in: the shape of the filler users.
        status, body = post_json(
            self.ports["api"], "/users/", {"name": "Bench Template", "email": TEMPLATE_EMAIL, "password": PASSWORD}
        )
        if status != 201:
            raise BenchError(f"sign-up of {TEMPLATE_EMAIL} answered {status}: {body}")
        self.template_user_id = body["data"]["id"]
        small_cover = photo_like_jpeg(120, 160)
        auth = {"Authorization": f"Bearer {self.reader_token}"}

        def create(i: int) -> str:
            body, content_type = multipart(
                {
                    "title": f"Seed book {i:04d}",
                    "description": f"Book number {i} of the benchmark's reader.",
                    "category": CATEGORIES[i % len(CATEGORIES)],
                },
                "cover_image",
                "cover.jpg",
                small_cover,
            )
            try:
                status, answer = http(
                    self.ports["api"], "POST", "/books/", body, {**auth, "Content-Type": content_type}
                )
            except OSError as exc:
                raise BenchError(f"seeding book {i}: {exc}\n{self.by_name['api'].log_tail()}") from None
            if status != 201:
                raise BenchError(f"seeding book {i} answered {status}: {answer}")
            return answer["data"]["id"]

        with ThreadPoolExecutor(max_workers=8) as pool:
            ids = list(pool.map(create, range(SEED_BOOKS)))
        self.book_id = ids[len(ids) // 2]
        self.extras["seed_seconds"] = round(time.monotonic() - started, 1)

    def grow(self) -> None:
        """Grow books to 100,000 across 1,000 users; the reader keeps exactly 1,000 books.

        Sign-ups cost a full password hash each and 99,000 uploads a thumbnail each,
        which would take most of the time budget, so the filler users and books are
        inserted directly, copied from documents the API itself stored (so their
        shape is the API's, whatever fields models.py writes).
        """
        started = time.monotonic()
        db = self.client.get_default_database()
        try:
            from models import title_key
        except ImportError:  # models.py changed; titles below are already in key form

            def title_key(title: str) -> str:
                return " ".join(title.split()).casefold()

        user_template = db.users.find_one({"_id": ObjectId(self.template_user_id)})
        book_template = db.books.find_one({"user_id": ObjectId(self.reader_id)})
        filler_users = GROWN_USERS - db.users.count_documents({})
        now = datetime.now(UTC).replace(microsecond=0)
        user_ids = []
        docs = []
        for i in range(filler_users):
            doc = dict(user_template)
            doc.pop("_id")
            doc.update(name=f"Filler User {i}", email=f"filler-{i}@example.com", created_at=now, updated_at=now)
            docs.append(doc)
        if docs:
            user_ids = db.users.insert_many(docs).inserted_ids
        need = GROWN_BOOKS - db.books.count_documents({})
        inserted = 0
        batch = []
        for n in range(max(0, need)):
            owner = user_ids[n % len(user_ids)]
            title = f"Filler book {n} of {owner}"
            created = now - timedelta(seconds=n)
            doc = dict(book_template)
            doc.pop("_id")
            doc.update(
                user_id=owner,
                title=title,
                description=f"Filler book number {n}.",
                category=CATEGORIES[n % len(CATEGORIES)],
                created_at=created,
                updated_at=created,
            )
            if "title_key" in doc:
                doc["title_key"] = title_key(title)
            if "seq" in doc:  # each owner's own list position, as the API numbers them
                doc["seq"] = n // len(user_ids) + 1
            batch.append(doc)
            if len(batch) == 1000:
                inserted += len(db.books.insert_many(batch, ordered=False).inserted_ids)
                batch = []
        if batch:
            inserted += len(db.books.insert_many(batch, ordered=False).inserted_ids)
        total_books = db.books.count_documents({})
        reader_books = db.books.count_documents({"user_id": ObjectId(self.reader_id)})
        total_users = db.users.count_documents({})
        if reader_books != SEED_BOOKS:
            raise BenchError(f"the reader has {reader_books} books after growth, expected {SEED_BOOKS}")
        self.extras["growth"] = {
            "books_total": total_books,
            "users_total": total_users,
            "reader_books": reader_books,
            "books_inserted_directly": inserted,
            "users_inserted_directly": len(user_ids),
            "seconds": round(time.monotonic() - started, 1),
        }
        self.notes.append(
            f"Growth (after restarting the database on the same data): {inserted:,} books and "
            f"{len(user_ids):,} users inserted directly with pymongo, "
            f"copied from documents the API stored (same shape); collection now {total_books:,} books, "
            f"{total_users:,} users; the reader still has {reader_books:,} books."
        )

    # measurement

    def measure(
        self,
        key: str,
        label: str,
        server: str,
        env: dict,
        connections: int | None = None,
        threads: int | None = None,
        longer: float = 1,
    ) -> dict:
        """One case under wrk; `longer` stretches warm-up and load for slow cases."""
        connections = connections or self.args.connections
        threads = threads or self.args.threads
        port = self.ports[server]
        print(f"  {label} ...", end="", flush=True)
        if self.args.warmup > 0:
            run_wrk(self.wrk, port, env, connections, threads, self.args.warmup * longer)
        cpu_before = cpu_seconds(self.database.pid)
        result = summarise(run_wrk(self.wrk, port, env, connections, threads, self.args.duration * longer))
        database_cpu = cpu_seconds(self.database.pid) - cpu_before
        result.update(key=key, case=label, server=server, connections=connections)
        result["db_cpu_ms_per_request"] = database_cpu * 1000 / result["requests"] if result["requests"] else None
        self.results.append(result)
        flag = f"  ({result['non2xx']} non-2xx!)" if result["flagged"] else ""
        print(f" {result['rps']:.0f} req/s, p50 {result['p50_ms']:.1f} ms{flag}", flush=True)
        return result

    def cursor_paths(self) -> tuple[str, str]:
        """The first cursor page, and a page deep in the reader's list (after book 900 of 1,000),
        reached by following next_cursor as a client would."""
        first = f"/books/?limit={CURSOR_LIMIT}"
        path, seen = f"/books/?limit={CURSOR_WALK_LIMIT}", 0
        auth = {"Authorization": f"Bearer {self.reader_token}"}
        while seen < CURSOR_DEPTH:
            status, body = http(self.ports["api"], "GET", path, headers=auth)
            if status != 200 or not body["meta"].get("next_cursor"):
                raise BenchError(f"walking the cursor pages: {path} answered {status}: {body and body['message']}")
            seen += len(body["data"])
            path = f"/books/?limit={CURSOR_WALK_LIMIT}&after={body['meta']['next_cursor']}"
        deep = f"/books/?limit={CURSOR_LIMIT}&after={body['meta']['next_cursor']}"
        # The same page for the same-queries floor: the position the cursor continues below.
        last = self.client.get_default_database().books.find_one({"_id": ObjectId(body["data"][-1]["id"])})
        self.deep_below = int(last["seq"])
        return first, deep

    def measure_cursor_pages(self, reader: dict, size: str) -> None:
        """Cursor pages of the same reader: the first, and one 900 books deep."""
        if not hasattr(self, "cursor_pages"):
            self.cursor_pages = self.cursor_paths()
        first, deep = self.cursor_pages
        self.measure(
            f"cursor_first_{size}", f"GET /books/ cursor first ({size})", "api", {**reader, "BENCH_PATH": first}
        )
        if size == "1k":
            self.same_queries("cursor_first_1k", f"/same/cursor/{self.reader_id}?limit={CURSOR_LIMIT}")
        self.measure(f"cursor_deep_{size}", f"GET /books/ cursor deep ({size})", "api", {**reader, "BENCH_PATH": deep})
        if size == "1k":
            below = f"/same/cursor/{self.reader_id}?limit={CURSOR_LIMIT}&below={self.deep_below}"
            self.same_queries("cursor_deep_1k", below)
        if size == "1k":
            # One connection keeps exactly one worker busy: what one worker asks of the database.
            self.measure(
                "cursor_first_c1",
                "GET /books/ cursor first (c=1)",
                "api",
                {**reader, "BENCH_PATH": first},
                connections=1,
                threads=1,
            )

    def same_queries(self, key: str, path: str) -> None:
        """The same-queries floor of the case just measured: a bare route making its database calls."""
        label = "  same queries, bare route"
        self.measure(f"same_{key}", label, "floor", {"BENCH_PATH": path})

    def numbered_pages(self, reader: dict, size: str) -> None:
        """Page 1 (what GET /books/ with no parameters answers) and the page 900 books deep."""
        first = "/books/?page=1&per_page=20"
        self.measure(
            f"list_{size}", f"GET /books/ ({size} books)", "api", {**reader, "BENCH_PATH": first}, longer=LIST_LONGER
        )
        if size == "1k":
            self.same_queries("list_1k", f"/same/page/{self.reader_id}?page=1&per_page=20")
        self.settle()
        deep = f"/books/?page={DEEP_PAGE}&per_page=20"
        self.measure(
            f"list_deep_{size}", f"GET /books/ page {DEEP_PAGE} ({size})", "api", {**reader, "BENCH_PATH": deep}
        )
        if size == "1k":
            self.same_queries("list_deep_1k", f"/same/page/{self.reader_id}?page={DEEP_PAGE}&per_page=20")

    @staticmethod
    def settle() -> None:
        """After a slow case: when wrk stops, the requests queued on its connections are
        still served one by one (seconds for the list), and would load the next case."""
        time.sleep(SETTLE_SECONDS)

    def run_cases(self) -> None:
        reader = {"BENCH_TOKEN": self.reader_token}
        login_body = os.path.join(self.tmp, "login.json")
        with open(login_body, "w", encoding="utf-8") as handle:
            json.dump({"email": LOGIN_EMAIL, "password": PASSWORD}, handle)
        login = {
            "BENCH_METHOD": "POST",
            "BENCH_PATH": "/users/login",
            "BENCH_BODY_FILE": login_body,
            "BENCH_CONTENT_TYPE": "application/json",
        }

        self.measure("ceiling", "ceiling: constant route", "ceiling", {"BENCH_PATH": "/"})
        self.measure("floor", "floor: one find_one by _id", "floor", {"BENCH_PATH": f"/users/{self.reader_id}"})
        self.measure("get_user", "GET /users/", "api", {**reader, "BENCH_PATH": "/users/"})
        self.same_queries("get_user", f"/same/users/{self.reader_id}")
        # The same request with a personal access token: one lookup by its hash instead of by _id.
        pat = {"BENCH_TOKEN": self.reader_access_token()}
        self.measure("get_user_pat", "GET /users/ (access token)", "api", {**pat, "BENCH_PATH": "/users/"})
        self.measure("get_book", "GET /books/<id>", "api", {**reader, "BENCH_PATH": f"/books/{self.book_id}"})
        self.same_queries("get_book", f"/same/books/{self.reader_id}/{self.book_id}")
        # Both list cases run on a freshly restarted daemon (the second one must restart
        # before the growth, see below), so the two differ only in the collection's size.
        self.restart_database()
        self.numbered_pages(reader, "1k")
        self.settle()
        self.measure_cursor_pages(reader, "1k")

        # The same page once the collection has grown, measured right after the growth,
        # before the write-heavy cases below add their own documents.
        # The bulk insert stalls for tens of seconds (threads waiting on a WiredTiger page,
        # seen with py-spy) when it follows a load run, and never on a freshly started
        # daemon: restarting it on the same data first keeps the run short. The servers'
        # drivers reconnect by themselves; the next case's warm-up absorbs that.
        self.restart_database()
        self.grow()
        # Flush the bulk insert now (fsync runs a checkpoint), so that the periodic
        # checkpoint does not write it out in the middle of the measurement.
        self.client.admin.command("fsync")
        time.sleep(1)
        self.numbered_pages(reader, "100k")
        self.settle()
        self.measure_cursor_pages(reader, "100k")
        # The floor again: how far the machine drifted between the two ends of the run.
        self.measure("floor_again", "floor again (drift check)", "floor", {"BENCH_PATH": f"/users/{self.reader_id}"})

        self.measure("login", "POST /users/login", "api", login)
        # One hash check in this process, timed right before and right after the serial
        # login case, so that both see the same machine.
        half = max(1, self.args.hash_runs // 2)
        hash_times = self.time_hash(half)
        self.measure("login_serial", "POST /users/login (c=1)", "api", login, connections=1, threads=1)
        hash_times += self.time_hash(self.args.hash_runs - half)
        self.extras["password_hash"] = {
            "method": hash_method(self.stored_hash),
            "median_ms": statistics.median(hash_times) * 1000,
            "runs": len(hash_times),
        }

        cover = os.path.join(self.tmp, "cover-2mp.jpg")
        with open(cover, "wb") as handle:
            handle.write(photo_like_jpeg(1732, 1155))  # 2.0 megapixels
        memory = WorkerMemory(self.by_name["api"].pid)
        self.measure(
            "upload_2mp",
            "POST /books/ (2 MP JPEG)",
            "api",
            {
                "BENCH_TOKEN": self.uploader_token,
                "BENCH_MODE": "upload",
                "BENCH_METHOD": "POST",
                "BENCH_PATH": "/books/",
                "BENCH_IMAGE_FILE": cover,
            },
        )
        self.extras["upload_worker_rss"] = {"cover_bytes": os.path.getsize(cover), **memory.result()}
        self.upload_24mp()

    def upload_24mp(self) -> None:
        """Three serial uploads of a 24 MP cover through the API; latency and worker peak RSS."""
        self.image_24mp = os.path.join(self.tmp, "cover-24mp.jpg")
        with open(self.image_24mp, "wb") as handle:
            handle.write(photo_like_jpeg(6000, 4000))
        data = open(self.image_24mp, "rb").read()
        memory = WorkerMemory(self.by_name["api"].pid)
        auth = {"Authorization": f"Bearer {self.uploader_token}"}
        times, statuses = [], []
        for _ in range(3):
            body, content_type = multipart(
                {"title": f"Big cover {uuid.uuid4().hex}", "description": "24 MP", "category": "science"},
                "cover_image",
                "big.jpg",
                data,
            )
            started = time.perf_counter()
            status, _ = http(self.ports["api"], "POST", "/books/", body, {**auth, "Content-Type": content_type})
            times.append(time.perf_counter() - started)
            statuses.append(status)
        self.extras["upload_24mp_api"] = {
            "file_bytes": len(data),
            "statuses": statuses,
            "median_ms": statistics.median(times) * 1000,
            **memory.result(),
        }

    def time_hash(self, runs: int) -> list[float]:
        """Seconds per password-hash check, of the very hash the API stored for the login account."""
        if not hasattr(self, "stored_hash"):
            user = self.client.get_default_database().users.find_one({"email": LOGIN_EMAIL})
            self.stored_hash = next(
                user[key] for key in ("password", "password_hash") if isinstance(user.get(key), str)
            )
        verify = password_verifier(self.stored_hash)
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            ok = verify(self.stored_hash, PASSWORD)
            times.append(time.perf_counter() - started)
            if not ok:
                raise BenchError("the stored password hash does not match the benchmark password")
        return times

    def thumbnail_probe(self) -> None:
        result = subprocess.run(
            [sys.executable, os.path.join(BENCH, "thumbnail_probe.py"), self.image_24mp, "3"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if result.returncode != 0:
            self.extras["thumbnail_24mp"] = {"error": result.stderr.strip().splitlines()[-1:]}
            return
        self.extras["thumbnail_24mp"] = json.loads(result.stdout.strip().splitlines()[-1])

    def side_scripts(self) -> None:
        """The measurements that need no server, each a script of its own; their lines join the report."""
        lines = self.extras.setdefault("side_scripts", [])
        for script in SIDE_SCRIPTS:
            print(f"bench: {script}", flush=True)
            result = subprocess.run(
                [sys.executable, os.path.join(BENCH, script)], cwd=ROOT, capture_output=True, text=True, timeout=600
            )
            output = result.stdout.strip().splitlines()
            if result.returncode != 0:
                last = (result.stderr.strip().splitlines() or [""])[-1]
                output.append(f"{script} exited with {result.returncode}: {last}")
            lines.extend(output)

    # report

    def report(self, total_seconds: float) -> dict:
        by_key = {r["key"]: r for r in self.results}
        floor = by_key.get("floor", {}).get("rps") or None
        drift = floor_drift(by_key)
        # Ratios only from a run whose floor held still: otherwise the machine changed under it.
        steady = drift is not None and abs(drift - 1) <= DRIFT_LIMIT
        self.extras["floor_drift"], self.extras["ratios_reported"] = drift, steady
        for r in self.results:
            r["ratio_to_floor"] = r["rps"] / floor if floor and steady else None

        header = (
            f"{'case':<32} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8} {'x floor':>8} {'db ms/req':>10}"
        )
        lines = [header, "-" * len(header)]
        for r in self.results:
            ratio = f"{r['ratio_to_floor']:.2f}" if r["ratio_to_floor"] is not None else "-"
            flag = ""
            if r["flagged"]:
                socket_errors = sum(r["socket_errors"].values())
                flag = f"  << ERRORS: {r['non2xx']} non-2xx"
                if r["first_non2xx_status"]:
                    flag += f" (first {r['first_non2xx_status']})"
                if socket_errors:
                    flag += f", {socket_errors} socket errors"
            db_ms = r.get("db_cpu_ms_per_request")
            db_ms = f"{db_ms:.2f}" if db_ms is not None and r["server"] != "ceiling" else "-"
            lines.append(
                f"{r['case']:<32} {r['rps']:>8.0f} {r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f} "
                f"{r['non2xx']:>8} {ratio:>8} {db_ms:>10}{flag}"
            )
        lines.append("")

        extras = self.extras
        hashing = extras.get("password_hash")
        serial = by_key.get("login_serial")
        if hashing:
            line = (
                f"password hash check ({hashing['method']}, median of {hashing['runs']}): {hashing['median_ms']:.1f} ms"
            )
            if serial:
                over = serial["p50_ms"] - hashing["median_ms"]
                extras["login_minus_hash_ms"] = over
                line += (
                    f"; login p50 at c=1: {serial['p50_ms']:.1f} ms, login minus hash: {over:+.1f} ms (target <= 15)"
                )
            lines.append(line)
        if steady:
            lines.extend(ratio_lines(by_key, extras))
        elif drift is not None:
            lines.append(
                f"NO RATIOS: the floor moved {drift:.2f}x between the start and the end of the run (limit "
                f"{1 - DRIFT_LIMIT:.2f}-{1 + DRIFT_LIMIT:.2f}x): the machine was not steady. Rerun on a quiet machine."
            )
        lines.extend(app_share_lines(by_key, extras, steady))
        jwt, pat = by_key.get("get_user"), by_key.get("get_user_pat")
        if (
            steady
            and jwt
            and pat
            and jwt["rps"]
            and jwt.get("db_cpu_ms_per_request")
            and pat.get("db_cpu_ms_per_request")
        ):
            ratio = pat["rps"] / jwt["rps"]
            extras["access_token_over_jwt_rps"] = ratio
            lines.append(
                f"GET /users/ with an access token / with a JWT: {pat['rps']:.0f} / {jwt['rps']:.0f} req/s = "
                f"{ratio:.2f}x (target >= 1 within noise); database CPU {pat['db_cpu_ms_per_request']:.2f} / "
                f"{jwt['db_cpu_ms_per_request']:.2f} ms per request"
            )
        one = by_key.get("cursor_first_c1")
        if one and one["rps"] and one.get("db_cpu_ms_per_request"):
            # A busy worker asks rps x (database CPU per request) of the database's one core.
            share = one["rps"] * one["db_cpu_ms_per_request"] / 1000
            extras["database_share_per_busy_worker"] = share
            lines.append(
                f"GET /books/ cursor first page, one busy worker (c=1): {one['rps']:.0f} req/s x "
                f"{one['db_cpu_ms_per_request']:.2f} ms of database CPU each = {share:.0%} of one database core: "
                f"one embedded database carries about {1 / share:.1f} busy workers"
            )
        thumb = extras.get("thumbnail_24mp")
        if thumb and "error" not in thumb:
            if thumb["peak_added_kib"] is not None:
                memory = f"peak memory +{thumb['peak_added_kib'] / 1024:.1f} MiB over the process's RSS"
            else:
                memory = f"peak RSS {thumb['peak_rss_kib'] / 1024:.1f} MiB (could not reset the high-water mark)"
            lines.append(
                f"24 MP JPEG ({thumb['file_bytes'] / 1e6:.1f} MB) through save_image.make_thumbnail in-process: "
                f"{thumb['median_seconds'] * 1000:.0f} ms (median of {thumb['runs']}; cold "
                f"{thumb['cold_seconds'] * 1000:.0f} ms), {memory}"
            )
        elif thumb:
            lines.append(f"24 MP thumbnail probe failed: {thumb['error']}")
        big = extras.get("upload_24mp_api")
        if big:
            lines.append(
                f"POST /books/ with that 24 MP JPEG, serial x{len(big['statuses'])}: median {big['median_ms']:.0f} ms, "
                f"statuses {big['statuses']}; API worker peak RSS {WorkerMemory.describe(big)}"
            )
        rss = extras.get("upload_worker_rss")
        if rss and rss["peak_rss_max_kib"]:
            lines.append(f"API worker peak RSS during the 2 MP upload case: {WorkerMemory.describe(rss)}")
        lines.extend(extras.get("side_scripts", []))
        workers = {name: len(pids) for name, pids in self.workers.items()}
        settings = gunicorn_settings()
        lines.append(
            f"set-up: {os.cpu_count()} CPUs; gunicorn {settings.get('worker_class', 'sync')} workers per server "
            f"{workers}; wrk -t{self.args.threads} "
            f"-c{self.args.connections}, {self.args.duration:g} s per case after {self.args.warmup:g} s warm-up "
            f"({LIST_LONGER}x both for the list cases); "
            f"access log {'on' if self.args.access_log else 'off'} for all three; "
            f"seeding {extras.get('seed_seconds')} s; total {total_seconds:.0f} s"
        )
        load_start, load_end = extras.get("load_average_start"), extras.get("load_average_end")
        if load_start is not None and load_start > 0.5:
            lines.append(
                f"Note: the machine was already busy when the run started (1-minute load {load_start:.1f}; "
                f"{load_end:.1f} at the end): absolute numbers are low"
                + (", compare the ratios." if steady else "; db ms/req holds best under load.")
            )
        lines.extend(self.notes)
        text = "\n".join(lines)
        print()
        print(text)

        document = {
            "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "commit": git_commit(),
            "settings": {
                "duration_s": self.args.duration,
                "warmup_s": self.args.warmup,
                "connections": self.args.connections,
                "threads": self.args.threads,
                "workers": workers,
                "gunicorn": settings,
                "access_log": self.args.access_log,
                "cpus": os.cpu_count(),
            },
            "cases": self.results,
            "extras": extras,
            "notes": self.notes,
            "table": text,
            "total_seconds": round(total_seconds, 1),
        }
        os.makedirs(os.path.dirname(self.args.json), exist_ok=True)
        with open(self.args.json, "w", encoding="utf-8") as handle:
            json.dump(document, handle, indent=2)
        print(f"\nresults written to {os.path.relpath(self.args.json, ROOT)}")
        return document

    def run(self) -> None:
        started = time.monotonic()
        self.wrk = ensure_wrk()
        self.extras["load_average_start"] = os.getloadavg()[0]
        print(f"bench: temporary folder {self.tmp}", flush=True)
        database_url = self.start_database()
        print("bench: SecantusDB daemon up; starting the API, ceiling and floor under gunicorn", flush=True)
        self.start_servers(database_url)
        print(f"bench: seeding {SEED_BOOKS:,} books for one reader through the API", flush=True)
        self.seed()
        print("bench: measuring", flush=True)
        self.run_cases()
        self.thumbnail_probe()
        self.side_scripts()
        self.extras["load_average_end"] = os.getloadavg()[0]
        self.report(time.monotonic() - started)

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
        for server in reversed(self.servers):  # app servers first, the database last
            try:
                server.stop()
            except Exception as exc:  # keep stopping the others
                print(f"bench: stopping {server.name}: {exc}", file=sys.stderr)
        shutil.rmtree(self.tmp, ignore_errors=True)


def floor_drift(by_key: dict) -> float | None:
    """The floor's rate at the end of the run over its rate at the start."""
    first, again = by_key.get("floor"), by_key.get("floor_again")
    if not first or not again or not first["rps"]:
        return None
    return again["rps"] / first["rps"]


def ratio_lines(by_key: dict, extras: dict) -> list[str]:
    """The ratios the issue's targets are stated in, each from this one run."""
    lines = []
    pairs = [
        ("list_100k", "list_1k", "p50_ms", "GET /books/ p50 at 100k books / at 1k books", "target <= 1.2"),
        ("list_deep_100k", "list_deep_1k", "p50_ms", f"GET /books/ page {DEEP_PAGE} p50 at 100k / at 1k", ""),
        ("cursor_first_100k", "cursor_first_1k", "p50_ms", "GET /books/ cursor first p50 at 100k / at 1k", ""),
        ("cursor_deep_100k", "cursor_deep_1k", "p50_ms", "GET /books/ cursor deep p50 at 100k / at 1k", ""),
        ("list_1k", "cursor_first_1k", "db_cpu_ms_per_request", "GET /books/ db ms: page 1 / cursor first", "<= 1.5"),
        ("list_deep_1k", "cursor_deep_1k", "db_cpu_ms_per_request", f"db ms: page {DEEP_PAGE} / cursor deep", ""),
    ]
    for top, bottom, field, label, target in pairs:
        a, b = by_key.get(top, {}).get(field), by_key.get(bottom, {}).get(field)
        if a is None or not b:
            continue
        extras[f"{top}_over_{bottom}_{field}"] = a / b
        note = f" (target {target})" if target else ""
        lines.append(f"{label}: {a:.2f} / {b:.2f} = {a / b:.2f}x{note}")
    return lines


def app_share_lines(by_key: dict, extras: dict, steady: bool) -> list[str]:
    """Each read route beside its same-queries floor: the app's own share of the route's time."""
    lines = []
    shares = extras.setdefault("app_share", {})
    for key, route in by_key.items():
        same = by_key.get(f"same_{key}")
        if not same or not same["rps"] or not route["rps"]:
            continue
        share = 1 - route["rps"] / same["rps"]  # of the route's time per request, what the app adds
        shares[key] = share if steady else None
        text = f"{share:.0%}" if steady else "- (no ratios)"
        over = "  << over 25%: profile it" if steady and share > APP_SHARE_LIMIT else ""
        lines.append(
            f"app's share of {route['case']}: {route['rps']:.0f} req/s against {same['rps']:.0f} "
            f"for the same queries in a bare route = {text}{over}"
        )
    return lines


def password_verifier(stored: str):
    """verify(stored, password) -> bool for the hash's own format, with its own parameters."""
    if stored.startswith("$argon2"):
        from argon2 import PasswordHasher
        from argon2.exceptions import VerificationError

        hasher = PasswordHasher()  # verify() reads the cost parameters from the hash

        def verify(hashed: str, password: str) -> bool:
            try:
                return hasher.verify(hashed, password)
            except VerificationError:
                return False

        return verify
    return check_password_hash  # Werkzeug's "method$salt$hash" formats


def hash_method(stored: str) -> str:
    """'argon2id m=19456,t=2,p=1' or 'scrypt:32768:8:1': the algorithm and its costs, no salt or hash."""
    if stored.startswith("$"):
        parts = stored.split("$")
        return f"{parts[1]} {parts[3]}" if len(parts) > 3 else parts[1]
    return stored.split("$", 1)[0]


def gunicorn_settings() -> dict:
    """The repository's gunicorn settings as this environment resolves them (for the report)."""
    try:
        import runpy

        conf = runpy.run_path(os.path.join(ROOT, "gunicorn.conf.py"))
        settings = {key: conf[key] for key in ("worker_class", "workers", "threads") if key in conf}
        if isinstance(settings.get("worker_class"), type):  # a worker class of gunicorn.conf.py's own
            settings["worker_class"] = settings["worker_class"].__name__
        return settings
    except Exception:
        return {}


def git_commit() -> str | None:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        return commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10, help="seconds of load per case (default 10)")
    parser.add_argument("--warmup", type=float, default=1, help="seconds of warm-up per case (default 1; 0 skips)")
    parser.add_argument("--connections", type=int, default=16, help="concurrent connections (default 16)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument(
        "--workers", type=int, default=None, help="gunicorn workers per server (default: what gunicorn.conf.py chooses)"
    )
    parser.add_argument(
        "--access-log",
        action="store_true",
        help="keep gunicorn.conf.py's access log on for all three servers (default: off for all)",
    )
    parser.add_argument("--hash-runs", type=int, default=20, help="password-hash checks to time (default 20)")
    parser.add_argument(
        "--json", default=RESULTS, help="where to write the results (default bench/results/latest.json)"
    )
    args = parser.parse_args(argv)
    if args.duration < 1 or args.connections < 1 or args.threads < 1 or (args.workers is not None and args.workers < 1):
        parser.error("--duration, --connections, --threads and --workers must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # A TERM (CI timeout, Ctrl-C from make) still stops every server and removes the folder.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    bench = Bench(args)
    try:
        bench.run()
        return 0
    except BenchError as exc:
        print(f"\nbench failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nbench interrupted", file=sys.stderr)
        return 130
    finally:
        bench.close()


if __name__ == "__main__":
    sys.exit(main())
