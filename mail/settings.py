"""Mail settings: MAIL_URL and the derived link and sender settings, and this concern's
per-app state (the transport and the sender), made at app creation."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from email.utils import formataddr
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

from flask import current_app

SMTP_PORTS = {"smtp": 25, "smtp+starttls": 587, "smtps": 465}
EXTENSION = "book_library.mail"


class Sender(Protocol):
    """What queue() needs of this process's sender (mail/sender.py): a way to wake it."""

    wake: threading.Event

    @property
    def owner(self) -> str: ...

    def ensure_running(self) -> None: ...

    def stop(self, timeout: float = 10) -> None: ...


@dataclass
class MailState:
    transport: str | None  # "smtp", "files" (development's .eml files) or None: no mail
    sender: Sender


def mail_state() -> MailState:
    result: MailState = current_app.extensions[EXTENSION]
    return result


@dataclass(frozen=True)
class SmtpServer:
    host: str
    port: int
    username: str | None
    password: str | None
    tls: str  # "none", "starttls" or "implicit"


def parse_mail_url(url: str) -> SmtpServer:
    """smtp://user:pass@host:port, smtp://...?starttls=true, or smtps://... (implicit TLS)."""
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ValueError("MAIL_URL must look like smtp://user:password@host:port or smtps://...")
    starttls = parse_qs(parts.query).get("starttls", ["false"])[-1].lower() in ("1", "true", "yes", "on")
    tls = "implicit" if parts.scheme == "smtps" else ("starttls" if starttls else "none")
    default_port = SMTP_PORTS["smtp+starttls" if tls == "starttls" else parts.scheme]
    return SmtpServer(
        host=parts.hostname,
        port=parts.port or default_port,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        tls=tls,
    )


def resolve_settings(config: dict[str, Any], app_root: str, listen_address: str) -> None:
    """Fill in the derived mail and link settings (empty means derived), once, at start-up.

    `listen_address` is where `make run` serves (HOST:PORT), the development PUBLIC_URL."""
    if config["MAIL_URL"]:
        parse_mail_url(config["MAIL_URL"])  # a malformed URL stops the start, not the first mail
    # Production has one already (the configuration loader requires it).
    public = config["PUBLIC_URL"] or f"http://{listen_address}"
    config["PUBLIC_URL"] = public
    frontend = config["FRONTEND_URL"].rstrip("/")
    if not frontend and public:
        has_browser_app = os.path.exists(os.path.join(app_root, "static", "app", "index.html"))
        frontend = public + "/app" if has_browser_app else public
    config["FRONTEND_URL"] = frontend
    if not config["MAIL_FROM"]:
        host = urlsplit(public).hostname or "localhost"
        domain = host if any(c.isalpha() for c in host) else "localhost"
        config["MAIL_FROM"] = formataddr((config["APP_NAME"], f"no-reply@{domain}"))
