"""Views for what a mailed link proves: a forgotten password reset, an email address
verified, an address changed. Links carry single-use tokens (mail_models.LinkTokens)."""

from __future__ import annotations

from flask import Blueprint, g, request
from pymongo.errors import DuplicateKeyError
from werkzeug.exceptions import Conflict, Unauthorized

import mail
import validate
from api_docs import documented
from auth_middleware import record, token_required
from auth_models import Sessions
from mail_models import CHANGE_EMAIL, RESET_PASSWORD, VERIFY_EMAIL, LinkTokens
from models import User, parse_object_id
from responses import envelope, json_body
from throttling import check_lockout, count_failure, rate_limit
from two_factor import require_second_factor
from users import BAD_CREDENTIALS

account_email = Blueprint("account_email", __name__)

INVALID_LINK = "This link is invalid or has expired."
FORGOT_SENT = "If an account has this address, a link to reset its password is on its way there."


@account_email.post("/password/forgot")
@documented(
    tags=["account recovery"],
    ok=(202, validate.Accepted),
    json=validate.PasswordForgot,
    errors=(400, 413, 415, 429),
)
def forgot_password():
    """Ask for a password-reset link by mail. The answer is the same whether or not an account
    has the address, and so is the work done here: the outbox's sender looks the account up."""
    rate_limit("password_forgot", PASSWORD_FORGOT_RATE_LIMIT=request.remote_addr)
    fields = validate.load(validate.PasswordForgot, json_body())
    rate_limit("password_forgot", PASSWORD_FORGOT_EMAIL_RATE_LIMIT=fields.email)
    mail.queue("password_reset", fields.email)
    return envelope(FORGOT_SENT, status=202)


@account_email.post("/password/reset")
@documented(
    tags=["account recovery"],
    ok=(200, validate.Envelope[None]),
    json=validate.PasswordReset,
    errors=(400, 413, 415, 429),
)
def reset_password():
    """Set a new password with the token of a reset link. Every session ends; no tokens are
    returned: log in with the new password (and the second factor, when it is on)."""
    rate_limit("link_token", LINK_TOKEN_RATE_LIMIT=request.remote_addr)
    body = json_body()
    token = validate.load(validate.LinkToken, body).token
    entry = LinkTokens.find(token, (RESET_PASSWORD,))
    user = User.find_by_id(entry["user_id"]) if entry else None
    if user is None or user["disabled"]:
        _invalid_link(RESET_PASSWORD)
    # Checked against the account's own name and address, as at sign-up.
    context = {"user_inputs": (user["name"], user["email"])}
    fields = validate.load(validate.PasswordReset, body, context=context)
    if LinkTokens.consume(token, (RESET_PASSWORD,)) is None:  # used a moment ago by another request
        _invalid_link(RESET_PASSWORD)
    User.set_password(user["_id"], fields.new_password)
    Sessions.revoke_all(user["_id"], reason="password_reset")
    # The link reached the account's mailbox: that proves the address too.
    User.mark_email_verified(user["_id"], entry["data"]["email"])
    record("password_reset", user["_id"])
    mail.queue("password_reset_done", user["email"], user["_id"])
    return envelope("Password changed. Log in with the new password.")


@account_email.post("/email/verify")
@documented(
    tags=["email"],
    ok=(200, validate.Envelope[validate.UserOut]),
    json=validate.LinkToken,
    errors=(400, 409, 413, 415, 429),
)
def verify_email():
    """Prove an address with the token of a mailed link: the account's own address after
    sign-up, or the new one of an email change (which then happens). No bearer token needed."""
    rate_limit("link_token", LINK_TOKEN_RATE_LIMIT=request.remote_addr)
    token = validate.load(validate.LinkToken, json_body()).token
    entry = LinkTokens.consume(token, (VERIFY_EMAIL, CHANGE_EMAIL))
    if entry is None:
        _invalid_link("email")
    if entry["purpose"] == CHANGE_EMAIL:
        return _change_email(entry)
    if not User.mark_email_verified(entry["user_id"], entry["data"]["email"]):
        _invalid_link(VERIFY_EMAIL)  # the account changed its address, or was disabled, since
    record("email_verified", entry["user_id"])
    return envelope("Email address verified.", User.to_json(User.find_by_id(entry["user_id"])))


def _change_email(entry: dict):
    """Move the account to its proven new address; every session but the one that asked ends."""
    user_id, new_email = entry["user_id"], entry["data"]["email"]
    try:
        before = User.change_email(user_id, new_email)
    except DuplicateKeyError:
        record("email_change_failed", user_id, reason="address_taken")
        raise Conflict("An account with this email already exists.") from None
    if before is None:
        _invalid_link(CHANGE_EMAIL)
    LinkTokens.discard(user_id)  # links mailed to the old address stop working
    keep = parse_object_id(entry["data"].get("session_id"))
    Sessions.revoke_all(user_id, reason="email_changed", keep=keep)
    record("email_changed", user_id)
    mail.queue("email_changed", before["email"], user_id, new_email=new_email)
    return envelope("Email address changed.", User.to_json(User.find_by_id(user_id)))


def _invalid_link(purpose: str):
    """The one answer to a wrong, used or expired token: nothing tells them apart."""
    record("link_token_invalid", None, purpose=purpose)
    raise validate.InvalidInput({"token": INVALID_LINK}, message=INVALID_LINK)


@account_email.post("/email/verify/resend")
@documented(tags=["email"], ok=(202, validate.Accepted), auth=True, errors=(409, 429))
@token_required
def resend_verification(current_user):
    """Mail a new link to verify the account's address; the previous link stops working."""
    rate_limit("verify_resend", VERIFY_RESEND_RATE_LIMIT=current_user["_id"])
    if current_user.get("email_verified"):
        raise Conflict("Your email address is already verified.")
    mail.queue("verify_email", current_user["email"], current_user["_id"])
    record("email_verification_requested", current_user["_id"])
    return envelope("A new link to verify your address is on its way.", status=202)


@account_email.put("/email")
@documented(
    tags=["email"],
    ok=(202, validate.Accepted),
    json=validate.EmailChange,
    auth=True,
    errors=(400, 413, 415, 429),
)
@token_required
def change_email(current_user):
    """Ask to move the account to a new address: it needs the password (and, with two-factor
    on, a code). The new address gets a link that makes the change; the old one a notice."""
    user_id = current_user["_id"]
    rate_limit("email_change", EMAIL_CHANGE_RATE_LIMIT=user_id)
    fields = validate.load(validate.EmailChange, json_body())
    lock = check_lockout(current_user["email"], user_id)
    if not User.check_password(current_user, fields.password):
        count_failure(lock)
        record("email_change_failed", user_id, reason="password")
        raise Unauthorized(BAD_CREDENTIALS)
    require_second_factor(current_user, fields, "email_change")
    if fields.email == current_user["email"]:
        raise validate.InvalidInput({"email": "This is already your address."})
    mail.queue("change_email", fields.email, user_id, session_id=str(g.session_id))
    mail.queue("email_change_requested", current_user["email"], user_id, new_email=fields.email)
    record("email_change_requested", user_id)
    return envelope("Open the link we sent to the new address to finish the change.", status=202)
