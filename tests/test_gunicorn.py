"""The API under gunicorn, over real HTTP and raw sockets: what only a real server shows.

One gunicorn server (gunicorn.conf.py, three workers) on the test run's SecantusDB server;
its log (gunicorn's lines and the app's) goes to a file the tests read.
"""
from __future__ import annotations

import io
import json
import os
from concurrent.futures import ThreadPoolExecutor
import secrets
import socket
import string
import subprocess
import sys
import time
import uuid

import pytest
from PIL import Image

from app import DEFAULTS
from helpers import PASSWORD, fail_if_exited, free_port, http_request, log_tail, wait_healthy

pytestmark = pytest.mark.e2e

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
START_SECONDS = 30
STOP_SECONDS = 15
LOG_SECONDS = 10
UPLOAD_LIMIT = 50_000
# Several workers, so that concurrent requests really run at once.
WORKERS = 3
# Shaped like an access token; never issued by this server.
JWT_LIKE = "eyJhbGciOiJIUzI1NiIsInR5cCI6ImF0K2p3dCJ9.eyJzdWIiOiJzdG9sZW4ifQ.c2lnbmF0dXJlLXRoYXQtbG9va3MtcmVhbA"


class Server:
    """gunicorn in a subprocess, as `make run` starts it, logging to a file."""

    def __init__(self, database_url: str, tmp, **settings):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp / "gunicorn.log"
        self.covers = tmp / "covers"
        env = dict(os.environ)
        env.update({key: "" for key in DEFAULTS})  # nothing inherited from the shell: defaults
        env.update(
            DATABASE_URL=database_url,
            SECRET_KEY="".join(secrets.choice(string.ascii_letters) for _ in range(48)),
            APP_ENV="production",
            PASSWORD_HASH_TIME_COST="1",
            PASSWORD_HASH_MEMORY_KIB="1024",
            RATELIMIT_ENABLED="false",
            PYTHON_DOTENV_DISABLED="1",
            INSTANCE_PATH=str(tmp / "instance"),
            UPLOAD_FOLDER=str(self.covers),
            GUNICORN_ACCESS_LOG="",
            **settings,
        )
        with open(self.log_path, "ab") as log:
            self.popen = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py", "--workers", str(WORKERS),
                 "--bind", f"127.0.0.1:{self.port}", "app:create_app()"],
                cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            )

    def log(self) -> str:
        return log_tail(self.log_path, 100_000)

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(STOP_SECONDS)
                return
            except subprocess.TimeoutExpired:
                self.popen.kill()
        self.popen.wait()

    def wait_for_log(self, text: str) -> str:
        """The log once it contains `text` (lines are written a moment after the response)."""
        deadline = time.monotonic() + LOG_SECONDS
        while text not in self.log():
            fail_if_exited(self.popen, "gunicorn", self.log)
            if time.monotonic() > deadline:
                pytest.fail(f"{text!r} not logged within {LOG_SECONDS} s:\n{self.log()[-4000:]}")
            time.sleep(0.05)
        return self.log()

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
    running = Server(database_url, tmp_path_factory.mktemp("gunicorn"), MAX_UPLOAD_BYTES=str(UPLOAD_LIMIT))
    try:
        wait_healthy(running.popen, "gunicorn", running.url, running.log, seconds=START_SECONDS, poll=0.1)
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def token(server) -> str:
    email = f"g-{uuid.uuid4().hex[:10]}@example.com"
    status, _, _ = server.call("POST", "/users/", {"name": "Ada Lovelace", "email": email, "password": PASSWORD})
    assert status == 201
    status, _, body = server.call("POST", "/users/login", {"email": email, "password": PASSWORD})
    assert status == 200
    return body["data"]["token"]


# --- the Server header ---------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/healthz", "/no-such-route"])
def test_responses_do_not_name_the_server_software(server, path):
    _, headers, _ = server.call("GET", path)

    assert headers["Server"] == "book-library"


# --- tokens never reach the log --------------------------------------------------------------


def test_a_header_line_without_its_colon_is_logged_without_its_token(server):
    marker = uuid.uuid4().hex
    request = (f"GET /users/?{marker} HTTP/1.1\r\nHost: x\r\nAuthorization Bearer {JWT_LIKE}\r\n"
               f"X-Marker {marker}\r\n\r\n").encode()

    answer = server.raw(request)

    assert answer.startswith(b"HTTP/1.1 400")
    log = server.wait_for_log("Authorization Bearer [REDACTED]")
    assert JWT_LIKE not in log
    assert JWT_LIKE.split(".")[1] not in log  # no part of it either


