"""The sender: a thread in each process that sends due mails, one attempt at a time."""

from __future__ import annotations

import logging
import os
import smtplib
import ssl
import threading
import uuid
from datetime import timedelta
from email import policy
from email.message import EmailMessage
from typing import Any

from flask import Flask, current_app
from pymongo.errors import PyMongoError

from database.documents import Document, utcnow
from mail.addresses import needs_smtputf8
from mail.link_tokens import LinkTokens
from mail.messages import KINDS, event, prepare
from mail.outbox import DROPPED, GIVEN_UP, SENT, Outbox
from mail.settings import EXTENSION, MailState, SmtpServer, mail_state, parse_mail_url

# Not "mail": aiosmtpd, which tests and development servers use, logs as "mail.log".
log = logging.getLogger("book_library.mail")

# The first retry comes after this, then twice as long each time, at most RETRY_MAX.
RETRY_FIRST = timedelta(seconds=15)
RETRY_MAX = timedelta(hours=1)
# A claimed mail is left alone this long: far more than one SMTP conversation takes.
LEASE = timedelta(minutes=2)
# How often an idle sender looks for due mails that another process queued or a retry made due.
POLL_SECONDS = 5
MAILS_PER_ROUND = 100


class Sender:
    """The process's sender: a daemon thread that sends due mails, woken by queue().

    Started lazily by the first request of each process, so that a forking server
    starts it in every worker rather than in the parent."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.wake = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid: int | None = None
        self.instance = uuid.uuid4().hex[:8]

    @property
    def owner(self) -> str:
        """Names this process on the leases it takes."""
        return f"{os.uname().nodename}:{os.getpid()}:{self.instance}"

    def ensure_running(self) -> None:
        if self._thread is not None and self._pid == os.getpid() and self._thread.is_alive():
            return
        with self._lock:
            if self._thread is None or self._pid != os.getpid() or not self._thread.is_alive():
                self._stop.clear()
                self._pid = os.getpid()
                self._thread = threading.Thread(target=self._run, name="mail-sender", daemon=True)
                self._thread.start()

    def stop(self, timeout: float = 10) -> None:
        self._stop.set()
        self.wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                send_due(self.app)
            except PyMongoError as exc:  # the database is down: the mails wait in it, try again later
                log.warning("mail sender cannot reach the database", extra={"fields": {"error": type(exc).__name__}})
            except Exception:
                log.exception("mail sender round failed")
            self.wake.wait(POLL_SECONDS)
            self.wake.clear()


def init_app(app: Flask) -> None:
    """The mail transport (SMTP, .eml files in development, or off) and the sender."""
    config = app.config
    if config["MAIL_URL"]:
        transport = "smtp"
    elif config["APP_ENV"] != "production":
        transport = "files"
    else:
        transport = None
        log.warning("MAIL_URL is not set: no mail will be sent (password reset and verification mails included)")
    sender = Sender(app)
    app.extensions[EXTENSION] = MailState(transport, sender)

    @app.before_request
    def _start_sender() -> None:
        if transport and config["MAIL_SENDER"]:
            sender.ensure_running()


def send_due(app: Flask) -> int:
    """Send every mail that is due now; returns how many were delivered.

    The sender thread calls this; tests call it to drive the outbox step by step."""
    delivered = 0
    with app.app_context():
        owner = mail_state().sender.owner
        for _ in range(MAILS_PER_ROUND):
            mail = Outbox.claim(owner, LEASE)
            if mail is None:
                break
            delivered += _attempt(mail)
    return delivered


# --- queueing ----------------------------------------------------------------------


def _attempt(mail: Document) -> int:
    """Prepare and send one claimed mail; 1 when delivered."""
    now = utcnow()
    if now >= mail["give_up_at"]:
        _give_up(mail, "expired" if KINDS[mail["kind"]].purpose else "too_long")
        return 0
    prepared = prepare(mail)
    if prepared is None:
        Outbox.finish(mail, DROPPED)
        return 0
    message, user_id = prepared
    purpose = KINDS[mail["kind"]].purpose
    if purpose and user_id is not None and not Outbox.still_pending(mail):
        # Cancelled while its link was being made (cancel_queued): that link must not outlive it.
        LinkTokens.discard(user_id, purpose)
        return 0
    try:
        _transport(message)
    except Undeliverable as exc:
        _give_up(mail, exc.reason)
        return 0
    except (smtplib.SMTPException, OSError) as exc:
        delay = min(RETRY_FIRST * 2 ** (mail["attempts"] - 1), RETRY_MAX)
        error = type(exc).__name__ + (f" {exc.smtp_code}" if hasattr(exc, "smtp_code") else "")
        Outbox.retry_at(mail, now + delay, error, user_id)
        log.warning(
            "mail not sent; will retry",
            extra={"fields": {**_fields(mail), "error": error, "retry_in_s": int(delay.total_seconds())}},
        )
        return 0
    if Outbox.finish(mail, SENT, sent_at=now):
        event("mail_sent", user_id, mail, mail=mail["kind"])
    return 1


class Undeliverable(Exception):
    """This mail can never go through this server: given up at once, not retried for a day."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _give_up(mail: Document, reason: str) -> None:
    if Outbox.finish(mail, GIVEN_UP, reason=reason):
        log.error("mail given up", extra={"fields": {**_fields(mail), "reason": reason}})
        event("mail_given_up", mail["user_id"], mail, mail=mail["kind"], reason=reason, attempts=mail["attempts"] - 1)


