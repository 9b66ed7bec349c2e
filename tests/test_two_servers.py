"""Two real API servers on one database agree at once: revocations, refresh-token reuse, rate limits.

One SecantusDB daemon and two separate gunicorn processes (A and B), as two machines
behind a load balancer would run; every request goes over real HTTP.
"""
from __future__ import annotations

import os
import secrets
import string
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field

import pytest
from pymongo import MongoClient
from pymongo.errors import PyMongoError

from app import DEFAULTS
from helpers import (
    PASSWORD,
    REFRESH_INVALID,
    REFRESH_REUSED,
    SESSION_ENDED,
    fail_if_exited,
    free_port,
    http_request,
    log_tail,
    wait_healthy,
)

pytestmark = pytest.mark.e2e

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)
START_SECONDS = 30
STOP_SECONDS = 15
POLL = 0.1
USER_AGENT = {"User-Agent": "two-servers-test"}


@dataclass
class Reply:
    status: int
    headers: dict
    body: dict | None = field(default=None)

    @property
    def message(self):
        return (self.body or {}).get("message")

    @property
    def data(self):
        return (self.body or {}).get("data")


def call(method: str, url: str, body: dict | None = None, token: str | None = None) -> Reply:
    """One HTTP request; error statuses are replies too. Every response is closed."""
    return Reply(*http_request(method, url, body, token, headers=USER_AGENT))


class Process:
    """A child process logging to a file; stopped with terminate, wait, kill."""

    def __init__(self, name: str, args: list[str], log_path, **popen):
        self.name = name
        self.log_path = log_path
        with open(log_path, "ab") as log:
            self.popen = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, **popen
            )

    def log(self) -> str:
        return log_tail(self.log_path, 4000)

    def check_alive(self) -> None:
        fail_if_exited(self.popen, self.name, self.log)

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(STOP_SECONDS)
                return
            except subprocess.TimeoutExpired:
                self.popen.kill()
        self.popen.wait()


def stop_all(processes: list[Process]) -> None:
    for process in reversed(processes):  # servers first, the database last
        process.stop()


@pytest.fixture(scope="module")
def database(tmp_path_factory):
    """A SecantusDB daemon, as `make run` starts it; yields its port."""
    tmp = tmp_path_factory.mktemp("two_servers_db")
    port = free_port()
    daemon = Process(
        "secantusd-py",
        [os.path.join(BIN, "secantusd-py"), "--host", "127.0.0.1", "--port", str(port),
         "--storage-path", str(tmp / "data"), "--log-level", "WARNING"],
        tmp / "secantusd.log",
        cwd=str(tmp),  # no stray secantusd.toml is picked up
    )
    try:
        deadline = time.monotonic() + START_SECONDS
        url = f"mongodb://127.0.0.1:{port}/?directConnection=true"
        with MongoClient(url, serverSelectionTimeoutMS=250) as client:
            while True:
                daemon.check_alive()
                try:
                    client.admin.command("ping")
                    break
                except PyMongoError:
                    if time.monotonic() > deadline:
                        pytest.fail(f"SecantusDB did not answer within {START_SECONDS} s:\n{daemon.log()}")
        yield port
    finally:
        daemon.stop()


@dataclass
class Server:
    name: str
    url: str
    process: Process

    def __call__(self, method: str, path: str, body: dict | None = None, token: str | None = None) -> Reply:
        return call(method, self.url + path, body, token)


def start_servers(database_port: int, tmp, database: str, **settings) -> tuple[list[Process], Server, Server]:
    """Two gunicorn servers, one worker each, sharing the database and the signing key."""
    secret = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(48))
    env = dict(os.environ)
    env.update({key: "" for key in DEFAULTS})  # nothing inherited from the shell: defaults
    env.update(
        DATABASE_URL=f"mongodb://127.0.0.1:{database_port}/{database}?directConnection=true",
        SECRET_KEY=secret,
        APP_ENV="production",
        PASSWORD_HASH_TIME_COST="1",
        PASSWORD_HASH_MEMORY_KIB="1024",
        GUNICORN_ACCESS_LOG="",
        PYTHON_DOTENV_DISABLED="1",
        # No grace for a repeated refresh token: these tests replay one at once and expect theft.
        REFRESH_REUSE_INTERVAL_SECONDS="0",
        **settings,
    )
    processes, servers = [], []
    try:
        for name in ("A", "B"):
            port = free_port()
            folder = tmp / name
            folder.mkdir()
            server_env = dict(
                env, INSTANCE_PATH=str(folder / "instance"), UPLOAD_FOLDER=str(folder / "covers")
            )
            process = Process(
                f"server {name}",
                [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py", "--workers", "1",
                 "--bind", f"127.0.0.1:{port}", "app:create_app()"],
                folder / "gunicorn.log",
                cwd=ROOT,
                env=server_env,
            )
            processes.append(process)
            servers.append(Server(name, f"http://127.0.0.1:{port}", process))
        for server in servers:
            wait_healthy(
                server.process.popen, server.process.name, server.url, server.process.log,
                seconds=START_SECONDS, poll=POLL, headers=USER_AGENT, label=f"server {server.name}: ",
            )
    except BaseException:
        stop_all(processes)
        raise
    return processes, servers[0], servers[1]


@pytest.fixture(scope="module")
def servers(database, tmp_path_factory):
    """Servers A and B with rate limits off."""
    processes, a, b = start_servers(
        database, tmp_path_factory.mktemp("two_servers"), "two_servers", RATELIMIT_ENABLED="false"
    )
    try:
        yield a, b
    finally:
        stop_all(processes)


