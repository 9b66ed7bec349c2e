"""A Flask developer's habits, on the real server started as `make run` and `make dev` start it:
Ctrl-C and SIGTERM stop it promptly and quietly, a request in flight is still answered, a taken
port fails at once, and `make dev` reloads an edited module; `flask run` with no database says how
to get one."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import uuid

import pytest

from app import NO_DATABASE
from helpers import (
    PASSWORD,
    ROOT,
    Launcher,
    LoggedProcess,
    assert_envelope,
    config_for_tests,
    free_port,
    http_request,
    server_env,
)

pytestmark = pytest.mark.e2e

# The promise: Ctrl-C after traffic stops the server within 3 seconds.
STOP_SECONDS = 3
# What must never be printed on the way down.
ALARMING = ("Traceback", "Exception ignored", "SIGKILL", "[ERROR]", '"level":"error"', "Worker timeout")


def some_traffic(base_url: str) -> None:
    """Sign up and log in: the database and the rate-limit store are both in use."""
    email = f"habits-{uuid.uuid4().hex[:8]}@example.com"
    body = {"name": "Grace Hopper", "email": email, "password": PASSWORD}
    assert http_request("POST", f"{base_url}/users/", body).status_code == 201
    for _ in range(2):
        login = http_request("POST", f"{base_url}/users/login", {"email": email, "password": PASSWORD})
        assert login.status_code == 200


def assert_quiet(log: str) -> None:
    for marker in ALARMING:
        assert marker not in log, f"{marker!r} printed:\n{log}"


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_make_run_stops_within_3_seconds_after_traffic_and_prints_nothing_alarming(launcher, how):
    launcher.start()
    some_traffic(launcher.base_url)
    code = launcher.interrupt(STOP_SECONDS) if how == "ctrl-c" else launcher.stop(seconds=STOP_SECONDS)
    log = launcher.log()
    assert code == 0, log
    assert "Handling signal: term" in log  # gunicorn's graceful stop, not its quick one
    assert_quiet(log)


def test_a_request_in_flight_when_ctrl_c_arrives_is_answered(launcher):
    launcher.env["WEB_CONCURRENCY"] = "1"  # the one worker is the busy one
    launcher.start()
    body = b'{"email": "nobody@example.com", "password": "Wr0ng!password"}'
    with socket.create_connection(("127.0.0.1", launcher.port), timeout=10) as conn:
        conn.sendall(
            b"POST /users/login HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            b"Expect: 100-continue\r\nContent-Length: %d\r\n\r\n" % len(body)
        )
        # gunicorn answers 100 Continue once a worker has the request: it is in flight.
        assert conn.recv(64).startswith(b"HTTP/1.1 100 Continue")
        os.killpg(launcher.process.popen.pid, signal.SIGINT)  # Ctrl-C
        launcher.process.wait_for(r"Handling signal: term", 10)
        conn.sendall(body)
        reply = b""
        while chunk := conn.recv(65536):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 401 "), reply
    assert b'"message":"Invalid email or password."' in reply
    assert launcher.wait(STOP_SECONDS) == 0
    assert_quiet(launcher.log())


@pytest.mark.parametrize("args, command", [((), "make run"), (("--dev",), "make dev")])
def test_a_taken_port_fails_at_once_naming_port(tmp_path, args, command):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = dict(os.environ, PORT=str(port), HOST="127.0.0.1", INSTANCE_PATH=str(tmp_path), DATABASE_URL="")
        result = subprocess.run(
            [sys.executable, os.path.join(ROOT, "launcher.py"), *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            stdin=subprocess.DEVNULL,
        )
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"launcher: port {port} on 127.0.0.1 is already in use (another server?). "
        f"Stop it, or choose another port: PORT={port + 1} {command}"
    )
    assert not os.path.exists(tmp_path / "secantus"), "the database was started before the port was checked"


# --- make dev ------------------------------------------------------------------------


def project_copy(tmp_path) -> str:
    """The application's files in a folder of the test's own, so that an edit touches only it."""
    copy = tmp_path / "project"
    ignore = shutil.ignore_patterns(".*", "node_modules", "instance", "tests", "bench", "examples", "__pycache__")
    shutil.copytree(ROOT, copy, ignore=ignore)
    return str(copy)


def banner(base_url: str) -> str:
    """The banner's message; the one retry covers a request the old server took as it stopped."""
    for attempt in range(2):
        try:
            reply = http_request("GET", f"{base_url}/")
            break
        except OSError:
            if attempt:
                raise
    assert reply.status_code == 200, reply.get_data(as_text=True)
    return reply.get_json()["message"]


def test_make_dev_reloads_an_edited_module_and_stops_quietly(tmp_path):
    copy = project_copy(tmp_path)
    launcher = Launcher(tmp_path, "--dev", root=copy)
    try:
        launcher.start()
        assert banner(launcher.base_url) == "Book Library API"
        some_traffic(launcher.base_url)
        meta = os.path.join(copy, "api", "meta.py")
        with open(meta, encoding="utf-8") as handle:
            source = handle.read()
        assert source.count('envelope("Book Library API"') == 1
        with open(meta, "w", encoding="utf-8") as handle:
            handle.write(source.replace('envelope("Book Library API"', 'envelope("Book Library API, edited"'))
        # The reloader sees the edit, the old server exits; the new one takes the same socket, so
        # a request made now waits in its queue for the new server.
        launcher.process.wait_for(r"Detected change in .*meta\.py", 30)
        assert banner(launcher.base_url) == "Book Library API, edited"
        assert launcher.interrupt(STOP_SECONDS) == 0
        log = launcher.log()
        assert "Debugger is active" not in log
        assert_quiet(log)
    finally:
        launcher.kill()


# --- flask run, as Flask's tutorial starts an app ----------------------------------------------


def test_flask_run_without_a_database_answers_503_saying_how_to_start_one(tmp_path):
    port = free_port()
    server = LoggedProcess(
        "flask run",
        [sys.executable, "-m", "flask", "--app", "app", "run", "--port", str(port)],
        tmp_path / "flask.log",
        cwd=ROOT,
        env=server_env(config_for_tests(tmp_path, DATABASE_URL=""), FLASK_SKIP_DOTENV="1"),
    )
    try:
        server.wait_for(r"Running on http", 30)
        reply = http_request("GET", f"http://127.0.0.1:{port}/books/")
        assert_envelope(reply, 503, NO_DATABASE, "Service Unavailable")
        assert server.log().count(NO_DATABASE) == 1
    finally:
        server.stop(10)
