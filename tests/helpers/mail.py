"""Mail: a real SMTP server on 127.0.0.1 and the parts of a received message."""

from __future__ import annotations

import asyncio
import re
import threading
from email import message_from_bytes, policy

from aiosmtpd.controller import Controller


class SmtpTestServer:
    """A real SMTP server (aiosmtpd) on a fixed loopback port, which a test may stop and start
    again; it keeps every message it accepted, parsed."""

    def __init__(self, port: int, **options):
        self.port = port
        self.options = options
        self.messages = []
        self.recipients = []
        self.arrived = threading.Event()  # set at each accepted message
        self.hold = None  # an Event: while set to one, DATA waits for it (a send caught in the act)
        self.receiving = threading.Event()  # set when a held DATA has started
        self._controller = None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port, **self.options)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    async def handle_DATA(self, server, session, envelope):
        if self.hold is not None:
            self.receiving.set()
            await asyncio.get_running_loop().run_in_executor(None, self.hold.wait, 10)
        self.messages.append(message_from_bytes(envelope.content, policy=policy.default))
        self.recipients.append(list(envelope.rcpt_tos))
        self.arrived.set()
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list:
        """The messages addressed to `address`, oldest first."""
        return [m for m in self.messages if m["To"] == address]


def text_body(message) -> str:
    return message.get_body(("plain",)).get_content()


def html_body(message) -> str:
    return message.get_body(("html",)).get_content()


TOKEN_IN_LINK = re.compile(r"#token=([A-Za-z0-9_-]+)")


def link_token(message) -> str:
    """The token of the link in a mail's text body."""
    found = TOKEN_IN_LINK.search(text_body(message))
    assert found, text_body(message)
    return found.group(1)
