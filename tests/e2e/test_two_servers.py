"""Two real API servers on one database agree at once: revocations, refresh-token reuse, rate limits,
and covers kept in GridFS.

One SecantusDB daemon and two separate gunicorn processes (A and B), as two machines
behind a load balancer would run; every request goes over real HTTP.
"""

from __future__ import annotations

import io
import os
import secrets
import string
import sys
import urllib.request
import uuid
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest
from PIL import Image

from helpers import (
    COVER_NOT_FOUND,
    PASSWORD,
    RATE_LIMITED,
    REFRESH_INVALID,
    REFRESH_REUSED,
    ROOT,
    SESSION_ENDED,
    WRONG_CREDENTIALS,
    LoggedProcess,
    Reply,
    assert_429,
    assert_envelope,
    config_for_tests,
    free_port,
    http_request,
    server_env,
)

pytestmark = pytest.mark.e2e

BIN = os.path.dirname(sys.executable)
START_SECONDS = 30
STOP_SECONDS = 15
USER_AGENT = {"User-Agent": "two-servers-test"}
TOKEN_CREATED = "Token created. Copy it now: it is not shown again."
TOKEN_REVOKED = "Token has been revoked or does not exist, or the account is disabled."


def call(method: str, url: str, body: dict | None = None, token: str | None = None) -> Reply:
    """One HTTP request; error statuses are replies too. Every response is closed."""
    return http_request(method, url, body, token, headers=USER_AGENT)


def stop_all(processes: list[LoggedProcess]) -> None:
    for process in reversed(processes):  # servers first, the database last
        process.stop(STOP_SECONDS)


@pytest.fixture(scope="module")
def database(tmp_path_factory):
    """A SecantusDB daemon, as `make run` starts it; yields its port once it says it is listening."""
    tmp = tmp_path_factory.mktemp("two_servers_db")
    port = free_port()
    daemon = LoggedProcess(
        "secantusd-py",
        [
            os.path.join(BIN, "secantusd-py"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--storage-path",
            str(tmp / "data"),
            "--log-level",
            "INFO",
        ],
        tmp / "secantusd.log",
        cwd=str(tmp),  # no stray secantusd.toml is picked up
    )
    try:
        daemon.wait_for(rf"listening on 127\.0\.0\.1:{port}\b", START_SECONDS)
        yield port
    finally:
        daemon.stop(STOP_SECONDS)


@dataclass
class Server:
    name: str
    url: str
    process: LoggedProcess

    def __call__(self, method: str, path: str, body: dict | None = None, token: str | None = None) -> Reply:
        return call(method, self.url + path, body, token)

    def wait_ready(self) -> None:
        """Wait for gunicorn to say it is listening, then for the first answer (a worker loads the app)."""
        self.process.wait_for(r"Listening at: ", START_SECONDS)
        reply = http_request("GET", f"{self.url}/healthz", headers=USER_AGENT, timeout=START_SECONDS)
        assert assert_envelope(reply, 200, "ok") == {"database": "up"}, self.process.log()


def start_servers(database_port: int, tmp, database: str, **settings) -> tuple[list[LoggedProcess], Server, Server]:
    """Two gunicorn servers, one worker each, sharing the database and the signing key."""
    secret = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(48))
    processes, servers = [], []
    try:
        for name in ("A", "B"):
            port = free_port()
            folder = tmp / name
            folder.mkdir()
            config = config_for_tests(
                folder,
                DATABASE_URL=f"mongodb://127.0.0.1:{database_port}/{database}?directConnection=true",
                SECRET_KEY=secret,
                APP_ENV="production",
                PUBLIC_URL=f"http://127.0.0.1:{port}",
                # No grace for a repeated refresh token: these tests replay one at once and expect theft.
                REFRESH_REUSE_INTERVAL_SECONDS=0,
                **settings,
            )
            process = LoggedProcess(
                f"server {name}",
                [
                    sys.executable,
                    "-m",
                    "gunicorn",
                    "--config",
                    "gunicorn.conf.py",
                    "--workers",
                    "1",
                    "--bind",
                    f"127.0.0.1:{port}",
                    "app:create_app()",
                ],
                folder / "gunicorn.log",
                cwd=ROOT,
                env=server_env(config, GUNICORN_ACCESS_LOG=""),
            )
            processes.append(process)
            servers.append(Server(name, f"http://127.0.0.1:{port}", process))
        for server in servers:
            server.wait_ready()
    except BaseException:
        stop_all(processes)
        raise
    return processes, servers[0], servers[1]


