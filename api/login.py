"""/users/login (and its second step, /users/login/mfa), /users/token/refresh, /users/logout
and /users/logout-all: signing in and out."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, g, request
from werkzeug.exceptions import Unauthorized

import validate
from api import account_requests
from api.cookies import no_content, presented_refresh_token, tokens_reply
from api.openapi import documented
from api.responses import Reply, envelope, json_body
from api.schemas import Envelope, LoginOut, MfaChallengeOut, TokensOut, UserOut
from auth.audit import client_info, record
from auth.mfa_tickets import MFA_TICKET_SECONDS, MfaTickets, create_mfa_ticket, read_mfa_ticket
from auth.passwords import BAD_CREDENTIALS, confirm_password
from auth.sessions import RefreshOutcome, Sessions, require_verified_address, start_session, token_response
from auth.throttling import check_lockout, clear_failures, count_failure, rate_limit
from auth.totp import second_factor_ok
from auth_middleware import token_required
from database.documents import Document, parse_object_id
from models import User, mfa_enabled
from workflows.accounts import log_out_everywhere

login_routes = Blueprint("login", __name__)

REFRESH_INVALID = "Refresh token is invalid or expired."
TICKET_INVALID = "The sign-in ticket is invalid or has expired; log in again."
TICKET_SPENT = "The sign-in ticket was used, expired or had too many wrong codes; log in again."
BAD_CODE = "The code is not valid."


@login_routes.post("/login")
@documented(
    tags=["users"],
    ok=(200, Envelope[LoginOut | MfaChallengeOut]),
    json=account_requests.Login,
    errors=(400, 401, 403, 429),
    messages={401: BAD_CREDENTIALS},
)
def login() -> Reply:
    """Exchange email and password for an access token and a refresh token."""
    fields = validate.load(account_requests.Login, json_body())
    email = fields.email
    rate_limit("login", LOGIN_RATE_LIMIT=request.remote_addr, LOGIN_ACCOUNT_RATE_LIMIT=email)
    user = User.find_by_email(email)
    # Locked or not says nothing about whether the account exists: unknown emails
    # are counted and locked exactly like known ones.
    failure = Unauthorized(BAD_CREDENTIALS)
    lock = confirm_password(user, email, fields.password, failure=failure, event="login_failed", email=email)
    assert user is not None  # confirm_password refused an unknown email
    require_verified_address(user)
    if mfa_enabled(user):
        return _mfa_challenge(user)  # the failure count stays until the second step succeeds
    clear_failures(lock)
    tokens = start_session(user)
    record("login", user["_id"])
    return tokens_reply("Logged in.", {**UserOut.of(user), **tokens, "mfa_required": False})


def _mfa_challenge(user: Document) -> Reply:
    """The answer to a correct password when the account has a second factor."""
    record("mfa_challenge", user["_id"])
    ticket = {"mfa_required": True, "mfa_ticket": create_mfa_ticket(user["_id"]), "expires_in": MFA_TICKET_SECONDS}
    return envelope("Enter the code from your authenticator app.", ticket)


@login_routes.post("/token/refresh")
@documented(
    tags=["sessions"],
    ok=(200, Envelope[TokensOut]),
    json=account_requests.RefreshRequest,
    errors=(400, 401, 403, 429),
    messages={401: REFRESH_INVALID, 403: "The X-CSRF-Token header must match the csrf_token cookie."},
    operation_id="refreshToken",
)
def refresh() -> Reply:
    """Exchange a refresh token for new tokens; the old refresh token stops working, except
    for a repeat within REFRESH_REUSE_INTERVAL_SECONDS (another tab), which gets the same one."""
    rate_limit("refresh", REFRESH_RATE_LIMIT=request.remote_addr)
    presented = presented_refresh_token()
    outcome, session = Sessions.check(presented)
    if outcome is RefreshOutcome.INVALID or session is None:
        raise Unauthorized(REFRESH_INVALID)
    user_id = session["user_id"]
    # Counted per account only once the token is known to be genuine, so nobody can
    # use up another account's allowance with forged tokens.
    rate_limit("refresh", REFRESH_ACCOUNT_RATE_LIMIT=user_id)
    new_token = _exchange(outcome, session, presented)
    user = User.get_for_session(user_id, session["_id"])
    if user is None:
        raise Unauthorized(REFRESH_INVALID)
    if Sessions.outdated(session, user):  # a login that raced a password change
        Sessions.revoke(user_id, session["_id"], reason="password_changed")
        raise Unauthorized(REFRESH_INVALID)
    repeated = {"repeated": True} if outcome is RefreshOutcome.REPEATED else {}
    record("refresh", user_id, session_id=str(session["_id"]), **repeated)
    return tokens_reply("Tokens refreshed.", token_response(user, session, new_token))


def _exchange(outcome: RefreshOutcome, session: Document, presented: str) -> str:
    """The next refresh token; a token used before, outside a repeat, ends the session."""
    new_token = None
    if outcome is RefreshOutcome.VALID:
        new_token = Sessions.rotate(session, presented, *client_info())
    elif outcome is RefreshOutcome.REPEATED:
        new_token = Sessions.repeat(session, presented)
    if new_token is None:
        Sessions.revoke(session["user_id"], session["_id"], reason="refresh_token_reused")
        record("refresh_token_reused", session["user_id"], session_id=str(session["_id"]))
        raise Unauthorized("Refresh token was already used; the session has been ended.")
    return new_token


@login_routes.post("/logout")
@documented(tags=["sessions"], ok=(204, None), auth=True)
@token_required
def logout(current_user: dict[str, Any]) -> Response:
    """End the current session: its refresh token and access tokens stop working now."""
    Sessions.revoke(current_user["_id"], g.session_id, reason="logout")
    record("logout", current_user["_id"], session_id=str(g.session_id))
    return no_content()


@login_routes.post("/logout-all")
@documented(tags=["sessions"], ok=(204, None), auth=True)
@token_required
def logout_all(current_user: dict[str, Any]) -> Response:
    """End every session of the caller and revoke every personal access token."""
    log_out_everywhere(current_user["_id"])
    record("logout_all", current_user["_id"])
    return no_content()


@login_routes.post("/login/mfa")
@documented(
    tags=["mfa"],
    ok=(200, Envelope[LoginOut]),
    json=account_requests.MfaLogin,
    errors=(400, 401, 429),
    messages={401: BAD_CODE},
    operation_id="logInWithCode",
)
def login_mfa() -> Reply:
    """Finish a login with a second factor: the ticket from /users/login and a code."""
    fields = validate.load(account_requests.MfaLogin, json_body())
    if fields.code is None and fields.recovery_code is None:
        raise validate.InvalidInput({"code": "Send the code from your authenticator app, or a recovery_code."})
    rate_limit("login", LOGIN_RATE_LIMIT=request.remote_addr)
    claims = read_mfa_ticket(fields.mfa_ticket)
    user = User.find_by_id(parse_object_id(claims["sub"])) if claims else None  # type: ignore[arg-type]
    if claims is None or user is None or user["disabled"] or not mfa_enabled(user):
        raise Unauthorized(TICKET_INVALID)
    rate_limit("login", LOGIN_ACCOUNT_RATE_LIMIT=user["email"])
    if MfaTickets.usable(claims["jti"]) is None:
        raise Unauthorized(TICKET_SPENT)
    lock = check_lockout(user["email"], user["_id"])
    if not second_factor_ok(user, fields):
        MfaTickets.failed_attempt(claims["jti"])
        count_failure(lock)
        record("mfa_failed", user["_id"], step="login")
        raise Unauthorized(BAD_CODE)
    if not MfaTickets.spend(claims["jti"]):
        raise Unauthorized(TICKET_SPENT)
    clear_failures(lock)
    tokens = start_session(user)
    record("login", user["_id"], mfa=True)
    return tokens_reply("Logged in.", {**UserOut.of(user), **tokens, "mfa_required": False})
