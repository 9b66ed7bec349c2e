"""/users/: the account itself (sign-up, read, rename, close) and /users/events, its audit log."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, request
from pymongo.errors import DuplicateKeyError
from werkzeug.exceptions import Conflict, Unauthorized

import validate
from api.cookies import no_content
from api.openapi import documented
from api.responses import Reply, conditional, envelope, json_body, optional_json_body, query_args
from api.schemas import Accepted, Envelope, EventList, EventOut, UserOut
from auth.audit import Events, record
from auth.passwords import BAD_CREDENTIALS, confirm_password, hash_password
from auth.throttling import rate_limit
from auth.totp import require_second_factor
from auth_middleware import token_required
from mail.outbox import queue
from models import User
from workflows.accounts import disable_account

users = Blueprint("users", __name__)

CHECK_EMAIL = "Check your email to finish signing up."


@users.post("/")
@documented(
    tags=["users"],
    ok=(201, Envelope[UserOut]),
    json=validate.SignUp,
    errors=(400, 409, 429),
    messages={409: "An account with this email already exists."},
    also=((202, Accepted),),
)
def sign_up() -> Reply:
    """Create an account and mail a link to verify its address. With REQUIRE_VERIFIED_EMAIL,
    a new and a registered address get the same 202, and the owner of a registered one a mail."""
    rate_limit("signup", SIGNUP_RATE_LIMIT=request.remote_addr)
    fields = validate.load(validate.SignUp, json_body())
    require_verified = current_app.config["REQUIRE_VERIFIED_EMAIL"]
    try:
        user = User.create(fields.name, fields.email, hash_password(fields.password))
    except DuplicateKeyError:
        if not require_verified:
            raise Conflict("An account with this email already exists.") from None
        record("signup_existing_email", None, email=fields.email)
        queue("signup_attempt", fields.email)
        return envelope(CHECK_EMAIL, status=202)
    record("signup", user["_id"])
    queue("verify_email", user["email"], user["_id"])
    if require_verified:
        return envelope(CHECK_EMAIL, status=202)
    return envelope("Account created.", UserOut.of(user), 201)


@users.get("/")
@documented(
    tags=["users"],
    ok=(200, Envelope[UserOut]),
    auth=True,
    errors=(304,),
    headers=validate.IfNoneMatch,
)
@token_required(scopes=["account:read"])
def get_current_user(current_user: dict[str, Any]) -> Response:
    """The caller's account."""
    return conditional(envelope("Current user.", UserOut.of(current_user)))


@users.put("/")
@documented(
    tags=["users"],
    ok=(200, Envelope[UserOut]),
    json=validate.UserUpdate,
    auth=True,
    errors=(400,),
)
@token_required
def update_user(current_user: dict[str, Any]) -> Reply:
    """Change the caller's name."""
    fields = validate.load(validate.UserUpdate, json_body())
    user = User.update_name(current_user["_id"], fields.name)
    return envelope("Account updated.", UserOut.of(user or current_user))


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
def disable_user(current_user: dict[str, Any]) -> Response:
    """Disable the caller's account: every session ends and it can no longer log in.
    The JSON body carries the `password`, and with a second factor on a `code` or `recovery_code`."""
    user_id = current_user["_id"]
    fields = validate.load(validate.AccountDisable, optional_json_body())
    rate_limit("password", PASSWORD_ACCOUNT_RATE_LIMIT=user_id)
    confirm_password(
        current_user,
        current_user["email"],
        fields.password,
        failure=Unauthorized(BAD_CREDENTIALS),
        event="password_check_failed",
        step="disable_account",
    )
    require_second_factor(current_user, fields, "disable_account")
    disable_account(user_id, current_app.config["ACCOUNT_PURGE_DAYS"])
    record("account_disabled", user_id)
    queue("account_disabled", current_user["email"], user_id)
    return no_content()


@users.get("/events")
@documented(
    tags=["users"],
    ok=(200, EventList),
    query=validate.EventsQuery,
    auth=True,
    errors=(400,),
)
@token_required
def list_events(current_user: dict[str, Any]) -> Reply:
    """The caller's recent auth events, newest first."""
    query = validate.load(validate.EventsQuery, query_args(validate.EventsQuery))
    events = Events.recent(current_user["_id"], query.limit)
    return envelope("Events.", [EventOut.of(event) for event in events])
