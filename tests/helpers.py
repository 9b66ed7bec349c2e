"""Plain helpers shared by the test modules: constants, envelope assertions, request helpers,
image encoders and helpers for tests that start real servers. Fixtures live in conftest.py."""
from __future__ import annotations

import io
import json
import socket
import time
import urllib.error
import urllib.request
import uuid

import jwt
import pytest
from PIL import Image

TEST_SECRET = "test-secret-key-that-is-long-enough-for-hs256"
PASSWORD = "Str0ng!pass"
WRONG_PASSWORD = "Wr0ng!password"
ACCESS_TOKEN_SECONDS = 15 * 60

ENVELOPE_KEYS = {"message", "data", "error"}
INVALID_FIELDS = "The request has invalid fields."
SESSION_ENDED = "Session has ended or the account is disabled."
REFRESH_INVALID = "Refresh token is invalid or expired."
REFRESH_REUSED = "Refresh token was already used; the session has been ended."
RATE_LIMITED = "Too many requests; try again later."
LOCKED = "Too many failed logins; try again later."


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


def limits(**settings) -> dict:
    """Rate limits on, every limit generous except the ones given."""
    generous = {
        key: "1000 per minute"
        for key in (
            "LOGIN_RATE_LIMIT",
            "LOGIN_ACCOUNT_RATE_LIMIT",
            "SIGNUP_RATE_LIMIT",
            "REFRESH_RATE_LIMIT",
            "REFRESH_ACCOUNT_RATE_LIMIT",
            "PASSWORD_RATE_LIMIT",
            "PASSWORD_ACCOUNT_RATE_LIMIT",
            "COVER_UPLOAD_RATE_LIMIT",
        )
    }
    return {"RATELIMIT_ENABLED": True, **generous, **settings}


# --- the JSON envelope: exact keys ----------------------------------------------------------


def assert_error(response, status: int, error, message: str | None = None, *, contains=False, check_mimetype=True):
    """A failure in the JSON envelope with exactly this status and error, no data, and a message:
    exactly the given one, or (contains=True) one containing it; any non-empty one when not given."""
    assert response.status_code == status, response.get_data(as_text=True)
    if check_mimetype:
        assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) == ENVELOPE_KEYS
    assert body["data"] is None
    assert body["error"] == error
    assert isinstance(body["message"], str) and body["message"]
    if message is not None:
        if contains:
            assert message in body["message"]
        else:
            assert body["message"] == message
    return body


def assert_fields(response, expected: dict[str, str]) -> None:
    """400 naming exactly these fields with exactly these messages."""
    assert_error(response, 400, expected, INVALID_FIELDS)


def assert_field_errors(response, expected: dict[str, str], *, check_mimetype=True):
    """400 naming exactly the expected fields; each message contains its fragment."""
    body = assert_error(response, 400, response.get_json()["error"], INVALID_FIELDS, check_mimetype=check_mimetype)
    assert isinstance(body["error"], dict), body
    assert set(body["error"]) == set(expected), body["error"]
    for field, fragment in expected.items():
        assert fragment in body["error"][field], (field, body["error"][field])
    return body


def assert_ok(response, status: int, message: str) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert body["message"] == message
    assert body["error"] is None
    return body["data"]


def assert_429(response, message: str = RATE_LIMITED) -> int:
    """429 in the JSON envelope with an integer Retry-After of at least a second; returns it."""
    assert_error(response, 429, "Too Many Requests", message)
    retry_after = response.headers.get("Retry-After", "")
    assert retry_after.isdigit(), response.headers
    assert int(retry_after) >= 1
    return int(retry_after)


# --- the JSON envelope: keys in order ----------------------------------------------------------


def envelope(response, status):
    """Assert the status and the JSON envelope; return the body."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert list(body)[:3] == ["message", "data", "error"]
    assert isinstance(body["message"], str) and body["message"]
    return body


def ok(response, status=200):
    body = envelope(response, status)
    assert body["error"] is None
    return body["data"]


def failure(response, status, name):
    body = envelope(response, status)
    assert body["data"] is None
    assert body["error"] == name
    return body


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


def http_request(method: str, url: str, body: dict | None = None, token: str | None = None, headers=None):
    """One HTTP request: (status, headers, parsed JSON body or None); error statuses are answers
    too. Every response is closed."""
    headers = dict(headers or {})
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            status, reply_headers, raw = response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        with error:
            status, reply_headers, raw = error.code, dict(error.headers), error.read()
    return status, reply_headers, (json.loads(raw) if raw else None)


def log_tail(path, chars: int) -> str:
    """The last `chars` characters of a process's log file; empty if there is none yet."""
    try:
        return path.read_text(encoding="utf-8", errors="replace")[-chars:]
    except FileNotFoundError:
        return ""


def fail_if_exited(popen, name: str, log) -> None:
    """Fail the test, showing log(), if the process has exited."""
    if popen.poll() is not None:
        pytest.fail(f"{name} exited with {popen.returncode}:\n{log()}")


def wait_healthy(popen, name: str, base_url: str, log, *, seconds, poll, headers=None, label="") -> None:
    """Poll GET /healthz until it answers 200; fail, showing log(), if the process exits or `seconds` pass."""
    deadline = time.monotonic() + seconds
    while True:
        fail_if_exited(popen, name, log)
        try:
            if http_request("GET", f"{base_url}/healthz", headers=headers)[0] == 200:
                return
        except OSError:  # not listening yet
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"{label}/healthz not 200 within {seconds} s:\n{log()}")
        time.sleep(poll)
