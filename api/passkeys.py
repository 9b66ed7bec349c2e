"""/users/passkeys… (adding, listing, renaming and removing passkeys) and /users/login/passkey…
(signing in with one): WebAuthn, verified in auth/passkey_ceremonies.py. The password login is
in login.py."""

from __future__ import annotations

from typing import Any

from bson import ObjectId
from flask import Blueprint, request
from werkzeug.exceptions import Conflict, NotFound, Unauthorized

import validate
from api import passkey_requests
from api.cookies import tokens_reply
from api.openapi import documented
from api.responses import Reply, envelope, json_body
from api.schemas import Envelope, LoginOut, PasskeyOptionsOut, PasskeyOut, UserOut
from auth.audit import record
from auth.passkey_ceremonies import (
    CHALLENGE_SECONDS,
    NOT_VERIFIED,
    REGISTERED_ALREADY,
    CloneSignal,
    PasskeyRefused,
    authentication_options,
    find_passkey,
    finish_registration,
    registration_options,
    verify_assertion,
)
from auth.passkeys import Passkeys
from auth.passwords import BAD_CREDENTIALS, confirm_password
from auth.sessions import require_verified_address, start_session
from auth.throttling import LockState, check_lockout, clear_failures, count_failure, rate_limit
from auth_middleware import token_required
from database.documents import Document
from mail.outbox import queue
from models import User

passkeys = Blueprint("passkeys", __name__)

NOT_FOUND = "Passkey not found."
ONLY_WAY_IN = "This passkey is the only way into the account: set a password or add another passkey first."
CONFIRM = "Send the password, or an assertion of one of your passkeys."


def _options(message: str, options: dict[str, Any]) -> Reply:
    return envelope(message, {"options": options, "expires_in": CHALLENGE_SECONDS})


def _check_assertion(
    credential: dict[str, Any], passkey: Document | None, user: Document | None, lock: LockState
) -> None:
    """A passkey's assertion, counted under the lock-out like a password: 401 when it fails,
    and a clone signal is recorded as such."""
    user_id = user["_id"] if user else None
    try:
        if user is not None and user["disabled"]:
            raise PasskeyRefused(NOT_VERIFIED, "account disabled")
        verify_assertion(credential, passkey, user_id)
    except PasskeyRefused as exc:
        count_failure(lock)
        kind = "passkey_clone_signal" if isinstance(exc, CloneSignal) else "passkey_check_failed"
        record(kind, user_id, reason=exc.reason, **({"passkey_id": str(passkey["_id"])} if passkey else {}))
        raise Unauthorized(exc.message) from exc


@passkeys.post("/passkeys/registration/options")
@documented(
    tags=["passkeys"],
    ok=(200, Envelope[PasskeyOptionsOut]),
    json=passkey_requests.PasskeyConfirm,
    auth=True,
    errors=(400, 429),
    messages={401: BAD_CREDENTIALS},
)
@token_required
def passkey_registration_options(current_user: dict[str, Any]) -> Reply:
    """Start adding a passkey (a sensitive action: the password, or an existing passkey's
    assertion); answer within five minutes at POST /users/passkeys."""
    fields = validate.load(passkey_requests.PasskeyConfirm, json_body())
    rate_limit("password", PASSWORD_ACCOUNT_RATE_LIMIT=current_user["_id"])
    if fields.password is not None:
        confirm_password(
            current_user,
            current_user["email"],
            fields.password,
            failure=Unauthorized(BAD_CREDENTIALS),
            event="password_check_failed",
            step="passkey_registration",
        )
    elif fields.passkey is not None:
        lock = check_lockout(current_user["email"], current_user["_id"])
        _check_assertion(fields.passkey, find_passkey(fields.passkey), current_user, lock)
    else:
        raise validate.InvalidInput({"password": CONFIRM})
    options = registration_options(current_user, Passkeys.of_user(current_user["_id"]))
    return _options("Create the passkey in the browser, then send its answer.", options)


@passkeys.post("/passkeys")
@documented(
    tags=["passkeys"],
    ok=(201, Envelope[PasskeyOut]),
    json=passkey_requests.PasskeyRegistration,
    auth=True,
    errors=(400, 409),
    messages={409: REGISTERED_ALREADY},
)
@token_required
def add_passkey(current_user: dict[str, Any]) -> Reply:
    """Finish adding a passkey: the answer of navigator.credentials.create()."""
    fields = validate.load(passkey_requests.PasskeyRegistration, json_body())
    try:
        passkey = finish_registration(current_user, fields.credential, fields.name)
    except PasskeyRefused as exc:
        record("passkey_registration_failed", current_user["_id"], reason=exc.reason)
        if exc.message == REGISTERED_ALREADY:
            raise Conflict(REGISTERED_ALREADY) from exc
        raise validate.InvalidInput({"credential": exc.message}) from exc
    record("passkey_added", current_user["_id"], passkey_id=str(passkey["_id"]), name=passkey["name"])
    queue("passkey_added", current_user["email"], current_user["_id"], passkey_name=passkey["name"])
    return envelope("Passkey added.", PasskeyOut.of(passkey), 201)


