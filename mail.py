"""Mail: settings, the outbox sender, and the messages themselves.

A view calls queue(); the mail goes into the outbox collection and a sender thread in
this process is woken to send it. Senders in every process claim due mails with a lease,
retry failures with backoff, and give up only after a day or once the mail's link has
expired. Each attempt prepares the message afresh: its link token is made then, so no
usable token ever sits in the database.
"""

from __future__ import annotations

import logging
import os
import smtplib
import ssl
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, parseaddr
from urllib.parse import parse_qs, unquote, urlsplit

from flask import current_app, has_request_context, render_template, request
from pymongo.errors import PyMongoError

import models
from auth_models import Events
from mail_models import (
    CHANGE_EMAIL,
    DROPPED,
    GIVEN_UP,
    RESET_PASSWORD,
    SENT,
    TOKEN_LIFETIMES,
    VERIFY_EMAIL,
    LinkTokens,
    Outbox,
)

# Not "mail": aiosmtpd, which tests and development servers use, logs as "mail.log".
log = logging.getLogger("book_library.mail")

SMTP_PORTS = {"smtp": 25, "smtp+starttls": 587, "smtps": 465}
# A mail that cannot be sent for a day is given up (sooner when its link expires first).
GIVE_UP_AFTER = timedelta(hours=24)
# The first retry comes after this, then twice as long each time, at most RETRY_MAX.
RETRY_FIRST = timedelta(seconds=15)
RETRY_MAX = timedelta(hours=1)
# A claimed mail is left alone this long: far more than one SMTP conversation takes.
LEASE = timedelta(minutes=2)
# How often an idle sender looks for due mails that another process queued or a retry made due.
POLL_SECONDS = 5
MAILS_PER_ROUND = 100


# --- settings --------------------------------------------------------------------


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


def resolve_settings(config: dict, app_root: str, listen_address: str) -> None:
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


# --- the sender thread ----------------------------------------------------------


class Sender:
    """The process's sender: a daemon thread that sends due mails, woken by queue().

    Started lazily by the first request of each process, so that a forking server
    starts it in every worker rather than in the parent."""

    def __init__(self, app):
        self.app = app
        self.wake = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = None
        self._pid = None
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


def init_app(app) -> None:
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
    app.extensions["mail"] = {"transport": transport, "sender": sender}

    @app.before_request
    def _start_sender():
        if transport and config["MAIL_SENDER"]:
            sender.ensure_running()


def send_due(app) -> int:
    """Send every mail that is due now; returns how many were delivered.

    The sender thread calls this; tests call it to drive the outbox step by step."""
    delivered = 0
    with app.app_context():
        owner = app.extensions["mail"]["sender"].owner
        for _ in range(MAILS_PER_ROUND):
            mail = Outbox.claim(owner, LEASE)
            if mail is None:
                break
            delivered += _attempt(mail)
    return delivered


# --- queueing ----------------------------------------------------------------------


def queue(kind: str, to: str, user_id=None, **params) -> None:
    """Put a mail in the outbox and wake this process's sender. The request never waits for SMTP."""
    state = current_app.extensions["mail"]
    if state["transport"] is None:
        return
    now = models.utcnow()
    give_up_at = now + GIVE_UP_AFTER
    purpose = KINDS[kind].purpose
    if purpose:
        give_up_at = min(give_up_at, now + TOKEN_LIFETIMES[purpose])
    if has_request_context():
        params.setdefault("ip", request.remote_addr)
        params.setdefault("user_agent", (request.headers.get("User-Agent") or "")[:300])
    domain = parseaddr(current_app.config["MAIL_FROM"])[1].rpartition("@")[2] or "localhost"
    # Not email.utils.make_msgid: it draws on the random module's shared state.
    message_id = f"<{uuid.uuid4().hex}@{domain}>"
    Outbox.add(kind, to, user_id, message_id, give_up_at, at=now, **params)
    if current_app.config["MAIL_SENDER"]:
        state["sender"].ensure_running()
        state["sender"].wake.set()