def test_a_token_in_the_path_is_redacted_from_the_apps_request_line(server, token):
    status, _, _ = server.call("GET", f"/books/{JWT_LIKE}", token=token)

    assert status == 404
    log = server.wait_for_log('"path":"/books/[REDACTED]"')
    assert JWT_LIKE not in log
    assert token not in log


# --- the upload limit is inclusive --------------------------------------------------------------


def book_form_of_size(size: int, title: str) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    cover = io.BytesIO()
    Image.new("RGB", (300, 200), (200, 30, 30)).save(cover, "PNG")

    def part(name, value, extra=""):
        return f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"{extra}\r\n\r\n".encode() + value + b"\r\n"

    head = part("title", title.encode()) + part("category", b"science")
    tail = part("cover_image", cover.getvalue(), '; filename="c.png"') + f"--{boundary}--\r\n".encode()
    padding = size - len(head) - len(tail) - len(part("padding", b""))
    body = head + part("padding", b"x" * padding) + tail
    assert len(body) == size
    return body, f"multipart/form-data; boundary={boundary}"


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize("size, status", [(UPLOAD_LIMIT, b"201"), (UPLOAD_LIMIT + 1, b"413")])
def test_a_body_of_exactly_the_upload_limit_is_accepted_and_one_byte_more_is_413(server, token, size, status, chunked):
    body, content_type = book_form_of_size(size, f"Dune {uuid.uuid4().hex[:8]}")
    head = (f"POST /books/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: {content_type}\r\n").encode()
    if chunked:
        request = head + b"Transfer-Encoding: chunked\r\n\r\n" + b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n"
    else:
        request = head + f"Content-Length: {len(body)}\r\n\r\n".encode() + body

    answer = server.raw(request)

    assert answer.split(b" ", 2)[1] == status, answer[:300]
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"] in (None, "Request Entity Too Large")


# --- concurrent cover updates leave no orphan file ---------------------------------------------


def multipart(fields: dict, cover: bytes | None = None) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    ]
    if cover is not None:
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="cover_image"; filename="c.png"\r\n\r\n'.encode()
            + cover
            + b"\r\n"
        )
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def send_form(server, method: str, path: str, token: str, fields: dict, cover: bytes) -> tuple[int, dict]:
    import urllib.error
    import urllib.request

    body, content_type = multipart(fields, cover)
    request = urllib.request.Request(
        server.url + path, data=body, method=method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": content_type},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.loads(error.read())


def png(colour) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (400, 300), colour).save(out, "PNG")
    return out.getvalue()


def test_concurrent_cover_updates_leave_exactly_the_referenced_file(server, token):
    status, book = send_form(server, "POST", "/books/", token, {"title": f"Race {uuid.uuid4().hex[:6]}",
                                                                "category": "science"}, png((1, 2, 3)))
    assert status == 201, book
    book_id = book["data"]["id"]
    before = set(os.listdir(server.covers))

    for round_ in range(3):
        with ThreadPoolExecutor(max_workers=6) as pool:
            statuses = list(pool.map(
                lambda n: send_form(server, "PUT", f"/books/{book_id}", token, {}, png((round_, n, 9)))[0], range(6)
            ))
        assert statuses == [200] * 6

    _, _, final = server.call("GET", f"/books/{book_id}", token=token)
    current = final["data"]["image_url"].rsplit("/", 1)[1]
    left = set(os.listdir(server.covers)) - (before - {book["data"]["image_url"].rsplit("/", 1)[1]})
    assert left == {current}


# --- refresh from several tabs at once ---------------------------------------------------------


def test_concurrent_refreshes_with_one_token_all_succeed_with_the_same_new_token(server):
    """Browser tabs refreshing at the same moment, each request served by a worker of its own."""
    import threading

    email = f"tabs-{uuid.uuid4().hex[:10]}@example.com"
    assert server.call("POST", "/users/", {"name": "Ada Lovelace", "email": email, "password": PASSWORD})[0] == 201
    login = server.call("POST", "/users/login", {"email": email, "password": PASSWORD})[2]["data"]
    start = threading.Barrier(WORKERS)

    def tab(_):
        start.wait()
        return server.call("POST", "/users/token/refresh", {"refresh_token": login["refresh_token"]})

    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        replies = list(pool.map(tab, range(WORKERS)))

    assert [status for status, _, _ in replies] == [200] * WORKERS, [body for _, _, body in replies]
    assert len({body["data"]["refresh_token"] for _, _, body in replies}) == 1
    for _, _, body in replies:
        assert server.call("GET", "/users/", token=body["data"]["token"])[0] == 200
    status, _, body = server.call("POST", "/users/token/refresh", {"refresh_token": replies[0][2]["data"]["refresh_token"]})
    assert status == 200, body
