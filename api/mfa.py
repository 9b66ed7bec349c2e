"""/users/mfa/…: turning the second factor (TOTP) on and off, and new recovery codes.
The second login step is /users/login/mfa, in login.py."""

from __future__ import annotations

from typing import Any

from flask import Blueprint
from werkzeug.exceptions import Conflict, Forbidden

import validate
from api import account_requests
from api.openapi import documented
from api.responses import Reply, envelope, json_body, optional_json_body
from api.schemas import Envelope, MfaEnrollmentOut, RecoveryCodesOut
from auth.audit import record
from auth.passwords import confirm_password, require_password
from auth.throttling import rate_limit
from auth.totp import (
    decrypt_totp_secret,
    encrypt_totp_secret,
    new_recovery_codes,
    new_totp_enrollment,
    require_second_factor,
    totp_step,
)
from auth_middleware import token_required
from database.documents import Document
from mail.outbox import queue
from models import User, mfa_enabled

START_FIRST = "Start enrolment with POST /users/mfa/totp first."
ALREADY_ON = "Two-factor authentication is already on."
NOT_ON = "Two-factor authentication is not on."
VERIFY_FIRST = "Verify your email address before turning on two-factor authentication."


def _require_verified(current_user: Document) -> None:
    """403 until the caller has proved the account's address: a second factor set up by someone
    who never did would lock out the address's owner, who can always prove it."""
    if not current_user.get("email_verified"):
        raise Forbidden(VERIFY_FIRST)


def _user_with_mfa(current_user: Document) -> Document:
    """The caller's record, or 409 when two-factor authentication is off."""
    if not mfa_enabled(current_user):
        raise Conflict(NOT_ON)
    return current_user


mfa = Blueprint("mfa", __name__)


@mfa.post("/mfa/totp")
@documented(
    tags=["mfa"],
    ok=(201, Envelope[MfaEnrollmentOut]),
    json=account_requests.MfaStart,
    auth=True,
    errors=(400, 401, 403, 409, 413, 415, 429),
    messages={403: VERIFY_FIRST, 409: ALREADY_ON},
)
@token_required
def start_mfa(current_user: dict[str, Any]) -> Reply:
    """Start enrolling an authenticator app (needs the password and a verified address);
    nothing is active until a code is verified."""
    fields = validate.load(account_requests.MfaStart, optional_json_body())
    if mfa_enabled(current_user):
        raise Conflict(ALREADY_ON)
    _require_verified(current_user)
    require_password(current_user, fields.password, "mfa_enrolment")
    enrollment = new_totp_enrollment(current_user["email"])
    User.start_mfa(current_user["_id"], encrypt_totp_secret(enrollment["secret"]))
    record("mfa_enrollment_started", current_user["_id"])
    return envelope("Scan the QR code, then verify a code to turn it on.", enrollment, 201)


@mfa.post("/mfa/totp/verify")
@documented(
    tags=["mfa"],
    ok=(200, Envelope[RecoveryCodesOut]),
    json=account_requests.MfaCode,
    auth=True,
    errors=(400, 403, 409),
    messages={403: VERIFY_FIRST, 409: START_FIRST},
)
@token_required
def verify_mfa(current_user: dict[str, Any]) -> Reply:
    """Turn the second factor on with a current code; returns recovery codes, once."""
    fields = validate.load(account_requests.MfaCode, json_body())
    pending = (current_user.get("mfa") or {}).get("pending")
    if mfa_enabled(current_user):
        raise Conflict(ALREADY_ON)
    _require_verified(current_user)
    if not pending:
        raise Conflict(START_FIRST)
    step = totp_step(decrypt_totp_secret(pending), fields.code)
    if step is None:
        record("mfa_failed", current_user["_id"], step="enrolment")
        raise validate.InvalidInput({"code": "The code is not valid."})
    codes = new_recovery_codes()
    if not User.activate_mfa(current_user["_id"], pending, step, codes):
        raise Conflict(START_FIRST)
    record("mfa_enabled", current_user["_id"])
    queue("mfa_enabled", current_user["email"], current_user["_id"])
    return envelope("Two-factor authentication is on. Keep these recovery codes safe.", {"recovery_codes": codes})


@mfa.delete("/mfa/totp")
@documented(
    tags=["mfa"],
    ok=(204, None),
    json=account_requests.MfaDisable,
    auth=True,
    errors=(400, 409, 429),
    messages={409: NOT_ON},
)
@token_required
def disable_mfa(current_user: dict[str, Any]) -> tuple[str, int]:
    """Turn the second factor off: needs the password and a code (or a recovery code)."""
    fields = validate.load(account_requests.MfaDisable, json_body())
    user = _user_with_mfa(current_user)
    rate_limit("password", PASSWORD_ACCOUNT_RATE_LIMIT=user["_id"])
    wrong = validate.InvalidInput({"password": "Password is incorrect."})
    confirm_password(user, user["email"], fields.password, failure=wrong, event="mfa_failed", step="disable")
    require_second_factor(user, fields, "disable")
    User.disable_mfa(user["_id"])
    record("mfa_disabled", user["_id"])
    queue("mfa_disabled", user["email"], user["_id"])
    return "", 204


@mfa.post("/mfa/recovery-codes")
@documented(
    tags=["mfa"],
    ok=(200, Envelope[RecoveryCodesOut]),
    json=account_requests.MfaFactor,
    auth=True,
    errors=(400, 409, 429),
    messages={409: NOT_ON},
)
@token_required
def replace_recovery_codes(current_user: dict[str, Any]) -> Reply:
    """A new set of recovery codes; the old set stops working. Needs a code."""
    fields = validate.load(account_requests.MfaFactor, json_body())
    user = _user_with_mfa(current_user)
    require_second_factor(user, fields, "recovery_codes")
    codes = new_recovery_codes()
    User.replace_recovery_codes(user["_id"], codes)
    record("mfa_recovery_codes_replaced", user["_id"])
    queue("recovery_codes_replaced", user["email"], user["_id"])
    return envelope("New recovery codes; the old ones no longer work.", {"recovery_codes": codes})