# --- one attempt ----------------------------------------------------------------


def _attempt(mail: dict) -> int:
    """Prepare and send one claimed mail; 1 when delivered."""
    now = models.utcnow()
    if now >= mail["give_up_at"]:
        _give_up(mail, "expired" if KINDS[mail["kind"]].purpose else "too_long")
        return 0
    prepared = _prepare(mail)
    if prepared is None:
        Outbox.finish(mail, DROPPED)
        return 0
    message, user_id = prepared
    try:
        _transport(message)
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
        _event("mail_sent", user_id, mail, mail=mail["kind"])
    return 1


def _give_up(mail: dict, reason: str) -> None:
    if Outbox.finish(mail, GIVEN_UP, reason=reason):
        log.error("mail given up", extra={"fields": {**_fields(mail), "reason": reason}})
        _event("mail_given_up", mail["user_id"], mail, mail=mail["kind"], reason=reason, attempts=mail["attempts"] - 1)


def _fields(mail: dict) -> dict:
    """What a log line says about a mail: never its address, link or body."""
    return {"mail_id": str(mail["_id"]), "kind": mail["kind"], "attempt": mail["attempts"]}


def _event(event_type: str, user_id, entry: dict, **detail) -> None:
    params = entry["params"]
    Events.record(event_type, user_id, params.get("ip"), params.get("user_agent"), **detail)


def _transport(message: EmailMessage) -> None:
    if current_app.extensions["mail"]["transport"] == "smtp":
        _send_smtp(parse_mail_url(current_app.config["MAIL_URL"]), message)
    else:
        _write_eml(message)


def _send_smtp(server: SmtpServer, message: EmailMessage) -> None:
    timeout = current_app.config["MAIL_TIMEOUT_SECONDS"]
    context = ssl.create_default_context()
    if server.tls == "implicit":
        connection = smtplib.SMTP_SSL(server.host, server.port, timeout=timeout, context=context)
    else:
        connection = smtplib.SMTP(server.host, server.port, timeout=timeout)
    with connection as smtp:
        if server.tls == "starttls":
            smtp.starttls(context=context)
        if server.username:
            smtp.login(server.username, server.password or "")
        smtp.send_message(message)


def _write_eml(message: EmailMessage) -> None:
    """Development without MAIL_URL: the mail becomes a file to open, and one log line names it."""
    folder = os.path.join(current_app.instance_path, "mail")
    os.makedirs(folder, exist_ok=True)
    stamp = models.utcnow().strftime("%Y%m%dT%H%M%S%f")[:-3]
    name = f"{stamp}-{message['Message-ID'].strip('<>').partition('@')[0]}.eml"
    path = os.path.join(folder, name)
    with open(path, "wb") as handle:
        handle.write(message.as_bytes())
    log.info("mail written to a file", extra={"fields": {"file": path}})


# --- what each kind of mail says ------------------------------------------------------


@dataclass(frozen=True)
class Kind:
    subject: str  # formatted with app_name; never carries a token
    purpose: str | None = None  # the link token's purpose, for mails with a link
    path: str = ""  # where the link points, under FRONTEND_URL


KINDS = {
    "password_reset": Kind("Reset your {app_name} password", RESET_PASSWORD, "/reset-password"),
    "verify_email": Kind("Confirm your email address for {app_name}", VERIFY_EMAIL, "/verify-email"),
    "change_email": Kind("Confirm your new email address for {app_name}", CHANGE_EMAIL, "/verify-email"),
    "signup_attempt": Kind("Someone tried to sign up to {app_name} with your address"),
    "password_changed": Kind("Your {app_name} password was changed"),
    "password_reset_done": Kind("Your {app_name} password was reset"),
    "email_change_requested": Kind("A change of your {app_name} email address was requested"),
    "email_changed": Kind("Your {app_name} email address was changed"),
    "mfa_enabled": Kind("Two-factor authentication is on for your {app_name} account"),
    "mfa_disabled": Kind("Two-factor authentication is off for your {app_name} account"),
    "recovery_codes_replaced": Kind("New recovery codes for your {app_name} account"),
    "account_disabled": Kind("Your {app_name} account was disabled"),
}


