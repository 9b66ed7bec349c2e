"""Chunked request bodies that gunicorn cannot read (a bad chunk size, a chunk without its CRLF, a
body that ends early), sent as raw bytes to the server as `make run` starts it: 400 in the JSON
envelope on every route that reads a body, and nothing logged at error level."""

from __future__ import annotations

import json
import re
import socket
import urllib.request
import uuid

import pytest

from helpers import PASSWORD, Launcher, Reply, assert_envelope, http_request, image_bytes

pytestmark = pytest.mark.e2e

MALFORMED = "The request body is malformed."
REPLY_SECONDS = 10
LOG_SECONDS = 10
# What an error-level line looks like: gunicorn's own, the app's JSON lines, a traceback.
ERROR_LINE = re.compile(r"\[(ERROR|CRITICAL)\]|\"level\":\"(error|critical)\"|Traceback")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One server for the module, started as the `launcher` fixture starts it; always stopped."""
    running = Launcher(tmp_path_factory.mktemp("malformed"))
    try:
        running.start()
        yield running
    finally:
        running.kill()


@pytest.fixture(scope="module")
def token(server) -> str:
    email = f"chunks-{uuid.uuid4().hex[:8]}@example.com"
    signup = {"name": "Ada Lovelace", "email": email, "password": PASSWORD}
    assert_envelope(http_request("POST", f"{server.base_url}/users/", signup), 201, "Account created.")
    login = http_request("POST", f"{server.base_url}/users/login", {"email": email, "password": PASSWORD})
    return assert_envelope(login, 200, "Logged in.")["token"]


def multipart(fields: dict, cover: bytes | None = None) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    ]
    if cover is not None:
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="cover_image"; filename="c.png"\r\n'
            f"Content-Type: image/png\r\n\r\n".encode()
            + cover
            + b"\r\n"
        )
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


@pytest.fixture(scope="module")
def book_id(server, token) -> str:
    body, content_type = multipart({"title": "Dune", "category": "science"}, image_bytes())
    request = urllib.request.Request(
        f"{server.base_url}/books/",
        data=body,
        method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": content_type},
    )
    with urllib.request.urlopen(request, timeout=REPLY_SECONDS) as response:
        assert response.status == 201
        return json.loads(response.read())["data"]["id"]


# (method, path, whether it needs the token, content type, a well-formed body); a multipart boundary is
# fixed here so that the body and its content type agree.
FORM = multipart({"title": "Dune Messiah", "category": "science"}, image_bytes(size=(20, 20)))
ROUTES = {
    "login": ("POST", "/users/login", False, "application/json", b'{"email": "a@example.com", "password": "x"}'),
    "sign-up": (
        "POST",
        "/users/",
        False,
        "application/json",
        b'{"name": "Ada Lovelace", "email": "b@example.com", "password": "Str0ng!pass"}',
    ),
    "forgot": ("POST", "/users/password/forgot", False, "application/json", b'{"email": "c@example.com"}'),
    "create book": ("POST", "/books/", True, FORM[1], FORM[0]),
    "update book": ("PUT", "/books/{book_id}", True, "application/json", b'{"title": "Children of Dune"}'),
}


def bad_chunk_size(body: bytes) -> bytes:
    return b"zz\r\n" + body + b"\r\n0\r\n\r\n"


def bad_chunk_size_then_more(body: bytes) -> bytes:
    """Unread bytes left behind when the server answers: closing at once would reset the connection,
    and the client could lose the answer."""
    return b"zz\r\n" + body + b"x" * 48 * 1024 + b"\r\n0\r\n\r\n"


def missing_chunk_terminator(body: bytes) -> bytes:
    return b"%x\r\n" % len(body) + body + b"XX0\r\n\r\n"


def ends_early(body: bytes) -> bytes:
    """A chunk that announces more than comes; the client then closes its side."""
    return b"%x\r\n" % (len(body) + 100) + body


MALFORMATIONS = {
    "bad chunk size": bad_chunk_size,
    "bad chunk size, 48 KiB behind it": bad_chunk_size_then_more,
    "missing chunk terminator": missing_chunk_terminator,
    "body ends early": ends_early,
}


def exchange(port: int, request: bytes) -> Reply:
    """Send the bytes, close the sending side (a body cut short ends there), read the answer to the end:
    after a body it could not read, the server must close the connection itself."""
    with socket.create_connection(("127.0.0.1", port), timeout=REPLY_SECONDS) as sock:
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in header_lines)
    return Reply(int(status_line.split()[1]), headers, body[: int(headers.get("Content-Length", len(body)))])


@pytest.mark.parametrize("malform", MALFORMATIONS.values(), ids=MALFORMATIONS.keys())
@pytest.mark.parametrize("route", ROUTES.values(), ids=ROUTES.keys())
def test_a_chunked_body_the_server_cannot_read_is_400_and_no_error_is_logged(server, token, book_id, route, malform):
    method, path, authorized, content_type, body = route
    request_id = uuid.uuid4().hex
    head = (
        f"{method} {path.format(book_id=book_id)} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
        f"Transfer-Encoding: chunked\r\nX-Request-ID: {request_id}\r\n"
        + (f"Authorization: Bearer {token}\r\n" if authorized else "")
        + "\r\n"
    ).encode()
    logged_before = len(server.process.log(10**8))

    reply = exchange(server.port, head + malform(body))

    assert_envelope(reply, 400, MALFORMED, "Bad Request")
    server.process.wait_for(rf'"request_id":"{request_id}"', LOG_SECONDS)  # the request's own line, the last
    logged = server.process.log(10**8)[logged_before:]
    assert not ERROR_LINE.search(logged), logged


# --- requests gunicorn refuses before the app sees them -------------------------------------------

SERVER_REFUSED = {
    "a request line over the limit": (
        b"GET /books/?category=" + b"x" * 5000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        414,
        "The request line is too long.",
        "URI Too Long",
    ),
    "a header field over the limit": (
        b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"y" * 9000 + b"\r\n\r\n",
        431,
        "The request's header fields are too large.",
        "Request Header Fields Too Large",
    ),
    "a malformed request line": (b"GET\r\n\r\n", 400, "The request is malformed.", "Bad Request"),
}


@pytest.mark.parametrize("case", SERVER_REFUSED, ids=list(SERVER_REFUSED))
def test_what_gunicorn_refuses_is_answered_in_the_json_envelope(server, case):
    request, status, message, error = SERVER_REFUSED[case]
    reply = exchange(server.port, request)
    assert_envelope(reply, status, message, error)
    assert b"<html" not in reply.raw
