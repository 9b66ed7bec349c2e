"""Slow-header clients against the server as `make run` starts it: /healthz latency and the
rate of normal traffic, first without them, then with them open.

    .venv/bin/python bench/slow_clients.py [--clients 200] [--seconds 15] [--interval 2] [--load 2]

On this machine only (127.0.0.1), in a temporary folder removed at the end:

1. starts `python launcher.py` as `make run` does (the embedded database, then gunicorn
   with gunicorn.conf.py: its worker class and worker count) on a free port;
2. signs up and logs in one account; normal traffic is GET /users/ with its token, sent
   back to back by --load threads, a new connection for each request;
3. for --seconds, probes /healthz every 0.25 s (a new connection each, --probe-timeout)
   while that traffic runs;
4. opens --clients connections from one client that each send a request line and one
   header line, then one more header line every --interval seconds, and never finish
   (one the server closes is opened again);
5. measures as in 3 with them open; then closes them and stops the server with SIGTERM,
   as Ctrl-C stops `make run`.

Prints, for both phases, the probes' p50/p90/max, how many took over 1 s and how many
timed out, and the rate of normal traffic. Bounded: at most MAX_CLIENTS connections and
MAX_SECONDS a phase; it stops by itself.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
HOST = "127.0.0.1"  # loopback only
MAX_CLIENTS = 1000
MAX_SECONDS = 120
START_SECONDS = 60
STOP_SECONDS = 60
PROBE_EVERY = 0.25
SLOW_AFTER = 1.0  # a probe slower than this is counted apart
EMAIL = "bench-slow@example.com"
PASSWORD = "Bench-passw0rd!"
# Settings the bench sets itself; a developer's values of them (or .env) would change the run.
BLANKED = ("DATABASE_URL", "APP_ENV", "SECRET_KEY", "PUBLIC_URL", "TRUSTED_HOSTS", "EMBEDDED_DB_PORT")


class BenchError(RuntimeError):
    """A failure worth one clear line, not a traceback."""


# --- the server, as `make run` starts it ----------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def request(port: int, method: str, path: str, body=None, token=None, timeout: float = 10) -> tuple[int, dict]:
    """One request on a new connection; the status and the JSON body."""
    headers = {"Connection": "close"}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    if token:
        headers["Authorization"] = f"Bearer {token}"
    connection = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        connection.request(method, path, body=data, headers=headers)
        response = connection.getresponse()
        raw = response.read()
        return response.status, (json.loads(raw) if raw else {})
    finally:
        connection.close()


def group_ids(pid: int) -> set[int]:
    """The process groups of a process and its descendants (the launcher starts its children in sessions of
    their own)."""
    table = {}
    for line in subprocess.run(["ps", "-eo", "pid=,ppid=,pgid="], capture_output=True, text=True).stdout.splitlines():
        child, parent, group = map(int, line.split())
        table[child] = (parent, group)
    found, parents = {pid}, {pid}
    while parents:
        parents = {child for child, (parent, _) in table.items() if parent in parents} - found
        found |= parents
    return {table[p][1] for p in found if p in table}


class MakeRun:
    """`python launcher.py` in a temporary instance folder, its output in a log file."""

    def __init__(self, tmp: str):
        self.port = free_port()
        self.log_path = os.path.join(tmp, "server.log")
        env = {**os.environ, **dict.fromkeys(BLANKED, ""), "PYTHON_DOTENV_DISABLED": "1"}
        env.update(HOST=HOST, PORT=str(self.port), INSTANCE_PATH=os.path.join(tmp, "instance"))
        env["UPLOAD_FOLDER"] = os.path.join(tmp, "covers")
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            [sys.executable, os.path.join(ROOT, "launcher.py")],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.groups = {self.process.pid}

    def log(self) -> str:
        with open(self.log_path, encoding="utf-8", errors="replace") as handle:
            return handle.read()

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_SECONDS
        while True:
            if self.process.poll() is not None:
                raise BenchError(f"launcher.py exited ({self.process.returncode}):\n{self.log()[-3000:]}")
            if "Listening at: " in self.log():
                try:
                    if request(self.port, "GET", "/healthz", timeout=2)[0] == 200:
                        break
                except OSError:
                    pass
            if time.monotonic() > deadline:
                raise BenchError(f"the server did not answer /healthz in {START_SECONDS} s:\n{self.log()[-3000:]}")
            time.sleep(0.1)
        self.groups |= group_ids(self.process.pid)

    def describe(self) -> str:
        log = self.log()
        worker = re.search(r"Using worker: (\S+)", log)
        workers = len(set(re.findall(r"Booting worker with pid: (\d+)", log)))
        return f"gunicorn, worker class {worker.group(1) if worker else '?'}, {workers} workers booted"

    def stop(self) -> None:
        try:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
                try:
                    self.process.wait(STOP_SECONDS)
                except subprocess.TimeoutExpired:
                    print(f"launcher.py still running {STOP_SECONDS} s after SIGTERM; killing it", flush=True)
        finally:
            for group in self.groups:
                try:
                    os.killpg(group, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            self.process.wait(5)
            self._log.close()


# --- slow-header clients ------------------------------------------------------------------


class SlowClients:
    """Connections that send a request line and then one header line every `interval` seconds, never
    the blank line that ends the headers. One thread keeps them all; stop() closes them."""

    def __init__(self, port: int, count: int, interval: float):
        self.port, self.count, self.interval = port, count, interval
        self.sockets: list[socket.socket | None] = [None] * count
        self.opened = 0
        self.reopened = 0
        self.ready = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="slow clients", daemon=True)

    def start(self) -> None:
        self._thread.start()
        if not self.ready.wait(30):
            raise BenchError("could not open the slow connections in 30 s")

    def _open(self, n: int) -> None:
        sock = socket.create_connection((HOST, self.port), timeout=5)
        sock.sendall(f"GET /healthz HTTP/1.1\r\nHost: {HOST}\r\n".encode())
        sock.setblocking(False)
        self.sockets[n] = sock
        self.opened += 1

    def _run(self) -> None:
        for n in range(self.count):
            self._open(n)
        self.ready.set()
        line = 0
        deadline = time.monotonic() + 3 * MAX_SECONDS  # stops by itself whatever happens
        while not self._stop.wait(self.interval) and time.monotonic() < deadline:
            line += 1
            for n, sock in enumerate(self.sockets):
                try:
                    sock.send(f"X-Slow-{line}: {n}\r\n".encode())
                except OSError:  # closed by the server (a timeout, a restarted worker): open another
                    sock.close()
                    self.reopened += 1
                    try:
                        self._open(n)
                    except OSError:
                        pass

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        for sock in self.sockets:
            if sock is not None:
                sock.close()


# --- measuring ---------------------------------------------------------------------------


def measure(port: int, token: str, seconds: float, load: int, probe_timeout: float) -> dict:
    """Probe /healthz every PROBE_EVERY s while `load` threads send GET /users/ back to back."""
    stop = threading.Event()
    answered = [0] * load
    failed = [0] * load

    def traffic(i: int) -> None:
        while not stop.is_set():
            try:
                status, _ = request(port, "GET", "/users/", token=token, timeout=probe_timeout)
            except OSError:
                failed[i] += 1
                continue
            if status == 200:
                answered[i] += 1
            else:
                failed[i] += 1

    threads = [threading.Thread(target=traffic, args=(i,), daemon=True) for i in range(load)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    latencies, timeouts, errors = [], 0, 0
    next_probe = started
    while time.monotonic() - started < seconds:
        begin = time.monotonic()
        try:
            status, _ = request(port, "GET", "/healthz", timeout=probe_timeout)
            if status == 200:
                latencies.append((time.monotonic() - begin) * 1000)
            else:
                errors += 1
        except TimeoutError:
            timeouts += 1
        except OSError:
            errors += 1
        next_probe += PROBE_EVERY
        time.sleep(max(0.0, next_probe - time.monotonic()))
    stop.set()
    elapsed = time.monotonic() - started
    for thread in threads:
        thread.join(probe_timeout + 5)
    return {
        "probes": len(latencies) + timeouts + errors,
        "latencies": latencies,
        "timeouts": timeouts,
        "errors": errors,
        "rate": sum(answered) / elapsed,
        "traffic_failed": sum(failed),
    }


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def row(name: str, result: dict) -> str:
    values = result["latencies"]
    if values:
        p50, p90, worst = percentile(values, 50), percentile(values, 90), max(values)
        timing = f"{p50:8.1f} {p90:8.1f} {worst:8.1f}"
    else:
        timing = f"{'-':>8} {'-':>8} {'-':>8}"
    over = sum(v > SLOW_AFTER * 1000 for v in values)
    return (
        f"{name:<26}{result['probes']:>7} {timing} {over:>6} {result['timeouts']:>9} {result['errors']:>7}"
        f" {result['rate']:>11.1f} {result['traffic_failed']:>7}"
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=200, help="slow-header connections (default 200)")
    parser.add_argument("--seconds", type=float, default=15, help="length of each phase (default 15)")
    parser.add_argument("--interval", type=float, default=2, help="seconds between header lines (default 2)")
    parser.add_argument("--load", type=int, default=2, help="threads of normal traffic (default 2)")
    parser.add_argument("--probe-timeout", type=float, default=2, help="seconds a probe waits (default 2)")
    args = parser.parse_args(argv)
    if not 0 < args.clients <= MAX_CLIENTS or not 0 < args.seconds <= MAX_SECONDS:
        parser.error(f"--clients must be 1 to {MAX_CLIENTS} and --seconds at most {MAX_SECONDS}")

    tmp = tempfile.mkdtemp(prefix="book-slow-")
    server = MakeRun(tmp)
    slow = None
    try:
        server.wait_ready()
        account = {"name": "Bench Reader", "email": EMAIL, "password": PASSWORD}
        status, body = request(server.port, "POST", "/users/", account)
        if status != 201:
            raise BenchError(f"sign-up answered {status}: {body}")
        status, body = request(server.port, "POST", "/users/login", {"email": EMAIL, "password": PASSWORD})
        if status != 200:
            raise BenchError(f"login answered {status}: {body}")
        token = body["data"]["token"]
        print(f"server: {server.describe()}; {os.cpu_count()} cores", flush=True)

        before = measure(server.port, token, args.seconds, args.load, args.probe_timeout)
        slow = SlowClients(server.port, args.clients, args.interval)
        slow.start()
        time.sleep(args.interval)  # every connection has sent its second header line
        during = measure(server.port, token, args.seconds, args.load, args.probe_timeout)
        reopened = slow.reopened
        slow.stop()
        slow = None
    finally:
        if slow is not None:
            slow.stop()
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    print(
        f"/healthz every {PROBE_EVERY} s ({args.probe_timeout:g} s timeout) for {args.seconds:g} s; normal traffic: "
        f"GET /users/ from {args.load} threads, a new connection each"
    )
    print(
        f"{'phase':<26}{'probes':>7} {'p50 ms':>8} {'p90 ms':>8} {'max ms':>8} {'>1 s':>6} {'timeouts':>9}"
        f" {'errors':>7} {'req/s':>11} {'failed':>7}"
    )
    print(row("without slow clients", before))
    print(row(f"with {args.clients} slow clients", during))
    print(f"slow connections the server closed (and were opened again): {reopened}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except BenchError as exc:
        sys.exit(f"slow_clients: {exc}")
