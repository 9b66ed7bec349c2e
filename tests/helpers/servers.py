"""Real servers in subprocesses: free ports, HTTP requests, processes whose output a test waits
for, and the launcher (`make run`, `make dev`)."""

from __future__ import annotations

import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from helpers.config import OMIT, config_for_tests, server_env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Reply:
    """A real server's answer, read the way a Flask test response is, so assert_envelope takes both."""

    status_code: int
    headers: dict
    raw: bytes

    @property
    def mimetype(self) -> str:
        content_type = next((v for k, v in self.headers.items() if k.lower() == "content-type"), "")
        return content_type.split(";")[0].strip()

    def get_json(self):
        return json.loads(self.raw) if self.raw else None

    def get_data(self, as_text=False):
        return self.raw.decode("utf-8", "replace") if as_text else self.raw

    @property
    def data(self):
        return (self.get_json() or {}).get("data")


def http_request(
    method: str, url: str, body: dict | None = None, token: str | None = None, headers=None, timeout: float = 10
) -> Reply:
    """One HTTP request; error statuses are replies too. Every response is closed."""
    headers = dict(headers or {})
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return Reply(response.status, dict(response.headers), response.read())
    except urllib.error.HTTPError as error:
        with error:
            return Reply(error.code, dict(error.headers), error.read())


