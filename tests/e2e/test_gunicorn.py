"""The API under gunicorn, over real HTTP and raw sockets: what only a real server shows.

One gunicorn server (gunicorn.conf.py, three workers, so that concurrent requests really run
at once) on the test run's SecantusDB server; its output (gunicorn's lines and the app's)
is copied line by line, and a test waits for the line it needs.
"""

from __future__ import annotations

import io
import json
import re
import socket
import sys
import threading
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from PIL import Image

from helpers import (
    PASSWORD,
    ROOT,
    LoggedProcess,
    assert_envelope,
    config_for_tests,
    free_port,
    http_request,
    server_env,
)

pytestmark = pytest.mark.e2e

START_SECONDS = 30
STOP_SECONDS = 15
LOG_SECONDS = 10
UPLOAD_LIMIT = 50_000
WORKERS = 3
# Shaped like an access token; never issued by this server.
JWT_LIKE = "eyJhbGciOiJIUzI1NiIsInR5cCI6ImF0K2p3dCJ9.eyJzdWIiOiJzdG9sZW4ifQ.c2lnbmF0dXJlLXRoYXQtbG9va3MtcmVhbA"


class Server:
    """gunicorn in a subprocess, started as `make run` starts it."""

    def __init__(self, database_url: str, tmp: Path, **settings):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.covers = tmp / "covers"
        config = config_for_tests(tmp, DATABASE_URL=database_url, APP_ENV="production", PUBLIC_URL=self.url, **settings)
        self.process = LoggedProcess(
            "gunicorn",
            [
                sys.executable,
                "-m",
                "gunicorn",
                "--config",
                "gunicorn.conf.py",
                "--workers",
                str(WORKERS),
                "--bind",
                f"127.0.0.1:{self.port}",
                "app:create_app()",
            ],
            tmp / "gunicorn.log",
            cwd=ROOT,
            env=server_env(config, GUNICORN_ACCESS_LOG=""),
        )

    def wait_ready(self) -> None:
        self.process.wait_for(r"Listening at: ", START_SECONDS)
        reply = http_request("GET", f"{self.url}/healthz", timeout=START_SECONDS)
        assert assert_envelope(reply, 200, "ok") == {"database": "up"}, self.process.log()

    def raw(self, request: bytes) -> bytes:
        """Send raw bytes; the whole answer (the server closes the connection)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as sock:
            sock.sendall(request)
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks)

    def call(self, method: str, path: str, body: dict | None = None, token: str | None = None):
        return http_request(method, self.url + path, body, token)


@pytest.fixture(scope="module")
def server(secantus_uri, tmp_path_factory):
    database_url = secantus_uri.rstrip("/") + f"/gunicorn_{uuid.uuid4().hex[:8]}"
    running = Server(database_url, tmp_path_factory.mktemp("gunicorn"), MAX_UPLOAD_BYTES=UPLOAD_LIMIT)
    try:
        running.wait_ready()
        yield running
    finally:
        running.process.stop(STOP_SECONDS)


def new_login(server) -> dict:
    email = f"g-{uuid.uuid4().hex[:10]}@example.com"
    assert_envelope(
        server.call("POST", "/users/", {"name": "Ada Lovelace", "email": email, "password": PASSWORD}),
        201,
        "Account created.",
    )
    return assert_envelope(
        server.call("POST", "/users/login", {"email": email, "password": PASSWORD}), 200, "Logged in."
    )


@pytest.fixture(scope="module")
def token(server) -> str:
    return new_login(server)["token"]


# --- the Server header ---------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/healthz", "/no-such-route"])
def test_responses_do_not_name_the_server_software(server, path):
    reply = server.call("GET", path)

    assert reply.headers["Server"] == "book-library"


# --- tokens never reach the log --------------------------------------------------------------


def test_a_header_line_without_its_colon_is_logged_without_its_token(server):
    marker = uuid.uuid4().hex
    request = f"GET /users/?{marker} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization {marker} Bearer {JWT_LIKE}\r\n\r\n"

    answer = server.raw(request.encode())

    assert answer.startswith(b"HTTP/1.1 400")
    line = server.process.wait_for(rf"Invalid HTTP Header: .*{marker}.*", LOG_SECONDS).group(0)
    assert line.endswith(f"'Authorization {marker} Bearer [REDACTED]'")
    assert JWT_LIKE.split(".")[1] not in server.process.log(10**7)  # no part of it, anywhere


def test_a_token_in_the_path_is_redacted_from_the_apps_request_line(server, token):
    reply = server.call("GET", f"/books/{JWT_LIKE}", token=token)

    assert reply.status_code == 404
    server.process.wait_for(re.escape('"path":"/books/[REDACTED]"'), LOG_SECONDS)
    log = server.process.log(10**7)
    assert JWT_LIKE not in log
    assert token not in log


# --- the upload limit is inclusive --------------------------------------------------------------


def png(colour=(200, 30, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (400, 300), colour).save(out, "PNG")
    return out.getvalue()


def multipart(fields: dict, cover: bytes | None = None, pad_to: int | None = None) -> tuple[bytes, str]:
    """A form (and a cover), optionally padded with an extra field to exactly pad_to bytes."""
    boundary = uuid.uuid4().hex

    def part(name, value: bytes, extra=""):
        return (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"{extra}\r\n\r\n'.encode() + value + b"\r\n"
        )

    head = b"".join(part(name, str(value).encode()) for name, value in fields.items())
    tail = (
        part("cover_image", cover, '; filename="c.png"') if cover is not None else b""
    ) + f"--{boundary}--\r\n".encode()
    if pad_to is not None:
        head += part("padding", b"x" * (pad_to - len(head) - len(tail) - len(part("padding", b""))))
    body = head + tail
    assert pad_to is None or len(body) == pad_to
    return body, f"multipart/form-data; boundary={boundary}"


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize("size, status", [(UPLOAD_LIMIT, b"201"), (UPLOAD_LIMIT + 1, b"413")])
def test_a_body_of_exactly_the_upload_limit_is_accepted_and_one_byte_more_is_413(server, token, size, status, chunked):
    fields = {"title": f"Dune {uuid.uuid4().hex[:8]}", "category": "science"}
    body, content_type = multipart(fields, png(), pad_to=size)
    head = (
        f"POST /books/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: {content_type}\r\n"
    ).encode()
    if chunked:
        request = head + b"Transfer-Encoding: chunked\r\n\r\n" + b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n"
    else:
        request = head + f"Content-Length: {len(body)}\r\n\r\n".encode() + body

    answer = server.raw(request)

    assert answer.split(b" ", 2)[1] == status, answer[:300]
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"] in (None, "Request Entity Too Large")


# --- concurrent cover updates leave no orphan file ---------------------------------------------


def send_form(server, method: str, path: str, token: str, fields: dict, cover: bytes):
    body, content_type = multipart(fields, cover)
    request = urllib.request.Request(
        server.url + path,
        data=body,
        method=method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": content_type},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.loads(error.read())


def test_concurrent_cover_updates_leave_exactly_the_referenced_file(server, token):
    fields = {"title": f"Race {uuid.uuid4().hex[:6]}", "category": "science"}
    status, book = send_form(server, "POST", "/books/", token, fields, png((1, 2, 3)))
    assert status == 201, book
    book_id, first_file = book["data"]["id"], book["data"]["image_url"].rsplit("/", 1)[1]
    others = {name for name in server.covers.iterdir()} - {server.covers / first_file}

    for round_ in range(3):
        start = threading.Barrier(6)

        def update(n, round_=round_, start=start):
            start.wait()
            return send_form(server, "PUT", f"/books/{book_id}", token, {}, png((round_, n, 9)))[0]

        with ThreadPoolExecutor(max_workers=6) as pool:
            assert list(pool.map(update, range(6))) == [200] * 6

    current = server.call("GET", f"/books/{book_id}", token=token).data["image_url"].rsplit("/", 1)[1]
    assert {path.name for path in set(server.covers.iterdir()) - others} == {current}


# --- refresh from several tabs at once ---------------------------------------------------------


def test_concurrent_refreshes_with_one_token_all_succeed_with_the_same_new_token(server):
    """Browser tabs refreshing at the same moment, each request served by a worker of its own."""
    login = new_login(server)
    start = threading.Barrier(WORKERS)

    def tab(_):
        start.wait()
        return server.call("POST", "/users/token/refresh", {"refresh_token": login["refresh_token"]})

    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        replies = list(pool.map(tab, range(WORKERS)))

    tokens = [assert_envelope(reply, 200, "Tokens refreshed.") for reply in replies]
    assert len({data["refresh_token"] for data in tokens}) == 1
    for data in tokens:
        assert_envelope(server.call("GET", "/users/", token=data["token"]), 200, "Current user.")
    again = server.call("POST", "/users/token/refresh", {"refresh_token": tokens[0]["refresh_token"]})
    assert_envelope(again, 200, "Tokens refreshed.")
