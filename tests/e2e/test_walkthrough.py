"""End to end: the README's walk-through against the real server, started the README's way.

`launcher.py` runs in a subprocess with the embedded SecantusDB daemon and gunicorn,
exactly as `make run` does; then `examples/walkthrough.sh` (which the README links)
runs against it, and a restart proves that accounts and tokens survive.
"""

from __future__ import annotations

import os
import subprocess
import uuid

import pytest

from helpers import PASSWORD, ROOT, assert_envelope, descendants, group_processes, http_request, wait_until_gone

pytestmark = pytest.mark.e2e

SCRIPT = os.path.join(ROOT, "examples", "walkthrough.sh")
README = os.path.join(ROOT, "README.md")


def test_readme_links_the_walkthrough_script():
    with open(README, encoding="utf-8") as handle:
        readme = handle.read()
    assert "](examples/walkthrough.sh)" in readme, "the README must link examples/walkthrough.sh"
    assert "\nbash examples/walkthrough.sh\n" in readme, "the README must show how to run it, as the test below does"


# --- the real server ----------------------------------------------------------


def test_walkthrough_script_against_the_launched_server(launcher):
    launcher.env["MAIL_SENDER"] = "true"  # as `make run`: mails become files, the script reads a link there
    launcher.start()
    result = subprocess.run(
        ["bash", SCRIPT],
        cwd=ROOT,
        env=dict(os.environ, BASE_URL=launcher.base_url, MAIL_DIR=str(launcher.instance / "mail")),
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

    # The launcher started the embedded database and gunicorn (master and workers).
    children = descendants(launcher.process.popen.pid)
    assert any("secantusd" in args for args in children.values()), children
    assert sum("gunicorn" in args for args in children.values()) >= 3, children  # master + 2 workers

    assert launcher.stop() == 0, launcher.log()
    left = wait_until_gone(group_processes(launcher.groups), 5)  # woken as each one ends
    assert left == set(), f"left running after the launcher exited: {group_processes(launcher.groups)}"
    key_file = launcher.instance / "secret_key"
    assert key_file.stat().st_mode & 0o777 == 0o600

    launcher.start()  # same INSTANCE_PATH: same database files, same generated key
    reply = http_request("GET", f"{base}/users/", token=token)
    assert assert_envelope(reply, 200, "Current user.")["email"] == email  # a token from before the restart works
    reply = http_request("POST", f"{base}/users/login", {"email": email, "password": PASSWORD})
    assert assert_envelope(reply, 200, "Logged in.")["token"]
