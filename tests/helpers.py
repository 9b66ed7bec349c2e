"""Plain helpers shared by the test modules: constants, the one configuration factory, the one
envelope check, the API's operations, request helpers, image encoders and helpers for tests
that start real servers. Fixtures live in conftest.py."""

from __future__ import annotations

import asyncio
import functools
import io
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from email import message_from_bytes, policy
from pathlib import Path
from types import SimpleNamespace

import jwt
import mongomock
import mongomock.gridfs
import pytest
from aiosmtpd.controller import Controller
from PIL import Image

from app import create_app
from config import DEFAULTS

TEST_SECRET = "test-secret-key-that-is-long-enough-for-hs256"
PASSWORD = "Str0ng!pass"
WRONG_PASSWORD = "Wr0ng!password"
ACCESS_TOKEN_SECONDS = 15 * 60
AN_INSTANT = datetime(2031, 3, 14, 15, 9, 26, 535000, tzinfo=UTC)  # where the `clock` fixture stops time

ENVELOPE_KEYS = {"message", "data", "error"}
INVALID_FIELDS = "The request has invalid fields."
SESSION_ENDED = "Session has ended or the account is disabled."
TOKEN_MISSING = "Authentication token is missing."
TOKEN_EXPIRED = "Token has expired."
WRONG_CREDENTIALS = "Invalid email or password."
REFRESH_INVALID = "Refresh token is invalid or expired."
REFRESH_REUSED = "Refresh token was already used; the session has been ended."
RATE_LIMITED = "Too many requests; try again later."
LOCKED = "Too many failed logins; try again later."
JSON_ONLY = "Content-Type must be application/json."
BOOK_NOT_FOUND = "Book not found."
COVER_NOT_FOUND = "Cover not found."
DUPLICATE_TITLE = "You already have a book with this title."
# werkzeug's own descriptions, for the URLs and methods no route answers.
NO_SUCH_URL = (
    "The requested URL was not found on the server. If you entered the URL manually please check your "
    "spelling and try again."
)
WRONG_METHOD = "The method is not allowed for the requested URL."
TOO_LARGE = "The data value transmitted exceeds the capacity limit."


# --- configuration: one factory for apps in this process and for servers in subprocesses ----------

OMIT = object()  # as an override's value: leave that setting out, so the app takes its default


def config_for_tests(tmp_path, **overrides) -> dict:
    """The configuration of every app the tests build: files under tmp_path, the test signing key, a cheap
    Argon2id (production uses the OWASP parameters) and rate limits off (the tests about them switch them
    on); then the overrides, where OMIT removes a setting."""
    config = {
        "TESTING": True,
        "SECRET_KEY": TEST_SECRET,
        "INSTANCE_PATH": str(Path(tmp_path) / "instance"),
        "UPLOAD_FOLDER": str(Path(tmp_path) / "covers"),
        "PASSWORD_HASH_TIME_COST": 1,
        "PASSWORD_HASH_MEMORY_KIB": 1024,
        "RATELIMIT_ENABLED": False,
        # The outbox waits: the tests about mail drive it with mail.send_due, and no thread writes mail files.
        "MAIL_SENDER": False,
        **overrides,
    }
    return {key: value for key, value in config.items() if value is not OMIT}


# Settings that only an app built in this process can take.
IN_PROCESS_ONLY = {"TESTING", "MONGO_CLIENT"}


def server_env(config: dict, **process_env) -> dict[str, str]:
    """The environment for a server in a subprocess that `config` describes: this process's environment
    with every app setting blanked (blank means default, and a developer's .env cannot fill it back in),
    then config's settings as the app reads them from the environment, then process_env as given (for
    the launcher and gunicorn, not the app)."""
    settable = set(DEFAULTS) | {"SECRET_KEY", "INSTANCE_PATH"}
    unknown = set(config) - settable - IN_PROCESS_ONLY
    assert not unknown, f"not settable from the environment: {sorted(unknown)}"
    env = {**os.environ, **{key: "" for key in settable}, "PYTHON_DOTENV_DISABLED": "1"}
    for key, value in config.items():
        if key in settable:
            env[key] = str(value).lower() if isinstance(value, bool) else str(value)
    env.update(process_env)
    return env


