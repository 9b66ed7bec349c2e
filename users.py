"""Accounts and their sessions: sign-up, login, refresh, logout, the session list,
password change, the audit log and the account itself."""

from __future__ import annotations

from flask import Blueprint, current_app, g, request
from pymongo.errors import DuplicateKeyError
from werkzeug.exceptions import Conflict, Forbidden, NotFound, Unauthorized

import mail
import validate
from api_docs import documented
from auth_middleware import (
    clear_refresh_cookies,
    client_info,
    presented_refresh_token,
    record,
    start_session,
    token_required,
    token_response,
    tokens_reply,
)
from auth_models import Events, RefreshOutcome, Sessions
from books import remove_covers_of
from models import User, mfa_enabled
from responses import conditional, envelope, json_body, optional_json_body, query_args
from throttling import check_lockout, clear_failures, count_failure, rate_limit
from two_factor import BAD_CREDENTIALS, mfa_challenge, require_password, require_second_factor

users = Blueprint("users", __name__)

CHECK_EMAIL = "Check your email to finish signing up."
UNVERIFIED = (
    "Verify your email address first: open the link in the mail we sent you. "
    "For a new link, sign up again with the same address."
)
REFRESH_INVALID = "Refresh token is invalid or expired."


def _no_content():
    """204 that also clears the refresh cookies, for the routes that end sessions."""
    response = current_app.make_response(("", 204))
    clear_refresh_cookies(response)
    return response


@users.post("/")
@documented(
    tags=["users"],
    ok=(201, validate.Envelope[validate.UserOut]),
    json=validate.SignUp,
    errors=(400, 409, 429),
    messages={409: "An account with this email already exists."},
    also=((202, validate.Accepted),),
)
def sign_up():
    """Create an account and mail a link to verify its address. With REQUIRE_VERIFIED_EMAIL,
    a new and a registered address get the same 202, and the owner of a registered one a mail."""
    rate_limit("signup", SIGNUP_RATE_LIMIT=request.remote_addr)
    fields = validate.load(validate.SignUp, json_body())
    require_verified = current_app.config["REQUIRE_VERIFIED_EMAIL"]
    try:
        user = User.create(fields.name, fields.email, fields.password)
    except DuplicateKeyError:
        if not require_verified:
            raise Conflict("An account with this email already exists.") from None
        record("signup_existing_email", None, email=fields.email)
        mail.queue("signup_attempt", fields.email)
        return envelope(CHECK_EMAIL, status=202)
    record("signup", user["_id"])
    mail.queue("verify_email", user["email"], user["_id"])
    if require_verified:
        return envelope(CHECK_EMAIL, status=202)
    return envelope("Account created.", User.to_json(user), 201)


@users.post("/login")
@documented(
    tags=["users"],
    ok=(200, validate.Envelope[validate.LoginOut | validate.MfaChallengeOut]),
    json=validate.Login,
    errors=(400, 401, 403, 429),
    messages={401: BAD_CREDENTIALS},
)
def login():
    """Exchange email and password for an access token and a refresh token."""
    fields = validate.load(validate.Login, json_body())
    email = fields.email
    rate_limit("login", LOGIN_RATE_LIMIT=request.remote_addr, LOGIN_ACCOUNT_RATE_LIMIT=email)
    user = User.find_by_email(email)
    user_id = user["_id"] if user else None
    # Locked or not says nothing about whether the account exists: unknown emails
    # are counted and locked exactly like known ones.
    lock = check_lockout(email, user_id)
    if not User.check_password(user, fields.password) or user["disabled"]:
        count_failure(lock)
        record("login_failed", user_id, email=email)
        raise Unauthorized(BAD_CREDENTIALS)
    if current_app.config["REQUIRE_VERIFIED_EMAIL"] and not user.get("email_verified"):
        record("login_unverified", user_id)
        raise Forbidden(UNVERIFIED)
    if mfa_enabled(user):
        return mfa_challenge(user)  # the failure count stays until the second step succeeds
    clear_failures(lock)
    tokens = start_session(user)
    record("login", user_id)
    return tokens_reply("Logged in.", {**User.to_json(user), **tokens})


@users.post("/token/refresh")
@documented(
    tags=["sessions"],
    ok=(200, validate.Envelope[validate.TokensOut]),
    json=validate.RefreshRequest,
    errors=(400, 401, 403, 429),
    messages={401: REFRESH_INVALID, 403: "The X-CSRF-Token header must match the csrf_token cookie."},
    operation_id="refreshToken",
)
def refresh():
    """Exchange a refresh token for new tokens; the old refresh token stops working, except
    for a repeat within REFRESH_REUSE_INTERVAL_SECONDS (another tab), which gets the same one."""
    rate_limit("refresh", REFRESH_RATE_LIMIT=request.remote_addr)
    presented = presented_refresh_token()
    outcome, session = Sessions.check(presented)
    if outcome is RefreshOutcome.INVALID:
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


def _exchange(outcome: RefreshOutcome, session: dict, presented: str) -> str:
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