@pytest.fixture(scope="module")
def servers(database, tmp_path_factory):
    """Servers A and B with rate limits off."""
    processes, a, b = start_servers(database, tmp_path_factory.mktemp("two_servers"), "two_servers")
    try:
        yield a, b
    finally:
        stop_all(processes)


def new_account(server: Server) -> str:
    email = f"two-{uuid.uuid4().hex[:10]}@example.com"
    reply = server("POST", "/users/", {"name": "Ada Lovelace", "email": email, "password": PASSWORD})
    assert_envelope(reply, 201, "Account created.")
    return email


def log_in(server: Server, email: str, password: str = PASSWORD) -> dict:
    return assert_envelope(server("POST", "/users/login", {"email": email, "password": password}), 200, "Logged in.")


# --- revocation seen by the other server ------------------------------------------------------


def test_token_from_a_works_on_b_and_logout_on_b_ends_it_on_a(servers):
    a, b = servers
    email = new_account(a)
    tokens = log_in(a, email)

    reply = b("GET", "/users/", token=tokens["token"])
    assert_envelope(reply, 200, "Current user.")
    assert reply.data["email"] == email

    assert b("POST", "/users/logout", token=tokens["token"]).status_code == 204

    assert_envelope(a("GET", "/users/", token=tokens["token"]), 401, SESSION_ENDED, "Unauthorized")
    reply = a("POST", "/users/token/refresh", {"refresh_token": tokens["refresh_token"]})
    assert_envelope(reply, 401, REFRESH_INVALID, "Unauthorized")


def test_refresh_token_reuse_on_b_ends_the_session_on_a(servers):
    a, b = servers
    email = new_account(a)
    first = log_in(a, email)
    rotated = a("POST", "/users/token/refresh", {"refresh_token": first["refresh_token"]})
    assert_envelope(rotated, 200, "Tokens refreshed.")
    assert_envelope(a("GET", "/users/", token=rotated.data["token"]), 200, "Current user.")

    replay = b("POST", "/users/token/refresh", {"refresh_token": first["refresh_token"]})

    assert_envelope(replay, 401, REFRESH_REUSED, "Unauthorized")
    assert_envelope(a("GET", "/users/", token=rotated.data["token"]), 401, SESSION_ENDED, "Unauthorized")
    assert_envelope(a("GET", "/users/", token=first["token"]), 401, SESSION_ENDED, "Unauthorized")
    reply = a("POST", "/users/token/refresh", {"refresh_token": rotated.data["refresh_token"]})
    assert_envelope(reply, 401, REFRESH_INVALID, "Unauthorized")


def test_refresh_on_b_rotates_the_token_issued_by_a(servers):
    a, b = servers
    email = new_account(a)
    tokens = log_in(a, email)

    reply = b("POST", "/users/token/refresh", {"refresh_token": tokens["refresh_token"]})

    assert_envelope(reply, 200, "Tokens refreshed.")
    assert_envelope(a("GET", "/users/", token=reply.data["token"]), 200, "Current user.")
    again = a("POST", "/users/token/refresh", {"refresh_token": tokens["refresh_token"]})
    assert_envelope(again, 401, REFRESH_REUSED, "Unauthorized")


def test_password_change_on_b_ends_the_other_sessions_on_a(servers):
    a, b = servers
    email = new_account(a)
    kept, other = log_in(a, email), log_in(a, email)
    new_password = "N3w!Secret-Lantern"

    reply = b(
        "PUT", "/users/password", {"current_password": PASSWORD, "new_password": new_password}, token=kept["token"]
    )

    assert_envelope(reply, 200, "Password changed.")
    assert_envelope(a("GET", "/users/", token=other["token"]), 401, SESSION_ENDED, "Unauthorized")
    assert_envelope(a("GET", "/users/", token=reply.data["token"]), 200, "Current user.")
    old_password = a("POST", "/users/login", {"email": email, "password": PASSWORD})
    assert_envelope(old_password, 401, WRONG_CREDENTIALS, "Unauthorized")
    log_in(a, email, new_password)