# Every rate-limit setting the app has, as config.DEFAULTS names them.
RATE_LIMIT_SETTINGS = tuple(key for key in DEFAULTS if key.endswith("_RATE_LIMIT"))


def limits(**settings) -> dict:
    """Rate limits on, every limit generous except the ones given."""
    generous = dict.fromkeys(RATE_LIMIT_SETTINGS, "1000 per minute")
    return {"RATELIMIT_ENABLED": True, **generous, **settings}


# --- the JSON envelope: the one check ------------------------------------------------------------


class Fragment(str):
    """An expected message given as a part of it, where the app builds the message from data (the
    problems a password has, the warning of the password-strength library): it matches any message
    that contains it. Every other expected message must match exactly."""


# Field messages many modules check. The strength check adds the password library's own
# warning to the Fragments.
REQUIRED = "This field is required."
NOT_A_STRING = "Must be a string."
COMMON = Fragment("Password is not allowed: it is a common or breached password")
GUESSABLE = Fragment("Password is not allowed: it is too easy to guess")
NOT_ALLOWED = Fragment("Password is not allowed: ")


def _matches(actual, expected) -> bool:
    if isinstance(expected, Fragment):
        return isinstance(actual, str) and expected in actual
    return actual == expected


def assert_envelope(response, status: int, message: str, error=None):
    """The one check of a JSON reply (from the test client or a real server): the status, the content
    type, the envelope's keys in order, and the message. A failure (status 400 and up) also has exactly
    the given error (a name, or for a 400 each field's message) and no data. Returns the data."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json", response.mimetype
    body = response.get_json()
    assert list(body)[:3] == ["message", "data", "error"], body
    assert _matches(body["message"], message), (body["message"], message)
    if status < 400:
        assert error is None, "a success has no error to expect"
        assert body["error"] is None, body
        return body["data"]
    assert set(body) == ENVELOPE_KEYS, body
    assert body["data"] is None, body
    if isinstance(error, dict):
        assert isinstance(body["error"], dict) and set(body["error"]) == set(error), body["error"]
        for field, expected in error.items():
            assert _matches(body["error"][field], expected), (field, body["error"][field], expected)
    else:
        assert error is not None, "a failure's error name must be stated"
        assert body["error"] == error, body
    return body["data"]


def assert_429(response, message: str = RATE_LIMITED) -> int:
    """429 in the JSON envelope with an integer Retry-After of at least a second; returns it."""
    assert_envelope(response, 429, message, "Too Many Requests")
    retry_after = response.headers.get("Retry-After", "")
    assert retry_after.isdigit(), response.headers
    assert int(retry_after) >= 1
    return int(retry_after)


# --- the API's operations, from the URL map and the OpenAPI document -----------------------------

# Routes that serve files or describe the API rather than being part of it.
NOT_API = re.compile(r"^/(static/|app/|docs\b|openapi\.json$)")
SOME_ID = "0123456789abcdef01234567"  # a well-formed ObjectId for a route's <objectid:...> variable


def api_operations(app) -> list[tuple[str, str]]:
    """(METHOD, Flask rule) of every API operation in the app's URL map, HEAD and OPTIONS aside."""
    return [
        (method, rule.rule)
        for rule in app.url_map.iter_rules()
        if not NOT_API.match(rule.rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"})
    ]


def openapi_path(rule: str) -> str:
    """/books/<objectid:book_id> -> /books/{book_id}"""
    return re.sub(r"<(?:[^<>:]+:)?([^<>]+)>", r"{\1}", rule)


def concrete_path(rule: str) -> str:
    """A URL the rule matches."""
    path = re.sub(r"<objectid:[^<>]+>", SOME_ID, rule)
    assert "<" not in path, f"no sample value for a variable of {rule}"
    return path


@functools.cache
def documented_security() -> dict[tuple[str, str], bool]:
    """For every API operation of an app built as the tests build it, (METHOD, URL) -> whether its OpenAPI
    operation requires a bearer token. Read once, when tests are collected, so that they can be
    parametrised by it; test_browser checks that the running app answers 401 exactly where it says so."""
    with tempfile.TemporaryDirectory() as tmp:
        app = create_app(config_for_tests(tmp, MONGO_CLIENT=mongomock.MongoClient(tz_aware=True), REQUEST_LOG=False))
        document = app.test_client().get("/openapi.json").get_json()
        return {
            (method, concrete_path(rule)): bool(document["paths"][openapi_path(rule)][method.lower()].get("security"))
            for method, rule in api_operations(app)
        }


def protected_operations() -> list[tuple[str, str]]:
    """(METHOD, URL) of every operation that needs an access token."""
    return [operation for operation, protected in documented_security().items() if protected]


# PyMongo's gridfs accepts mongomock's databases once told to, and reads one client option.
mongomock.gridfs.enable_gridfs_integration()


class MongomockClient(mongomock.MongoClient):
    options = SimpleNamespace(timeout=None)  # no client-wide operation timeout


# --- requests ----------------------------------------------------------------------------


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def ip(n: int) -> dict:
    return {"REMOTE_ADDR": f"10.0.0.{n}"}


def login(client, email, password=PASSWORD, addr=1):
    return client.post("/users/login", json={"email": email, "password": password}, environ_base=ip(addr))


class AuthActions:
    """Sign up, log in, and hand back headers, as a client would."""

    def __init__(self, client):
        self._client = client
        self._count = 0

    def signup(self, name="Ada Lovelace", email=None, password=PASSWORD):
        self._count += 1
        email = email or f"user{self._count}-{uuid.uuid4().hex[:6]}@example.com"
        response = self._client.post("/users/", json={"name": name, "email": email, "password": password})
        assert response.status_code == 201, response.get_json()
        return email

    def login(self, email, password=PASSWORD):
        return self._client.post("/users/login", json={"email": email, "password": password})

    def headers(self, email=None, password=PASSWORD):
        """Headers of a new (or the given) user's access token."""
        email = email or self.signup(password=password)
        response = self.login(email, password)
        assert response.status_code == 200, response.get_json()
        return {"Authorization": f"Bearer {response.get_json()['data']['token']}"}


def reissued(token: str, key: str = TEST_SECRET, typ: str = "at+jwt", algorithm="HS256", **changes) -> str:
    """The same token's claims with changes, signed as asked (by default as an access token with the test key)."""
    claims = jwt.decode(token, options={"verify_signature": False})
    return jwt.encode({**claims, **changes}, key, algorithm=algorithm, headers={"typ": typ})


# --- images and books ----------------------------------------------------------------------


def encode(image, fmt, **options) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def image_bytes(fmt="PNG", size=(300, 200), color=(200, 30, 30), mode="RGB", **save_options) -> bytes:
    return encode(Image.new(mode, size, color), fmt, **save_options)


def book_form(title="Dune", category="science", description="Spice and sand.", cover=None, filename="cover.png"):
    """A multipart form as Postman's form-data sends it."""
    form = {"title": title, "category": category, "description": description}
    if cover is not False:
        form["cover_image"] = (io.BytesIO(cover or image_bytes()), filename)
    return form


# --- real servers in subprocesses ----------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Reply:
    """A real server's answer, read the way a Flask test response is, so assert_envelope takes both."""

    status_code: int
    headers: dict
    raw: bytes

    @property
    def mimetype(self) -> str:
        content_type = next((v for k, v in self.headers.items() if k.lower() == "content-type"), "")
        return content_type.split(";")[0].strip()

    def get_json(self):
        return json.loads(self.raw) if self.raw else None

    def get_data(self, as_text=False):
        return self.raw.decode("utf-8", "replace") if as_text else self.raw

    @property
    def data(self):
        return (self.get_json() or {}).get("data")


def http_request(
    method: str, url: str, body: dict | None = None, token: str | None = None, headers=None, timeout: float = 10
) -> Reply:
    """One HTTP request; error statuses are replies too. Every response is closed."""
    headers = dict(headers or {})
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return Reply(response.status, dict(response.headers), response.read())
    except urllib.error.HTTPError as error:
        with error:
            return Reply(error.code, dict(error.headers), error.read())


class LoggedProcess:
    """A child process whose output a thread copies, line by line, to a log file; a test waits for the
    line it needs (the server is listening) instead of polling."""

    def __init__(self, name: str, args: list[str], log_path, **popen):
        self.name = name
        self.log_path = Path(log_path)
        self.popen = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **popen
        )
        self._lines: list[str] = []
        self._ended = False
        self._changed = threading.Condition()
        self._copier = threading.Thread(target=self._copy, name=f"log of {name}", daemon=True)
        self._copier.start()

    def _copy(self) -> None:
        with self.popen.stdout as output, open(self.log_path, "ab") as log:
            for line in output:
                log.write(line)
                log.flush()
                with self._changed:
                    self._lines.append(line.decode("utf-8", "replace"))
                    self._changed.notify_all()
        with self._changed:
            self._ended = True
            self._changed.notify_all()

    def log(self, chars: int = 6000) -> str:
        with self._changed:
            return "".join(self._lines)[-chars:]

    def wait_for(self, pattern: str, seconds: float) -> re.Match:
        """The first match of pattern in a line of output, waiting for it; fails, showing the output, when
        the process ends or `seconds` pass first."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + seconds
        seen = 0
        with self._changed:
            while True:
                for line in self._lines[seen:]:
                    if match := regex.search(line):
                        return match
                seen = len(self._lines)
                if self._ended:
                    pytest.fail(f"{self.name} ended ({self.popen.wait()}) before printing {pattern!r}:\n{self.log()}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    pytest.fail(f"{self.name} did not print {pattern!r} within {seconds} s:\n{self.log()}")
                self._changed.wait(remaining)

    def stop(self, seconds: float) -> int:
        """Terminate, wait, kill if need be; the exit code."""
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(seconds)
            except subprocess.TimeoutExpired:
                self.popen.kill()
        code = self.popen.wait()
        self._copier.join(seconds)
        return code


def wait_until_gone(pids, seconds: float) -> set[int]:
    """Wait for these processes (children or not) to end, woken by the kernel as each one does; the pids
    still running after `seconds`."""
    handles = {}
    for pid in pids:
        try:
            handles[os.pidfd_open(pid)] = pid
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + seconds
    try:
        while handles:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            ended, _, _ = select.select(list(handles), [], [], remaining)
            for fd in ended:
                os.close(fd)
                del handles[fd]
        return set(handles.values())
    finally:
        for fd in handles:
            os.close(fd)


# --- the launcher (make run, make dev) in a subprocess ---------------------------------------

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAUNCHER_START_SECONDS = 30
LAUNCHER_STOP_SECONDS = 30
# The settings `make run` starts with: a generated key, the production hash cost, rate limits on.
AS_MAKE_RUNS_IT = dict.fromkeys(
    ["SECRET_KEY", "PASSWORD_HASH_TIME_COST", "PASSWORD_HASH_MEMORY_KIB", "RATELIMIT_ENABLED"], OMIT
)


def processes() -> dict[int, tuple[int, int, str]]:
    """Live processes: pid -> (parent pid, process group, command line)."""
    out = subprocess.run(
        ["ps", "-ww", "-eo", "pid=,ppid=,pgid=,stat=,args="], capture_output=True, text=True, check=True
    ).stdout
    found = {}
    for line in out.splitlines():
        pid, ppid, group, stat, args = (line.split(None, 4) + [""])[:5]
        if not stat.startswith("Z"):
            found[int(pid)] = (int(ppid), int(group), args)
    return found


def descendants(pid: int) -> dict[int, str]:
    """Live descendants of a process: pid -> command line."""
    table = processes()
    found, parents = {}, {pid}
    while parents:
        children = {p for p, (ppid, _, _) in table.items() if ppid in parents and p not in found}
        found.update({p: table[p][2] for p in children})
        parents = children
    return found


def group_processes(pgids) -> dict[int, str]:
    """Live processes (pid -> command line) of these process groups."""
    pgids = {pgids} if isinstance(pgids, int) else set(pgids)
    return {pid: args for pid, (_, group, args) in processes().items() if group in pgids}


class Launcher:
    """`python launcher.py` (with `args`, e.g. --dev) in a session of its own, as a terminal runs
    `make run`: the embedded database, a generated key and every other setting at its default
    (`config` overrides some). The server and the database it starts run in sessions of their own:
    every group seen is remembered, so that kill() can always clean up."""

    def __init__(self, tmp_path, *args, root=ROOT, **config):
        self.args = list(args)
        self.root = root
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp_path / "launcher.log"
        config = config_for_tests(tmp_path, **{**AS_MAKE_RUNS_IT, **config})
        self.instance = Path(config["INSTANCE_PATH"])
        self.env = server_env(config, PORT=str(self.port), HOST="127.0.0.1", WEB_CONCURRENCY="2", EMBEDDED_DB_PORT="")
        self.process: LoggedProcess | None = None
        self.groups: set[int] = set()

    def log(self) -> str:
        return self.process.log() if self.process else ""

    def start(self) -> None:
        """Start it; return once the server listens and answers /healthz."""
        self.process = LoggedProcess(
            "launcher",
            [sys.executable, os.path.join(self.root, "launcher.py"), *self.args],
            self.log_path,
            cwd=self.root,
            env=self.env,
            start_new_session=True,  # pgid == pid, as the shell gives a foreground job
        )
        self.groups.add(self.process.popen.pid)
        self.process.wait_for(r"Listening at: |Running on http", LAUNCHER_START_SECONDS)
        reply = http_request("GET", f"{self.base_url}/healthz", timeout=LAUNCHER_START_SECONDS)
        assert reply.status_code == 200, self.log()
        table = processes()
        self.groups |= {table[pid][1] for pid in descendants(self.process.popen.pid) if pid in table}

    def wait(self, seconds: float = LAUNCHER_STOP_SECONDS) -> int:
        try:
            return self.process.popen.wait(seconds)
        except subprocess.TimeoutExpired:
            pytest.fail(f"launcher still running {seconds} s after it was told to stop:\n{self.log()}")

    def stop(self, sig=signal.SIGTERM, seconds: float = LAUNCHER_STOP_SECONDS) -> int:
        """Signal the launcher as `kill` would; its exit code."""
        self.process.popen.send_signal(sig)
        return self.wait(seconds)

    def interrupt(self, seconds: float = LAUNCHER_STOP_SECONDS) -> int:
        """Ctrl-C: SIGINT to the terminal's foreground group; the exit code."""
        os.killpg(self.process.popen.pid, signal.SIGINT)
        return self.wait(seconds)

    def kill(self) -> None:
        """Last-resort clean-up: terminate, then kill, every group the launcher started."""
        if self.process is None:
            return
        for sig, grace in ((signal.SIGTERM, LAUNCHER_STOP_SECONDS), (signal.SIGKILL, 5)):
            running = group_processes(self.groups)
            if not running:
                break
            for group in self.groups:
                try:
                    os.killpg(group, sig)
                except ProcessLookupError:
                    pass
            wait_until_gone(running, grace)
        self.process.stop(5)


