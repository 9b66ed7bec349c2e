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
import uuid
from pathlib import Path

import pytest

from helpers import (
    OMIT,
    PASSWORD,
    LoggedProcess,
    assert_envelope,
    config_for_tests,
    free_port,
    http_request,
    server_env,
    wait_until_gone,
)

pytestmark = pytest.mark.e2e

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "examples", "walkthrough.sh")
README = os.path.join(ROOT, "README.md")
START_MARKER = "<!-- walkthrough:start -->\n"
END_MARKER = "<!-- walkthrough:end -->"
START_SECONDS = 30
STOP_SECONDS = 30
# The settings `make run` starts with: a generated key, the production hash cost, rate limits on.
AS_MAKE_RUNS_IT = dict.fromkeys(
    ["SECRET_KEY", "PASSWORD_HASH_TIME_COST", "PASSWORD_HASH_MEMORY_KIB", "RATELIMIT_ENABLED"], OMIT
)


def test_readme_shows_the_walkthrough_script_verbatim():
    with open(README, encoding="utf-8") as handle:
        readme = handle.read()
    with open(SCRIPT, encoding="utf-8") as handle:
        script = handle.read()
    assert readme.count(START_MARKER) == 1 and readme.count(END_MARKER) == 1
    block = readme[readme.index(START_MARKER) + len(START_MARKER) : readme.index(END_MARKER)]
    assert block == "```bash\n" + script + "```\n", "README walk-through differs from examples/walkthrough.sh"


# --- the real server ----------------------------------------------------------


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
    """`python launcher.py` in its own process group, as `make run` starts it: the embedded database,
    a generated key and every other setting at its default."""

    def __init__(self, tmp_path):
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp_path / "launcher.log"
        config = config_for_tests(tmp_path, **AS_MAKE_RUNS_IT)  # files under tmp_path, the rest as make run
        self.instance = Path(config["INSTANCE_PATH"])
        self.env = server_env(
            config,
            PORT=str(self.port),
            HOST="127.0.0.1",
            WEB_CONCURRENCY="2",
            EMBEDDED_DB_PORT="",
        )
        self.process: LoggedProcess | None = None

    def log(self) -> str:
        return self.process.log() if self.process else ""

    def start(self) -> None:
        """Start it; return once gunicorn listens and a worker has answered."""
        self.process = LoggedProcess(
            "launcher",
            [sys.executable, os.path.join(ROOT, "launcher.py")],
            self.log_path,
            cwd=ROOT,
            env=self.env,
            start_new_session=True,  # pgid == pid: the daemon and gunicorn join its group
        )
        self.process.wait_for(r"Listening at: ", START_SECONDS)
        reply = http_request("GET", f"{self.base_url}/healthz", timeout=START_SECONDS)
        assert assert_envelope(reply, 200, "ok") == {"database": "up"}, self.log()

    def stop(self) -> int:
        """SIGTERM the launcher as a user's Ctrl-C/kill would; its exit code."""
        self.process.popen.send_signal(signal.SIGTERM)
        try:
            return self.process.popen.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            pytest.fail(f"launcher still running {STOP_SECONDS} s after SIGTERM:\n{self.log()}")

    def kill(self) -> None:
        """Last-resort clean-up: terminate, then kill, the whole process group."""
        if self.process is None:
            return
        pgid = self.process.popen.pid
        for sig, grace in ((signal.SIGTERM, STOP_SECONDS), (signal.SIGKILL, 5)):
            running = group_processes(pgid)
            if not running:
                break
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                break
            wait_until_gone(running, grace)
        self.process.stop(5)


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
    reply = http_request("POST", f"{base}/users/", {"name": "Grace Hopper", "email": email, "password": PASSWORD})
    assert_envelope(reply, 201, "Account created.")
    reply = http_request("POST", f"{base}/users/login", {"email": email, "password": PASSWORD})
    token = assert_envelope(reply, 200, "Logged in.")["token"]

    # The launcher's group holds the embedded database and gunicorn (master and workers).
    pgid = launcher.process.popen.pid
    children = group_processes(pgid)
    assert any("secantusd" in args for args in children.values()), children
    assert sum("gunicorn" in args for args in children.values()) >= 3, children  # master + 2 workers

    assert launcher.stop() == 0, launcher.log()
    left = wait_until_gone(group_processes(pgid), 5)  # woken as each one ends
    assert left == set(), f"left running after the launcher exited: {group_processes(pgid)}"
    key_file = launcher.instance / "secret_key"
    assert key_file.stat().st_mode & 0o777 == 0o600

    launcher.start()  # same INSTANCE_PATH: same database files, same generated key
    reply = http_request("GET", f"{base}/users/", token=token)
    assert assert_envelope(reply, 200, "Current user.")["email"] == email  # a token from before the restart works
    reply = http_request("POST", f"{base}/users/login", {"email": email, "password": PASSWORD})
    assert assert_envelope(reply, 200, "Logged in.")["token"]
