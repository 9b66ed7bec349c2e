"""/users/email (ask to change it), /users/email/verify (what a mailed link proves) and
/users/email/verify/resend."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, g, request
from pymongo.errors import DuplicateKeyError
from werkzeug.exceptions import Conflict, Unauthorized

import validate
from api import account_requests
from api.openapi import documented
from api.responses import Reply, envelope, json_body
from api.schemas import Accepted, Envelope, UserOut
from auth.audit import record
from auth.passwords import BAD_CREDENTIALS, confirm_password
from auth.throttling import rate_limit
from auth.totp import require_second_factor
from auth_middleware import token_required
from database.documents import Document
from mail.link_tokens import CHANGE_EMAIL, VERIFY_EMAIL, LinkTokens, invalid_link
from mail.outbox import queue
from models import User
from workflows.accounts import change_email as move_account
from workflows.accounts import claim_account

email = Blueprint("email", __name__)


@email.post("/email/verify")
@documented(
    tags=["email"],
    ok=(200, Envelope[UserOut]),
    json=account_requests.LinkToken,
    errors=(400, 409, 413, 415, 429),
)
def verify_email() -> Reply:
    """Prove an address with the token of a mailed link: the account's own address after
    sign-up, or the new one of an email change (which then happens). The link of a later
    sign-up with an address nobody had verified also gives the account that sign-up's name
    and password (REQUIRE_VERIFIED_EMAIL). No bearer token needed."""
    rate_limit("link_token", LINK_TOKEN_RATE_LIMIT=request.remote_addr)
    token = validate.load(account_requests.LinkToken, json_body()).token
    entry = LinkTokens.consume(token, (VERIFY_EMAIL, CHANGE_EMAIL))
    if entry is None:
        raise invalid_link("email")
    if entry["purpose"] == CHANGE_EMAIL:
        return _change_email(entry)
    if entry["data"].get("claim"):
        return _claim(entry)
    if not User.mark_email_verified(entry["user_id"], entry["data"]["email"]):
        raise invalid_link(VERIFY_EMAIL)  # the account changed its address, or was disabled, since
    record("email_verified", entry["user_id"])
    return envelope("Email address verified.", _account(entry["user_id"]))


def _claim(entry: Document) -> Reply:
    """A later sign-up's link: the unverified account becomes that sign-up's (see claim_account)."""
    user_id = entry["user_id"]
    if not claim_account(user_id, entry["data"]["email"], entry["data"]["claim"]):
        raise invalid_link(VERIFY_EMAIL)  # a newer sign-up, a reset or a verification came first
    record("account_claimed", user_id)
    record("email_verified", user_id)
    return envelope("Email address verified.", _account(user_id))


def _change_email(entry: Document) -> Reply:
    """Move the account to its proven new address; every session but the one that asked ends."""
    user_id, new_email = entry["user_id"], entry["data"]["email"]
    try:
        before = move_account(user_id, new_email, keep_session=entry["data"].get("session_id"))
    except DuplicateKeyError:
        record("email_change_failed", user_id, reason="address_taken")
        raise Conflict("An account with this email already exists.") from None
    if before is None:
        raise invalid_link(CHANGE_EMAIL)
    record("email_changed", user_id)
    proven = bool(before.get("email_verified"))
    queue("email_changed", before["email"], user_id, new_email=new_email, to_proven=proven)
    return envelope("Email address changed.", _account(user_id))


def _account(user_id: Any) -> dict[str, Any]:
    user = User.find_by_id(user_id)
    if user is None:  # deleted meanwhile: the link proved nothing that still exists
        raise invalid_link("email")
    return UserOut.of(user)


@email.post("/email/verify/resend")
@documented(tags=["email"], ok=(202, Accepted), auth=True, errors=(409, 429))
@token_required
def resend_verification(current_user: dict[str, Any]) -> Reply:
    """Mail a new link to verify the account's address; the previous link stops working."""
    rate_limit("verify_resend", VERIFY_RESEND_RATE_LIMIT=current_user["_id"])
    if current_user.get("email_verified"):
        raise Conflict("Your email address is already verified.")
    queue("verify_email", current_user["email"], current_user["_id"])
    record("email_verification_requested", current_user["_id"])
    return envelope("A new link to verify your address is on its way.", status=202)


@email.put("/email")
@documented(
    tags=["email"],
    ok=(202, Accepted),
    json=account_requests.EmailChange,
    auth=True,
    errors=(400, 413, 415, 429),
)
@token_required
def change_email(current_user: dict[str, Any]) -> Reply:
    """Ask to move the account to a new address: it needs the password (and, with two-factor
    on, a code). The new address gets a link that makes the change; the old one a notice."""
    user_id = current_user["_id"]
    rate_limit("email_change", EMAIL_CHANGE_RATE_LIMIT=user_id)
    fields = validate.load(account_requests.EmailChange, json_body())
    failure = Unauthorized(BAD_CREDENTIALS)
    confirm_password(
        current_user,
        current_user["email"],
        fields.password,
        failure=failure,
        event="email_change_failed",
        reason="password",
    )
    require_second_factor(current_user, fields, "email_change")
    if fields.email == current_user["email"]:
        raise validate.InvalidInput({"email": "This is already your address."})
    queue("change_email", fields.email, user_id, session_id=str(g.session_id))
    queue("email_change_requested", current_user["email"], user_id, new_email=fields.email)
    record("email_change_requested", user_id)
    return envelope("Open the link we sent to the new address to finish the change.", status=202)