def test_logout_all_on_a_ends_sessions_made_on_b(servers):
    a, b = servers
    email = new_account(b)
    on_a, on_b = log_in(a, email), log_in(b, email)

    assert a("POST", "/users/logout-all", token=on_a["token"]).status_code == 204

    assert_envelope(b("GET", "/users/", token=on_b["token"]), 401, SESSION_ENDED, "Unauthorized")
    reply = b("POST", "/users/token/refresh", {"refresh_token": on_b["refresh_token"]})
    assert_envelope(reply, 401, REFRESH_INVALID, "Unauthorized")


# --- rate limits shared by both servers -----------------------------------------------------------


def test_a_personal_access_token_revoked_on_a_is_refused_by_b_at_once(servers):
    a, b = servers
    email = new_account(a)
    login = log_in(a, email)
    body = {"name": "backup", "scopes": ["books:read"], "password": PASSWORD}
    created = assert_envelope(a("POST", "/users/tokens", body, token=login["token"]), 201, TOKEN_CREATED)
    assert_envelope(b("GET", "/books/", token=created["token"]), 200, "Books.")
    assert a("DELETE", f"/users/tokens/{created['id']}", token=login["token"]).status_code == 204
    reply = b("GET", "/books/", token=created["token"])
    assert_envelope(reply, 401, TOKEN_REVOKED, "Unauthorized")
    assert 'error="invalid_token"' in reply.headers["WWW-Authenticate"]


def test_login_rate_limit_is_counted_across_both_servers(database, tmp_path_factory):
    processes, a, b = start_servers(
        database,
        tmp_path_factory.mktemp("two_servers_limited"),
        "two_servers_limited",
        RATELIMIT_ENABLED=True,
        LOGIN_RATE_LIMIT="4 per minute",
    )
    try:
        email = new_account(a)
        right, wrong = {"email": email, "password": PASSWORD}, {"email": email, "password": "Wr0ng!password"}
        for server in (a, b):
            assert_envelope(server("POST", "/users/login", right), 200, "Logged in.")
            assert_envelope(server("POST", "/users/login", wrong), 401, WRONG_CREDENTIALS, "Unauthorized")

        for server in (a, b):
            reply = server("POST", "/users/login", right)
            assert assert_429(reply, RATE_LIMITED) <= 60, reply.headers
    finally:
        stop_all(processes)


# --- covers in GridFS, served by either server ---------------------------------------------------


def send_cover(server: Server, method: str, path: str, token: str, fields: dict, cover: bytes) -> Reply:
    """A multipart form with a cover file, as a browser's FormData sends it."""
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'.encode()
        for key, value in fields.items()
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="cover_image"; filename="c.png"\r\n'
        "Content-Type: image/png\r\n\r\n".encode()
        + cover
        + b"\r\n"
    )
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    headers = {
        **USER_AGENT,
        "Authorization": f"Bearer {token}",
        "Content-Type": f"multipart/form-data; boundary={boundary}",
    }
    request = urllib.request.Request(server.url + path, data=body, method=method, headers=headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        return Reply(response.status, dict(response.headers), response.read())


def fetch_cover(server: Server, image_url: str) -> Reply:
    """A cover fetched from this server, whichever server made its URL."""
    return http_request("GET", server.url + urlsplit(image_url).path, headers=USER_AGENT)


def png(size: int, color: str) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (size, size), color).save(out, "PNG")
    return out.getvalue()


def test_covers_in_gridfs_are_served_by_both_servers_and_replaced_on_either(database, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("two_servers_gridfs")
    processes, a, b = start_servers(database, tmp, "two_servers_gridfs", COVER_STORAGE="gridfs")
    try:
        token = log_in(a, new_account(a))["token"]
        created = send_cover(a, "POST", "/books/", token, {"title": "Dune", "category": "science"}, png(40, "red"))
        old_url = assert_envelope(created, 201, "Book created.")["image_url"]

        served = fetch_cover(b, old_url)
        assert (served.status_code, served.mimetype) == (200, "image/png")
        assert fetch_cover(a, old_url).raw == served.raw

        replaced = send_cover(b, "PUT", f"/books/{created.data['id']}", token, {}, png(60, "blue"))
        new_url = assert_envelope(replaced, 200, "Book updated.")["image_url"]

        for server in (a, b):
            assert_envelope(fetch_cover(server, old_url), 404, COVER_NOT_FOUND, "Not Found")
            new = fetch_cover(server, new_url)
            assert (new.status_code, new.mimetype) == (200, "image/png")
        # Nothing of it on either server's disk.
        assert [path.name for path in tmp.rglob("*.png")] == []
    finally:
        stop_all(processes)