def _prepare(mail: dict) -> tuple[EmailMessage, object] | None:
    """The message to send now and the account it concerns; None when it is no longer wanted
    (the account is gone or disabled, or the address is no longer its own)."""
    kind, user = mail["kind"], None
    if kind in ("password_reset", "signup_attempt"):
        user = models.User.find_by_email(mail["to"])
        if kind == "password_reset" and mail["attempts"] == 1:
            _event("password_reset_requested", user and user["_id"], mail, **({} if user else {"email": mail["to"]}))
        if kind == "signup_attempt" and user is not None and not user.get("email_verified"):
            kind = "verify_email"  # not yet verified: a fresh link is what the owner needs
    elif mail["user_id"] is not None:
        user = models.User.find_by_id(mail["user_id"])
    if not _still_wanted(kind, user, mail):
        return None
    context = {"name": user["name"] if user else "", **mail["params"]}
    if KINDS[kind].purpose:
        context["link"], context["expires"] = _link(kind, user, mail)
    return _message(kind, mail, context), (user["_id"] if user else None)


def _still_wanted(kind: str, user: dict | None, mail: dict) -> bool:
    if user is None:
        return False
    if kind == "account_disabled":
        return True
    if user.get("disabled"):
        return False
    if kind == "verify_email":
        return user["email"] == mail["to"] and not user.get("email_verified")
    if kind in ("change_email", "email_changed", "email_change_requested"):
        return True  # to the new or the old address, whatever the account's address is now
    return user["email"] == mail["to"]


def _link(kind: str, user: dict, mail: dict) -> tuple[str, str]:
    """A fresh token for this attempt (it replaces any older one of its purpose), and the link."""
    purpose = KINDS[kind].purpose
    lifetime = TOKEN_LIFETIMES[purpose]
    data = {"email": mail["to"]}
    if mail["params"].get("session_id"):
        data["session_id"] = mail["params"]["session_id"]
    # The link's life runs from the request, not from this attempt: a mail delayed by an
    # outage says so by expiring sooner, and is given up once its link would be dead.
    expires_at = mail["created_at"] + lifetime
    token = LinkTokens.issue(user["_id"], purpose, expires_at, **data)
    # In the fragment: browsers send neither it nor a Referer with it to any server.
    link = f"{current_app.config['FRONTEND_URL']}{KINDS[kind].path}#token={token}"
    return link, _when(expires_at)


def _message(kind: str, mail: dict, context: dict) -> EmailMessage:
    config = current_app.config
    context = {**context, "app_name": config["APP_NAME"], "frontend_url": config["FRONTEND_URL"], "to": mail["to"]}
    context["at"] = _when(context.get("at"))
    message = EmailMessage()
    message["Subject"] = KINDS[kind].subject.format(app_name=config["APP_NAME"])
    message["From"] = config["MAIL_FROM"]
    message["To"] = mail["to"]
    message["Date"] = format_datetime(models.utcnow())
    message["Message-ID"] = mail["message_id"]
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies, please
    text = render_template(f"mail/{kind}.txt", **context)
    # Plain 7-bit when it can be, so that the link stays one unbroken line for every reader.
    message.set_content(text, cte="7bit" if text.isascii() else "quoted-printable")
    message.add_alternative(render_template(f"mail/{kind}.html", **context), subtype="html")
    # Chosen here, not by the email package, which would draw on the random module's shared state.
    message.set_boundary(f"=_{uuid.uuid4().hex}")
    return message


def _when(value) -> str:
    return value.strftime("%d %B %Y at %H:%M UTC") if isinstance(value, datetime) else ""