def new_account(server: Server) -> str:
    email = f"two-{uuid.uuid4().hex[:10]}@example.com"
    reply = server("POST", "/users/", {"name": "Ada Lovelace", "email": email, "password": PASSWORD})
    assert reply.status == 201, reply
    return email


def log_in(server: Server, email: str, password: str = PASSWORD) -> dict:
    reply = server("POST", "/users/login", {"email": email, "password": password})
    assert reply.status == 200, reply
    assert reply.message == "Logged in."
    return reply.data


def assert_reply(reply: Reply, status: int, message: str, error: str | None = None):
    assert reply.status == status, reply
    assert reply.message == message, reply
    if error is not None:
        assert reply.body["error"] == error, reply


# --- revocation seen by the other server ------------------------------------------------------


def test_token_from_a_works_on_b_and_logout_on_b_ends_it_on_a(servers):
    a, b = servers
    email = new_account(a)
    tokens = log_in(a, email)

    reply = b("GET", "/users/", token=tokens["token"])
    assert_reply(reply, 200, "Current user.")
    assert reply.data["email"] == email

    assert b("POST", "/users/logout", token=tokens["token"]).status == 204

    assert_reply(a("GET", "/users/", token=tokens["token"]), 401, SESSION_ENDED, "Unauthorized")
    reply = a("POST", "/users/token/refresh", {"refresh_token": tokens["refresh_token"]})
    assert_reply(reply, 401, REFRESH_INVALID, "Unauthorized")


def test_refresh_token_reuse_on_b_ends_the_session_on_a(servers):
    a, b = servers
    email = new_account(a)
    first = log_in(a, email)
    rotated = a("POST", "/users/token/refresh", {"refresh_token": first["refresh_token"]})
    assert_reply(rotated, 200, "Tokens refreshed.")
    assert_reply(a("GET", "/users/", token=rotated.data["token"]), 200, "Current user.")

    replay = b("POST", "/users/token/refresh", {"refresh_token": first["refresh_token"]})

    assert_reply(replay, 401, REFRESH_REUSED, "Unauthorized")
    assert_reply(a("GET", "/users/", token=rotated.data["token"]), 401, SESSION_ENDED)
    assert_reply(a("GET", "/users/", token=first["token"]), 401, SESSION_ENDED)
    reply = a("POST", "/users/token/refresh", {"refresh_token": rotated.data["refresh_token"]})
    assert_reply(reply, 401, REFRESH_INVALID)


def test_refresh_on_b_rotates_the_token_issued_by_a(servers):
    a, b = servers
    email = new_account(a)
    tokens = log_in(a, email)

    reply = b("POST", "/users/token/refresh", {"refresh_token": tokens["refresh_token"]})

    assert_reply(reply, 200, "Tokens refreshed.")
    assert_reply(a("GET", "/users/", token=reply.data["token"]), 200, "Current user.")
    again = a("POST", "/users/token/refresh", {"refresh_token": tokens["refresh_token"]})
    assert_reply(again, 401, REFRESH_REUSED)


def test_password_change_on_b_ends_the_other_sessions_on_a(servers):
    a, b = servers
    email = new_account(a)
    kept, other = log_in(a, email), log_in(a, email)
    new_password = "N3w!Secret-Lantern"

    reply = b("PUT", "/users/password", {"current_password": PASSWORD, "new_password": new_password},
              token=kept["token"])

    assert_reply(reply, 200, "Password changed.")
    assert_reply(a("GET", "/users/", token=other["token"]), 401, SESSION_ENDED)
    assert_reply(a("GET", "/users/", token=reply.data["token"]), 200, "Current user.")
    assert_reply(a("POST", "/users/login", {"email": email, "password": PASSWORD}), 401,
                 "Invalid email or password.")
    log_in(a, email, new_password)


def test_logout_all_on_a_ends_sessions_made_on_b(servers):
    a, b = servers
    email = new_account(b)
    on_a, on_b = log_in(a, email), log_in(b, email)

    assert a("POST", "/users/logout-all", token=on_a["token"]).status == 204

    assert_reply(b("GET", "/users/", token=on_b["token"]), 401, SESSION_ENDED)
    reply = b("POST", "/users/token/refresh", {"refresh_token": on_b["refresh_token"]})
    assert_reply(reply, 401, REFRESH_INVALID)


# --- rate limits shared by both servers -----------------------------------------------------------


def test_login_rate_limit_is_counted_across_both_servers(database, tmp_path_factory):
    processes, a, b = start_servers(
        database,
        tmp_path_factory.mktemp("two_servers_limited"),
        "two_servers_limited",
        RATELIMIT_ENABLED="true",
        LOGIN_RATE_LIMIT="4 per minute",
    )
    try:
        email = new_account(a)
        statuses = [
            a("POST", "/users/login", {"email": email, "password": PASSWORD}).status,
            a("POST", "/users/login", {"email": email, "password": "Wr0ng!password"}).status,
            b("POST", "/users/login", {"email": email, "password": PASSWORD}).status,
            b("POST", "/users/login", {"email": email, "password": "Wr0ng!password"}).status,
        ]
        assert statuses == [200, 401, 200, 401]

        for server in (a, b):
            reply = server("POST", "/users/login", {"email": email, "password": PASSWORD})
            assert_reply(reply, 429, "Too many requests; try again later.", "Too Many Requests")
            assert reply.body["data"] is None
            assert 1 <= int(reply.headers["Retry-After"]) <= 60, reply.headers
    finally:
        stop_all(processes)