# --- mail ------------------------------------------------------------------------------------


class SmtpTestServer:
    """A real SMTP server (aiosmtpd) on a fixed loopback port, which a test may stop and start
    again; it keeps every message it accepted, parsed."""

    def __init__(self, port: int, **options):
        self.port = port
        self.options = options
        self.messages = []
        self.recipients = []
        self.arrived = threading.Event()  # set at each accepted message
        self.hold = None  # an Event: while set to one, DATA waits for it (a send caught in the act)
        self.receiving = threading.Event()  # set when a held DATA has started
        self._controller = None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port, **self.options)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    async def handle_DATA(self, server, session, envelope):
        if self.hold is not None:
            self.receiving.set()
            await asyncio.get_running_loop().run_in_executor(None, self.hold.wait, 10)
        self.messages.append(message_from_bytes(envelope.content, policy=policy.default))
        self.recipients.append(list(envelope.rcpt_tos))
        self.arrived.set()
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list:
        """The messages addressed to `address`, oldest first."""
        return [m for m in self.messages if m["To"] == address]


def text_body(message) -> str:
    return message.get_body(("plain",)).get_content()


def html_body(message) -> str:
    return message.get_body(("html",)).get_content()


TOKEN_IN_LINK = re.compile(r"#token=([A-Za-z0-9_-]+)")


def link_token(message) -> str:
    """The token of the link in a mail's text body."""
    found = TOKEN_IN_LINK.search(text_body(message))
    assert found, text_body(message)
    return found.group(1)
