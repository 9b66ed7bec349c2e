"""End to end: the README's walk-through against the real server, started the README's way.

`launcher.py` runs in a subprocess with the embedded SecantusDB daemon and gunicorn,
exactly as `make run` does; then `examples/walkthrough.sh` (which the README shows
verbatim) runs against it, and a restart proves that accounts and tokens survive.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

from helpers import PASSWORD, free_port, http_request, log_tail, wait_healthy

pytestmark = pytest.mark.e2e

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "examples", "walkthrough.sh")
README = os.path.join(ROOT, "README.md")
START_MARKER = "<!-- walkthrough:start -->\n"
END_MARKER = "<!-- walkthrough:end -->"
START_SECONDS = 30
STOP_SECONDS = 30
POLL = 0.1


def test_readme_shows_the_walkthrough_script_verbatim():
    with open(README, encoding="utf-8") as handle:
        readme = handle.read()
    with open(SCRIPT, encoding="utf-8") as handle:
        script = handle.read()
    assert readme.count(START_MARKER) == 1 and readme.count(END_MARKER) == 1
    block = readme[readme.index(START_MARKER) + len(START_MARKER) : readme.index(END_MARKER)]
    assert block == "```bash\n" + script + "```\n", "README walk-through differs from examples/walkthrough.sh"


# --- the real server ----------------------------------------------------------


def request(method: str, url: str, body: dict | None = None, token: str | None = None):
    """(status, parsed JSON body or None); HTTP errors are answers too."""
    status, _, parsed = http_request(method, url, body, token)
    return status, parsed


def group_processes(pgid: int) -> dict[int, str]:
    """Live processes (pid -> command line) of a process group."""
    out = subprocess.run(
        ["ps", "-ww", "-eo", "pid=,pgid=,stat=,args="], capture_output=True, text=True, check=True
    ).stdout
    found = {}
    for line in out.splitlines():
        pid, group, stat, args = (line.split(None, 3) + [""])[:4]
        if int(group) == pgid and not stat.startswith("Z"):
            found[int(pid)] = args
    return found


class Launcher:
    """`python launcher.py` in its own process group, logging to a file."""

    def __init__(self, tmp_path):
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.instance = tmp_path / "instance"
        self.log_path = tmp_path / "launcher.log"
        self.env = dict(
            os.environ,
            PORT=str(self.port),
            HOST="127.0.0.1",
            INSTANCE_PATH=str(self.instance),
            UPLOAD_FOLDER=str(tmp_path / "covers"),
            WEB_CONCURRENCY="2",
        )
        # Empty, not absent: a developer's .env must not fill these back in. Empty means
        # "default": the embedded database and a generated key.
        for key in ("DATABASE_URL", "SECRET_KEY", "EMBEDDED_DB_PORT", "APP_ENV"):
            self.env[key] = ""
        self.process: subprocess.Popen | None = None

    def log(self) -> str:
        return log_tail(self.log_path, 6000)

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, os.path.join(ROOT, "launcher.py")],
                cwd=ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # pgid == pid: the daemon and gunicorn join its group
            )
        wait_healthy(self.process, "launcher", self.base_url, self.log, seconds=START_SECONDS, poll=POLL)

    def stop(self) -> int:
        """SIGTERM the launcher as a user's Ctrl-C/kill would; its exit code."""
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            pytest.fail(f"launcher still running {STOP_SECONDS} s after SIGTERM:\n{self.log()}")

    def kill(self) -> None:
        """Last-resort clean-up: terminate, then kill, the whole process group."""
        if self.process is None:
            return
        pgid = self.process.pid
        for sig, grace in ((signal.SIGTERM, STOP_SECONDS), (signal.SIGKILL, 5)):
            if not group_processes(pgid):
                break
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + grace
            while group_processes(pgid) and time.monotonic() < deadline:
                time.sleep(POLL)
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            pass


@pytest.fixture
def launcher(tmp_path):
    server = Launcher(tmp_path)
    try:
        yield server
    finally:
        server.kill()


def test_walkthrough_script_against_the_launched_server(launcher):
    launcher.start()
    result = subprocess.run(
        ["bash", SCRIPT],
        cwd=ROOT,
        env=dict(os.environ, BASE_URL=launcher.base_url),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, (
        f"walkthrough.sh exited {result.returncode}\n--- stdout\n{result.stdout}\n"
        f"--- stderr\n{result.stderr}\n--- server log\n{launcher.log()}"
    )
    assert "Walk-through complete." in result.stdout
    # Responses are shown with tokens and secrets masked; no JWT ("eyJ...") is ever printed.
    assert '"token": "<hidden>"' in result.stdout
    assert '"secret": "<hidden>"' in result.stdout
    assert "eyJ" not in result.stdout + result.stderr, "the script printed a token"


def test_accounts_and_tokens_survive_a_restart(launcher):
    launcher.start()
    base = launcher.base_url
    email = f"durable-{uuid.uuid4().hex[:8]}@example.com"
    status, body = request("POST", f"{base}/users/", {"name": "Grace Hopper", "email": email, "password": PASSWORD})
    assert status == 201, body
    status, body = request("POST", f"{base}/users/login", {"email": email, "password": PASSWORD})
    assert status == 200, body
    token = body["data"]["token"]

    # The launcher's group holds the embedded database and gunicorn (master and workers).
    pgid = launcher.process.pid
    children = group_processes(pgid)
    assert any("secantusd" in args for args in children.values()), children
    assert sum("gunicorn" in args for args in children.values()) >= 3, children  # master + 2 workers

    assert launcher.stop() == 0, launcher.log()
    deadline = time.monotonic() + 5
    while group_processes(pgid) and time.monotonic() < deadline:
        time.sleep(POLL)
    assert group_processes(pgid) == {}, f"left running after the launcher exited: {group_processes(pgid)}"
    key_file = launcher.instance / "secret_key"
    assert key_file.stat().st_mode & 0o777 == 0o600

    launcher.start()  # same INSTANCE_PATH: same database files, same generated key
    status, body = request("GET", f"{base}/users/", token=token)
    assert status == 200, body  # a token issued before the restart still works
    assert body["data"]["email"] == email
    status, body = request("POST", f"{base}/users/login", {"email": email, "password": PASSWORD})
    assert status == 200, body
    assert body["data"]["token"]