def _fields(mail: Document) -> dict[str, Any]:
    """What a log line says about a mail: never its address, link or body."""
    return {"mail_id": str(mail["_id"]), "kind": mail["kind"], "attempt": mail["attempts"]}


def _transport(message: EmailMessage) -> None:
    if mail_state().transport == "smtp":
        _send_smtp(parse_mail_url(current_app.config["MAIL_URL"]), message)
    else:
        _write_eml(message)


def _send_smtp(server: SmtpServer, message: EmailMessage) -> None:
    timeout = current_app.config["MAIL_TIMEOUT_SECONDS"]
    context = ssl.create_default_context()
    connection: smtplib.SMTP
    if server.tls == "implicit":
        connection = smtplib.SMTP_SSL(server.host, server.port, timeout=timeout, context=context)
    else:
        connection = smtplib.SMTP(server.host, server.port, timeout=timeout)
    with connection as smtp:
        if server.tls == "starttls":
            smtp.starttls(context=context)
        if server.username:
            smtp.login(server.username, server.password or "")
        smtp.ehlo_or_helo_if_needed()
        # smtplib sends with SMTPUTF8 (and the headers in UTF-8) when the address needs it and
        # the server offers it; without the offer, no retry would ever get the mail through.
        if needs_smtputf8(str(message["To"])) and not smtp.has_extn("smtputf8"):
            raise Undeliverable("smtputf8_unsupported")
        smtp.send_message(message)


def _write_eml(message: EmailMessage) -> None:
    """Development without MAIL_URL: the mail becomes a file to open, and one log line names it."""
    folder = os.path.join(current_app.instance_path, "mail")
    os.makedirs(folder, exist_ok=True)
    stamp = utcnow().strftime("%Y%m%dT%H%M%S%f")[:-3]
    name = f"{stamp}-{message['Message-ID'].strip('<>').partition('@')[0]}.eml"
    path = os.path.join(folder, name)
    # An address that needs SMTPUTF8 is written in UTF-8 as well (RFC 6532), as SMTP would
    # carry it: an encoded word is not allowed in an address.
    utf8 = needs_smtputf8(str(message["To"]))
    with open(path, "wb") as handle:
        handle.write(message.as_bytes(policy=policy.default.clone(utf8=True)) if utf8 else message.as_bytes())
    log.info("mail written to a file", extra={"fields": {"file": path}})
