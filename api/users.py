"""/users/: the account itself (sign-up, read, rename, close) and /users/events, its audit log."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, request
from pymongo.errors import DuplicateKeyError
from werkzeug.exceptions import Conflict

import validate
from api import account_requests, book_requests, cursors
from api.cookies import no_content
from api.openapi import documented
from api.responses import Reply, conditional, envelope, json_body, optional_json_body, query_args
from api.schemas import Accepted, Envelope, EventList, EventOut, UserOut
from auth.audit import Events, record
from auth.passwords import hash_password, require_password
from auth.throttling import rate_limit
from auth.totp import require_second_factor
from auth_middleware import token_required
from mail.outbox import queue
from models import User
from workflows.accounts import disable_account

users = Blueprint("users", __name__)

CHECK_EMAIL = "Check your email to finish signing up."
BAD_CURSOR = "This cursor is not valid for your events; start again without it."


@users.post("/")
@documented(
    tags=["users"],
    ok=(201, Envelope[UserOut]),
    json=account_requests.SignUp,
    errors=(400, 409, 429),
    messages={409: "An account with this email already exists."},
    also=((202, Accepted),),
)
def sign_up() -> Reply:
    """Create an account and mail a link to verify its address. With REQUIRE_VERIFIED_EMAIL,
    a new and a registered address get the same 202, and the owner of a registered one a mail:
    when nobody has verified that account yet, a link that makes it this sign-up's."""
    rate_limit("signup", SIGNUP_RATE_LIMIT=request.remote_addr)
    fields = validate.load(account_requests.SignUp, json_body())
    require_verified = current_app.config["REQUIRE_VERIFIED_EMAIL"]
    password_hash = hash_password(fields.password)
    try:
        user = User.create(fields.name, fields.email, password_hash)
    except DuplicateKeyError:
        if not require_verified:
            raise Conflict("An account with this email already exists.") from None
        _sign_up_again(fields, password_hash)
        return envelope(CHECK_EMAIL, status=202)
    record("signup", user["_id"])
    queue("verify_email", user["email"], user["_id"])
    if require_verified:
        return envelope(CHECK_EMAIL, status=202)
    return envelope("Account created.", UserOut.of(user), 201)


def _sign_up_again(fields: account_requests.SignUp, password_hash: str) -> None:
    """A sign-up with a registered address. An unverified account is nobody's yet: this sign-up
    waits beside it, and its link (replacing any earlier) gives the account to whoever opens it."""
    claim = User.add_claim(fields.email, fields.name, password_hash)
    if claim is None:  # verified (or disabled): its owner is told, nothing changes
        record("signup_existing_email", None, email=fields.email)
        queue("signup_attempt", fields.email)
        return
    user_id, claim_id = claim
    record("signup_again", user_id)
    queue("claim_account", fields.email, user_id, claim=claim_id)


@users.get("/")
@documented(
    tags=["users"],
    ok=(200, Envelope[UserOut]),
    auth=True,
    errors=(304,),
    headers=book_requests.IfNoneMatch,
)
@token_required(scopes=["account:read"])
def get_current_user(current_user: dict[str, Any]) -> Response:
    """The caller's account."""
    return conditional(envelope("Current user.", UserOut.of(current_user)))


@users.put("/")
@documented(
    tags=["users"],
    ok=(200, Envelope[UserOut]),
    json=account_requests.UserUpdate,
    auth=True,
    errors=(400,),
)
@token_required
def update_user(current_user: dict[str, Any]) -> Reply:
    """Change the caller's name."""
    fields = validate.load(account_requests.UserUpdate, json_body())
    user = User.update_name(current_user["_id"], fields.name)
    return envelope("Account updated.", UserOut.of(user or current_user))


@users.delete("/")
@documented(
    tags=["users"],
    ok=(204, None),
    json=account_requests.AccountDisable,
    auth=True,
    errors=(400, 401, 413, 415, 429),
    operation_id="disableAccount",
)
@token_required
def disable_user(current_user: dict[str, Any]) -> Response:
    """Disable the caller's account: every session ends and it can no longer log in.
    The JSON body carries the `password`, and with a second factor on a `code` or `recovery_code`."""
    user_id = current_user["_id"]
    fields = validate.load(account_requests.AccountDisable, optional_json_body())
    require_password(current_user, fields.password, "disable_account")
    require_second_factor(current_user, fields, "disable_account")
    disable_account(user_id, current_app.config["ACCOUNT_PURGE_DAYS"])
    record("account_disabled", user_id)
    queue("account_disabled", current_user["email"], user_id)
    return no_content()


@users.get("/events")
@documented(
    tags=["users"],
    ok=(200, EventList),
    query=account_requests.EventsQuery,
    auth=True,
    errors=(400,),
)
@token_required
def list_events(current_user: dict[str, Any]) -> Reply:
    """The caller's auth events, newest first, a page at a time (`before=meta.next_before`).
    Failed logins, which anyone can cause by typing the address, are left out unless asked for."""
    query = validate.load(account_requests.EventsQuery, query_args(account_requests.EventsQuery))
    try:
        before = cursors.decode_event(query.before) if query.before is not None else None
    except cursors.BadCursor:
        raise validate.InvalidInput({"before": BAD_CURSOR}) from None
    # One more than the page, to know whether another page follows.
    events = Events.recent(current_user["_id"], query.limit + 1, before, query.failed_logins)
    events, more = events[: query.limit], len(events) > query.limit
    last = events[-1] if more else None
    meta = {
        "limit": query.limit,
        "failed_logins": query.failed_logins,
        "next_before": cursors.encode_event(last["at"], last["_id"]) if last else None,
    }
    return envelope("Events.", [EventOut.of(event) for event in events], meta=meta)