@passkeys.get("/passkeys")
@documented(tags=["passkeys"], ok=(200, Envelope[list[PasskeyOut]]), auth=True)
@token_required
def list_passkeys(current_user: dict[str, Any]) -> Reply:
    """The caller's passkeys, newest first."""
    return envelope("Passkeys.", [PasskeyOut.of(passkey) for passkey in Passkeys.of_user(current_user["_id"])])


@passkeys.patch("/passkeys/<objectid:passkey_id>")
@documented(
    tags=["passkeys"],
    ok=(200, Envelope[PasskeyOut]),
    json=passkey_requests.PasskeyRename,
    auth=True,
    errors=(400, 404),
    messages={404: NOT_FOUND},
)
@token_required
def rename_passkey(current_user: dict[str, Any], passkey_id: ObjectId | None) -> Reply:
    """Rename one of the caller's passkeys."""
    fields = validate.load(passkey_requests.PasskeyRename, json_body())
    passkey = Passkeys.rename(current_user["_id"], passkey_id, fields.name) if passkey_id else None
    if passkey is None:
        raise NotFound(NOT_FOUND)
    return envelope("Passkey renamed.", PasskeyOut.of(passkey))


@passkeys.delete("/passkeys/<objectid:passkey_id>")
@documented(
    tags=["passkeys"], ok=(204, None), auth=True, errors=(404, 409), messages={404: NOT_FOUND, 409: ONLY_WAY_IN}
)
@token_required
def delete_passkey(current_user: dict[str, Any], passkey_id: ObjectId | None) -> tuple[str, int]:
    """Remove one of the caller's passkeys; the last way in (no password, no other passkey) stays."""
    if not current_user.get("password") and Passkeys.count(current_user["_id"]) <= 1:
        raise Conflict(ONLY_WAY_IN)
    passkey = Passkeys.delete(current_user["_id"], passkey_id) if passkey_id else None
    if passkey is None:
        raise NotFound(NOT_FOUND)
    record("passkey_removed", current_user["_id"], passkey_id=str(passkey["_id"]), name=passkey["name"])
    queue("passkey_removed", current_user["email"], current_user["_id"], passkey_name=passkey["name"])
    return "", 204


@passkeys.post("/login/passkey/options")
@documented(tags=["passkeys"], ok=(200, Envelope[PasskeyOptionsOut]), errors=(429,), operation_id="passkeyLoginOptions")
def passkey_login_options() -> Reply:
    """Start signing in with a passkey: no email, the browser offers the passkeys it holds."""
    rate_limit("login", LOGIN_RATE_LIMIT=request.remote_addr)
    return _options("Choose a passkey in the browser, then send its answer.", authentication_options())


@passkeys.post("/login/passkey")
@documented(
    tags=["passkeys"],
    ok=(200, Envelope[LoginOut]),
    json=passkey_requests.PasskeyLogin,
    errors=(400, 401, 403, 429),
    messages={401: NOT_VERIFIED},
    operation_id="logInWithPasskey",
)
def login_passkey() -> Reply:
    """Finish signing in with a passkey: the answer of navigator.credentials.get(). A passkey
    verifies its user, so it is both factors: no code follows."""
    fields = validate.load(passkey_requests.PasskeyLogin, json_body())
    rate_limit("login", LOGIN_RATE_LIMIT=request.remote_addr)
    passkey = find_passkey(fields.credential)
    user = User.find_by_id(passkey["user_id"]) if passkey else None
    # The password's counters when the account is known, else the credential's own.
    key = user["email"] if user else f"passkey {str(fields.credential.get('rawId'))[:200]}"
    rate_limit("login", LOGIN_ACCOUNT_RATE_LIMIT=key)
    lock = check_lockout(key, user["_id"] if user else None)
    _check_assertion(fields.credential, passkey, user, lock)
    assert passkey is not None and user is not None  # _check_assertion refused an unknown passkey
    require_verified_address(user)
    clear_failures(lock)
    tokens = start_session(user)
    record("login", user["_id"], passkey_id=str(passkey["_id"]))
    return tokens_reply("Logged in.", {**UserOut.of(user), **tokens})