@users.post("/logout")
@documented(tags=["sessions"], ok=(204, None), auth=True)
@token_required
def logout(current_user):
    """End the current session: its refresh token and access tokens stop working now."""
    Sessions.revoke(current_user["_id"], g.session_id, reason="logout")
    record("logout", current_user["_id"], session_id=str(g.session_id))
    return _no_content()


@users.post("/logout-all")
@documented(tags=["sessions"], ok=(204, None), auth=True)
@token_required
def logout_all(current_user):
    """End every session of the caller."""
    Sessions.revoke_all(current_user["_id"], reason="logout_all")
    record("logout_all", current_user["_id"])
    return _no_content()


@users.get("/sessions")
@documented(tags=["sessions"], ok=(200, validate.Envelope[list[validate.SessionOut]]), auth=True)
@token_required
def list_sessions(current_user):
    """The caller's active sessions, most recently used first."""
    sessions = Sessions.active(current_user)
    return envelope("Sessions.", [Sessions.to_json(s, g.session_id) for s in sessions])


@users.delete("/sessions/<objectid:session_id>")
@documented(tags=["sessions"], ok=(204, None), auth=True, errors=(404,), messages={404: "Session not found."})
@token_required
def end_session(current_user, session_id):
    """End one of the caller's sessions."""
    live = session_id is not None and session_id in User.session_ids(current_user)
    if not live or not Sessions.revoke(current_user["_id"], session_id, reason="ended_by_user"):
        raise NotFound("Session not found.")
    record("session_ended", current_user["_id"], session_id=str(session_id))
    return "", 204


@users.put("/password")
@documented(
    tags=["sessions"],
    ok=(200, validate.Envelope[validate.TokensOut]),
    json=validate.PasswordChange,
    auth=True,
    errors=(400, 429),
)
@token_required
def change_password(current_user):
    """Change the password; every other session ends, this one gets fresh tokens."""
    user_id = current_user["_id"]
    rate_limit("password", PASSWORD_RATE_LIMIT=request.remote_addr, PASSWORD_ACCOUNT_RATE_LIMIT=user_id)
    user_inputs = (current_user["name"], current_user["email"])
    fields = validate.load(validate.PasswordChange, json_body(), context={"user_inputs": user_inputs})
    lock = check_lockout(current_user["email"], user_id)
    if not User.check_password(current_user, fields.current_password):
        count_failure(lock)
        record("password_change_failed", user_id)
        raise validate.InvalidInput({"current_password": "Current password is incorrect."})
    require_second_factor(current_user, fields, "password_change")
    user = User.set_password(user_id, fields.new_password)  # with its new token version
    Sessions.revoke_all(user_id, reason="password_changed", keep=g.session_id)
    session, new_refresh_token = Sessions.reissue(user_id, g.session_id, User.token_version(user))
    record("password_changed", user_id)
    mail.queue("password_changed", current_user["email"], user_id)
    return tokens_reply("Password changed.", token_response(user, session, new_refresh_token))


@users.get("/events")
@documented(
    tags=["users"],
    ok=(200, validate.EventList),
    query=validate.EventsQuery,
    auth=True,
    errors=(400,),
)
@token_required
def list_events(current_user):
    """The caller's recent auth events, newest first."""
    query = validate.load(validate.EventsQuery, query_args(validate.EventsQuery))
    events = Events.recent(current_user["_id"], query.limit)
    return envelope("Events.", [Events.to_json(e) for e in events])


@users.get("/")
@documented(
    tags=["users"],
    ok=(200, validate.Envelope[validate.UserOut]),
    auth=True,
    errors=(304,),
    headers=validate.IfNoneMatch,
)
@token_required
def get_current_user(current_user):
    """The caller's account."""
    return conditional(envelope("Current user.", User.to_json(current_user)))


@users.put("/")
@documented(
    tags=["users"],
    ok=(200, validate.Envelope[validate.UserOut]),
    json=validate.UserUpdate,
    auth=True,
    errors=(400,),
)
@token_required
def update_user(current_user):
    """Change the caller's name."""
    fields = validate.load(validate.UserUpdate, json_body())
    user = User.update_name(current_user["_id"], fields.name)
    return envelope("Account updated.", User.to_json(user or current_user))


@users.delete("/")
@documented(
    tags=["users"],
    ok=(204, None),
    json=validate.AccountDisable,
    auth=True,
    errors=(400, 401, 413, 415, 429),
    operation_id="disableAccount",
)
@token_required
def disable_user(current_user):
    """Disable the caller's account: every session ends and it can no longer log in.
    The JSON body carries the `password`, and with a second factor on a `code` or `recovery_code`."""
    fields = validate.load(validate.AccountDisable, optional_json_body())
    require_password(current_user, fields.password, "disable_account")
    require_second_factor(current_user, fields, "disable_account")
    User.disable(current_user["_id"], current_app.config["ACCOUNT_PURGE_DAYS"])
    Sessions.revoke_all(current_user["_id"], reason="account_disabled")
    # Covers are public by URL: a disabled account's go at once, not with its purge.
    remove_covers_of(current_user["_id"])
    record("account_disabled", current_user["_id"])
    mail.queue("account_disabled", current_user["email"], current_user["_id"])
    return _no_content()