class LoggedProcess:
    """A child process whose output a thread copies, line by line, to a log file; a test waits for the
    line it needs (the server is listening) instead of polling."""

    def __init__(self, name: str, args: list[str], log_path, **popen):
        self.name = name
        self.log_path = Path(log_path)
        self.popen = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **popen
        )
        self._lines: list[str] = []
        self._ended = False
        self._changed = threading.Condition()
        self._copier = threading.Thread(target=self._copy, name=f"log of {name}", daemon=True)
        self._copier.start()

    def _copy(self) -> None:
        with self.popen.stdout as output, open(self.log_path, "ab") as log:
            for line in output:
                log.write(line)
                log.flush()
                with self._changed:
                    self._lines.append(line.decode("utf-8", "replace"))
                    self._changed.notify_all()
        with self._changed:
            self._ended = True
            self._changed.notify_all()

    def log(self, chars: int = 6000) -> str:
        with self._changed:
            return "".join(self._lines)[-chars:]

    def wait_for(self, pattern: str, seconds: float) -> re.Match:
        """The first match of pattern in a line of output, waiting for it; fails, showing the output, when
        the process ends or `seconds` pass first."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + seconds
        seen = 0
        with self._changed:
            while True:
                for line in self._lines[seen:]:
                    if match := regex.search(line):
                        return match
                seen = len(self._lines)
                if self._ended:
                    pytest.fail(f"{self.name} ended ({self.popen.wait()}) before printing {pattern!r}:\n{self.log()}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    pytest.fail(f"{self.name} did not print {pattern!r} within {seconds} s:\n{self.log()}")
                self._changed.wait(remaining)

    def stop(self, seconds: float) -> int:
        """Terminate, wait, kill if need be; the exit code."""
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(seconds)
            except subprocess.TimeoutExpired:
                self.popen.kill()
        code = self.popen.wait()
        self._copier.join(seconds)
        return code


def wait_until_gone(pids, seconds: float) -> set[int]:
    """Wait for these processes (children or not) to end, woken by the kernel as each one does; the pids
    still running after `seconds`."""
    handles = {}
    for pid in pids:
        try:
            handles[os.pidfd_open(pid)] = pid
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + seconds
    try:
        while handles:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            ended, _, _ = select.select(list(handles), [], [], remaining)
            for fd in ended:
                os.close(fd)
                del handles[fd]
        return set(handles.values())
    finally:
        for fd in handles:
            os.close(fd)


# The launcher (make run, make dev) in a subprocess.

ROOT = str(Path(__file__).resolve().parents[2])  # the repository
LAUNCHER_START_SECONDS = 30
LAUNCHER_STOP_SECONDS = 30
# The settings `make run` starts with: a generated key, the production hash cost, rate limits on.
AS_MAKE_RUNS_IT = dict.fromkeys(
    ["SECRET_KEY", "PASSWORD_HASH_TIME_COST", "PASSWORD_HASH_MEMORY_KIB", "RATELIMIT_ENABLED"], OMIT
)


def processes() -> dict[int, tuple[int, int, str]]:
    """Live processes: pid -> (parent pid, process group, command line)."""
    out = subprocess.run(
        ["ps", "-ww", "-eo", "pid=,ppid=,pgid=,stat=,args="], capture_output=True, text=True, check=True
    ).stdout
    found = {}
    for line in out.splitlines():
        pid, ppid, group, stat, args = (line.split(None, 4) + [""])[:5]
        if not stat.startswith("Z"):
            found[int(pid)] = (int(ppid), int(group), args)
    return found


def descendants(pid: int) -> dict[int, str]:
    """Live descendants of a process: pid -> command line."""
    table = processes()
    found, parents = {}, {pid}
    while parents:
        children = {p for p, (ppid, _, _) in table.items() if ppid in parents and p not in found}
        found.update({p: table[p][2] for p in children})
        parents = children
    return found


def group_processes(pgids) -> dict[int, str]:
    """Live processes (pid -> command line) of these process groups."""
    pgids = {pgids} if isinstance(pgids, int) else set(pgids)
    return {pid: args for pid, (_, group, args) in processes().items() if group in pgids}


class Launcher:
    """`python launcher.py` (with `args`, e.g. --dev) in a session of its own, as a terminal runs
    `make run`: the embedded database, a generated key and every other setting at its default
    (`config` overrides some). The server and the database it starts run in sessions of their own:
    every group seen is remembered, so that kill() can always clean up."""

    def __init__(self, tmp_path, *args, root=ROOT, **config):
        self.args = list(args)
        self.root = root
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp_path / "launcher.log"
        config = config_for_tests(tmp_path, **{**AS_MAKE_RUNS_IT, **config})
        self.instance = Path(config["INSTANCE_PATH"])
        self.env = server_env(config, PORT=str(self.port), HOST="127.0.0.1", WEB_CONCURRENCY="2", EMBEDDED_DB_PORT="")
        self.process: LoggedProcess | None = None
        self.groups: set[int] = set()

    def log(self) -> str:
        return self.process.log() if self.process else ""

    def start(self) -> None:
        """Start it; return once the server listens and answers /healthz."""
        self.process = LoggedProcess(
            "launcher",
            [sys.executable, os.path.join(self.root, "launcher.py"), *self.args],
            self.log_path,
            cwd=self.root,
            env=self.env,
            start_new_session=True,  # pgid == pid, as the shell gives a foreground job
        )
        self.groups.add(self.process.popen.pid)
        self.process.wait_for(r"Listening at: |Running on http", LAUNCHER_START_SECONDS)
        reply = http_request("GET", f"{self.base_url}/healthz", timeout=LAUNCHER_START_SECONDS)
        assert reply.status_code == 200, self.log()
        table = processes()
        self.groups |= {table[pid][1] for pid in descendants(self.process.popen.pid) if pid in table}

    def wait(self, seconds: float = LAUNCHER_STOP_SECONDS) -> int:
        try:
            return self.process.popen.wait(seconds)
        except subprocess.TimeoutExpired:
            pytest.fail(f"launcher still running {seconds} s after it was told to stop:\n{self.log()}")

    def stop(self, sig=signal.SIGTERM, seconds: float = LAUNCHER_STOP_SECONDS) -> int:
        """Signal the launcher as `kill` would; its exit code."""
        self.process.popen.send_signal(sig)
        return self.wait(seconds)

    def interrupt(self, seconds: float = LAUNCHER_STOP_SECONDS) -> int:
        """Ctrl-C: SIGINT to the terminal's foreground group; the exit code."""
        os.killpg(self.process.popen.pid, signal.SIGINT)
        return self.wait(seconds)

    def kill(self) -> None:
        """Clean-up once the test is over: SIGKILL to every group the launcher started. A graceful
        stop, which the tests about stopping check themselves, cost every other test 4 s here."""
        if self.process is None:
            return
        running = group_processes(self.groups)
        for group in self.groups:
            try:
                os.killpg(group, signal.SIGKILL)
            except ProcessLookupError:
                pass
        wait_until_gone(running, 5)
        self.process.stop(5)
