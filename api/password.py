"""/users/password (change it, logged in), /users/password/forgot and /users/password/reset
(a mailed link's way back in)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, g, request

import validate
from api import account_requests
from api.cookies import tokens_reply
from api.openapi import documented
from api.responses import Reply, envelope, json_body
from api.schemas import Accepted, Envelope, TokensOut
from auth.audit import record
from auth.passwords import confirm_password
from auth.sessions import Sessions, token_response
from auth.throttling import rate_limit
from auth.totp import require_second_factor
from auth_middleware import token_required
from mail.link_tokens import RESET_PASSWORD, LinkTokens, invalid_link
from mail.outbox import queue
from models import User
from workflows.accounts import reset_password as reset_account_password
from workflows.accounts import set_password

password = Blueprint("password", __name__)

FORGOT_SENT = "If an account has this address, a link to reset its password is on its way there."


@password.put("/password")
@documented(
    tags=["sessions"],
    ok=(200, Envelope[TokensOut]),
    json=account_requests.PasswordChange,
    auth=True,
    errors=(400, 429),
)
@token_required
def change_password(current_user: dict[str, Any]) -> Reply:
    """Change the password; every other session ends, this one gets fresh tokens."""
    user_id = current_user["_id"]
    rate_limit("password", PASSWORD_RATE_LIMIT=request.remote_addr, PASSWORD_ACCOUNT_RATE_LIMIT=user_id)
    user_inputs = (current_user["name"], current_user["email"])
    fields = validate.load(account_requests.PasswordChange, json_body(), context={"user_inputs": user_inputs})
    wrong = validate.InvalidInput({"current_password": "Current password is incorrect."})
    confirm_password(
        current_user, current_user["email"], fields.current_password, failure=wrong, event="password_change_failed"
    )
    require_second_factor(current_user, fields, "password_change")
    user = set_password(user_id, fields.new_password)  # with its new token version
    Sessions.revoke_all(user_id, reason="password_changed", keep=g.session_id)
    session, new_refresh_token = Sessions.reissue(user_id, g.session_id, User.token_version(user))
    record("password_changed", user_id)
    queue("password_changed", current_user["email"], user_id)
    return tokens_reply("Password changed.", token_response(user, session, new_refresh_token))


@password.post("/password/forgot")
@documented(
    tags=["account recovery"],
    ok=(202, Accepted),
    json=account_requests.PasswordForgot,
    errors=(400, 413, 415, 429),
)
def forgot_password() -> Reply:
    """Ask for a password-reset link by mail. The answer is the same whether or not an account
    has the address, and so is the work done here: the outbox's sender looks the account up."""
    rate_limit("password_forgot", PASSWORD_FORGOT_RATE_LIMIT=request.remote_addr)
    fields = validate.load(account_requests.PasswordForgot, json_body())
    rate_limit("password_forgot", PASSWORD_FORGOT_EMAIL_RATE_LIMIT=fields.email)
    queue("password_reset", fields.email)
    return envelope(FORGOT_SENT, status=202)


@password.post("/password/reset")
@documented(
    tags=["account recovery"],
    ok=(200, Envelope[None]),
    json=account_requests.PasswordReset,
    errors=(400, 413, 415, 429),
)
def reset_password() -> Reply:
    """Set a new password with the token of a reset link. Every session ends; no tokens are
    returned: log in with the new password (and the second factor, when it is on)."""
    rate_limit("link_token", LINK_TOKEN_RATE_LIMIT=request.remote_addr)
    body = json_body()
    token = validate.load(account_requests.LinkToken, body).token
    entry = LinkTokens.find(token, (RESET_PASSWORD,))
    user = User.find_by_id(entry["user_id"]) if entry else None
    if entry is None or user is None or user["disabled"]:
        raise invalid_link(RESET_PASSWORD)
    # Checked against the account's own name and address, as at sign-up.
    context = {"user_inputs": (user["name"], user["email"])}
    fields = validate.load(account_requests.PasswordReset, body, context=context)
    if LinkTokens.consume(token, (RESET_PASSWORD,)) is None:  # used a moment ago by another request
        raise invalid_link(RESET_PASSWORD)
    reset_account_password(user, fields.new_password, entry["data"]["email"])
    record("password_reset", user["_id"])
    queue("password_reset_done", user["email"], user["_id"])
    return envelope("Password changed. Log in with the new password.")
