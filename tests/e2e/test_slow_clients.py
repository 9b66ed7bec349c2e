"""Slow clients against the server as `make run` starts it (launcher.py, gunicorn.conf.py).

Connections that send part of their headers and then wait must not take the workers that
other clients need: /healthz still answers while many of them are open.
"""

from __future__ import annotations

import socket

import pytest

from helpers import assert_envelope, http_request

pytestmark = pytest.mark.e2e

SLOW_CONNECTIONS = 50
# A bound on waiting, not a measure of speed: a server whose workers are all held answers never.
PROBE_SECONDS = 10


def open_slow_connection(port: int) -> socket.socket:
    """A connection that has sent a request line and one header line, and not the blank line that ends them."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=PROBE_SECONDS)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    return sock


def test_healthz_answers_while_many_connections_hold_partial_headers(launcher):
    launcher.start()
    slow = []
    try:
        slow.extend(open_slow_connection(launcher.port) for _ in range(SLOW_CONNECTIONS))

        reply = http_request("GET", f"{launcher.base_url}/healthz", timeout=PROBE_SECONDS)

        assert assert_envelope(reply, 200, "ok") == {"database": "up"}
    finally:
        for sock in slow:
            sock.close()
