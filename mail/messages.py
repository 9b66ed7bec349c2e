"""What each kind of mail says, and whether it is still wanted when its turn comes."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

from bson import ObjectId
from flask import current_app, render_template

from auth.audit import Events
from database.documents import Document, utcnow
from mail.addresses import on_the_wire
from mail.devices import describe
from mail.link_tokens import CHANGE_EMAIL, RESET_PASSWORD, TOKEN_LIFETIMES, VERIFY_EMAIL, LinkTokens
from models import User


@dataclass(frozen=True)
class Kind:
    subject: str  # formatted with app_name; never carries a token
    purpose: str | None = None  # the link token's purpose, for mails with a link
    path: str = ""  # where the link points, under FRONTEND_URL


KINDS: dict[str, Kind] = {
    "password_reset": Kind("Reset your {app_name} password", RESET_PASSWORD, "/reset-password"),
    "verify_email": Kind("Confirm your email address for {app_name}", VERIFY_EMAIL, "/verify-email"),
    "change_email": Kind("Confirm your new email address for {app_name}", CHANGE_EMAIL, "/verify-email"),
    # A sign-up with the address of an account nobody verified: its link makes the account that sign-up's.
    "claim_account": Kind("Confirm your email address for {app_name}", VERIFY_EMAIL, "/verify-email"),
    "signup_attempt": Kind("Someone tried to sign up to {app_name} with your address"),
    "password_changed": Kind("Your {app_name} password was changed"),
    "password_reset_done": Kind("Your {app_name} password was reset"),
    "email_change_requested": Kind("A change of your {app_name} email address was requested"),
    "email_changed": Kind("Your {app_name} email address was changed"),
    "mfa_enabled": Kind("Two-factor authentication is on for your {app_name} account"),
    "mfa_disabled": Kind("Two-factor authentication is off for your {app_name} account"),
    "recovery_codes_replaced": Kind("New recovery codes for your {app_name} account"),
    "passkey_added": Kind("A passkey was added to your {app_name} account"),
    "passkey_removed": Kind("A passkey was removed from your {app_name} account"),
    "access_token_created": Kind("A personal access token was created for your {app_name} account"),
    "account_disabled": Kind("Your {app_name} account was disabled"),
}


def prepare(mail: Document) -> tuple[EmailMessage, ObjectId | None] | None:
    """The message to send now and the account it concerns; None when it is no longer wanted
    (the account is gone or disabled, or the address is no longer its own)."""
    kind, user = mail["kind"], None
    if kind in ("password_reset", "signup_attempt"):
        user = User.find_by_email(mail["to"])
        if kind == "password_reset" and mail["attempts"] == 1:
            event(
                "password_reset_requested",
                user["_id"] if user else None,
                mail,
                **({} if user else {"email": mail["to"]}),
            )
        if kind == "signup_attempt" and user is not None and not user.get("email_verified"):
            kind = "verify_email"  # not yet verified: a fresh link is what the owner needs
    elif mail["user_id"] is not None:
        user = User.find_by_id(mail["user_id"])
    if user is None or not _still_wanted(kind, user, mail):
        return None
    context = {**mail["params"], **_account_text(kind, user, mail)}
    purpose = KINDS[kind].purpose
    if purpose:
        context["link"], context["expires"] = _link(kind, purpose, user, mail)
    return _message(kind, mail, context), user["_id"]


def _still_wanted(kind: str, user: Document, mail: Document) -> bool:
    if kind == "account_disabled":
        return True
    if user.get("disabled"):
        return False
    if kind in ("verify_email", "claim_account"):
        return bool(user["email"] == mail["to"] and not user.get("email_verified") and _newest_sign_up(user, mail))
    if kind in ("change_email", "email_changed", "email_change_requested"):
        return True  # to the new or the old address, whatever the account's address is now
    return bool(user["email"] == mail["to"])


def _newest_sign_up(user: Document, mail: Document) -> bool:
    """A link to verify an address is wanted only for the newest sign-up with it: the one that
    made the account (no claim waits), or the claim waiting now."""
    waiting = (user.get("claim") or {}).get("id")
    return bool(waiting == mail["params"].get("claim"))


def _account_text(kind: str, user: Document, mail: Document) -> dict[str, str]:
    """What the account's holder typed (its name, a new address) goes only to an address the
    account has proven: anyone can sign up with, or move an account to, someone else's address."""
    if kind == "email_changed":  # to the address the account has just left: proven then or not
        proven = bool(mail["params"].get("to_proven"))
    else:
        proven = user["email"] == mail["to"] and bool(user.get("email_verified")) and not KINDS[kind].purpose
    if proven:
        return {"name": str(user["name"])}
    return {"name": "", "new_email": ""}


def _link(kind: str, purpose: str, user: Document, mail: Document) -> tuple[str, str]:
    """A fresh token for this attempt (it replaces any older one of its purpose), and the link."""
    lifetime = TOKEN_LIFETIMES[purpose]
    data = {"email": mail["to"]}
    for key in ("session_id", "claim"):
        if mail["params"].get(key):
            data[key] = mail["params"][key]
    # The link's life runs from the request, not from this attempt: a mail delayed by an
    # outage says so by expiring sooner, and is given up once its link would be dead.
    expires_at = mail["created_at"] + lifetime
    token = LinkTokens.issue(user["_id"], purpose, expires_at, **data)
    # In the fragment: browsers send neither it nor a Referer with it to any server.
    link = f"{current_app.config['FRONTEND_URL']}{KINDS[kind].path}#token={token}"
    return link, _when(expires_at)


def _message(kind: str, mail: Document, context: dict[str, Any]) -> EmailMessage:
    config = current_app.config
    context = {**context, "app_name": config["APP_NAME"], "frontend_url": config["FRONTEND_URL"], "to": mail["to"]}
    context["at"] = _when(context.get("at"))
    context["device"] = describe(context.pop("user_agent", None))  # never the header itself
    message = EmailMessage()
    message["Subject"] = KINDS[kind].subject.format(app_name=config["APP_NAME"])
    message["From"] = config["MAIL_FROM"]
    message["To"] = on_the_wire(mail["to"])
    message["Date"] = format_datetime(utcnow())
    message["Message-ID"] = mail["message_id"]
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies, please
    text = render_template(f"mail/{kind}.txt", **context)
    # Plain 7-bit when it can be, so that the link stays one unbroken line for every reader.
    message.set_content(text, cte="7bit" if text.isascii() else "quoted-printable")
    message.add_alternative(render_template(f"mail/{kind}.html", **context), subtype="html")
    # Chosen here, not by the email package, which would draw on the random module's shared state.
    message.set_boundary(f"=_{uuid.uuid4().hex}")
    return message


def _when(value: object) -> str:
    return value.strftime("%d %B %Y at %H:%M UTC") if isinstance(value, datetime) else ""


def event(event_type: str, user_id: ObjectId | None, entry: Document, **detail: Any) -> None:
    """An audit event about a mail, from the address that asked for it."""
    params = entry["params"]
    Events.record(event_type, user_id, params.get("ip"), params.get("user_agent"), **detail)
