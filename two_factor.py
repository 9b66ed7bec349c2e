"""Two-factor authentication (TOTP, RFC 6238): enrolment, the second login step, recovery
codes, and the check that sensitive actions make; with the crypto that keeps secrets at rest."""

from __future__ import annotations

import base64
import hmac
import io
import os
import re
import secrets
import uuid
from datetime import UTC, datetime, timedelta

import jwt
import pyotp
import segno
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import Blueprint, current_app, request
from werkzeug.exceptions import Conflict, Unauthorized

import mail
import validate
from api_docs import documented
from auth_middleware import record, sign_jwt, start_session, token_required, tokens_reply, verify_jwt
from auth_models import MfaTickets
from models import User, mfa_enabled, parse_object_id
from responses import envelope, json_body, optional_json_body
from throttling import check_lockout, clear_failures, count_failure, rate_limit

MFA_TICKET_TYPE = "mfa-ticket+jwt"  # never accepted where an access token is expected
MFA_TICKET_CLAIMS = ["exp", "iat", "sub", "jti", "iss", "aud"]
MFA_TICKET_SECONDS = 300
MFA_TICKET_ATTEMPTS = 5
TOTP_ISSUER = "Book Library"
TOTP_DRIFT_STEPS = (0, -1, 1)  # the current step first, then one either side for clock drift
RECOVERY_CODES = validate.RECOVERY_CODES  # the number the document states
QR_SCALE = 5
NONCE_BYTES = 12  # AES-GCM's standard nonce
_SIX_DIGITS = re.compile(r"[0-9]{6}")

TICKET_INVALID = "The sign-in ticket is invalid or has expired; log in again."
TICKET_SPENT = "The sign-in ticket was used, expired or had too many wrong codes; log in again."
START_FIRST = "Start enrolment with POST /users/mfa/totp first."
ALREADY_ON = "Two-factor authentication is already on."
NOT_ON = "Two-factor authentication is not on."
# One answer for every wrong password, at login and at a sensitive action alike.
BAD_CREDENTIALS = "Invalid email or password."


# --- secrets, codes and tickets ----------------------------------------------------


def _totp_cipher() -> AESGCM:
    """AES-GCM with a key derived from MFA_ENCRYPTION_KEY (by default SECRET_KEY) by HKDF."""
    state = current_app.extensions
    if "totp_cipher" not in state:
        material = current_app.config["MFA_ENCRYPTION_KEY"].encode()
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"book-library totp secret").derive(material)
        state["totp_cipher"] = AESGCM(key)
    return state["totp_cipher"]


def encrypt_totp_secret(secret: str) -> str:
    nonce = os.urandom(NONCE_BYTES)
    return base64.b64encode(nonce + _totp_cipher().encrypt(nonce, secret.encode(), b"totp")).decode()


def decrypt_totp_secret(blob: str) -> str:
    raw = base64.b64decode(blob)
    return _totp_cipher().decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], b"totp").decode()


def new_totp_enrollment(email: str) -> dict:
    """A fresh secret, its otpauth:// URI and that URI as a QR code (PNG data URL)."""
    secret = pyotp.random_base32()
    uri = pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=TOTP_ISSUER)
    png = io.BytesIO()
    segno.make(uri, error="m").save(png, kind="png", scale=QR_SCALE)
    qr_code = "data:image/png;base64," + base64.b64encode(png.getvalue()).decode()
    return {"secret": secret, "otpauth_uri": uri, "qr_code": qr_code}


def totp_step(secret: str, code: str) -> int | None:
    """The time step a code belongs to: the current one or one either side (clock drift)."""
    if not isinstance(code, str) or not _SIX_DIGITS.fullmatch(code):
        return None
    totp = pyotp.TOTP(secret)
    now = datetime.now(UTC)
    for drift in TOTP_DRIFT_STEPS:
        step = totp.timecode(now + timedelta(seconds=drift * totp.interval))
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def new_recovery_codes() -> list[str]:
    return [f"{secrets.token_hex(3)}-{secrets.token_hex(3)}" for _ in range(RECOVERY_CODES)]


def create_mfa_ticket(user_id) -> str:
    """A short-lived, single-use ticket for the second step of a login."""
    jti = uuid.uuid4().hex
    expires = datetime.now(UTC) + timedelta(seconds=MFA_TICKET_SECONDS)
    MfaTickets.create(jti, user_id, expires)
    return sign_jwt({"sub": str(user_id), "jti": jti}, MFA_TICKET_TYPE, MFA_TICKET_SECONDS)


def mfa_challenge(user: dict):
    """The answer to a correct password when the account has a second factor."""
    record("mfa_challenge", user["_id"])
    ticket = {"mfa_required": True, "mfa_ticket": create_mfa_ticket(user["_id"]), "expires_in": MFA_TICKET_SECONDS}
    return envelope("Enter the code from your authenticator app.", ticket)


def _read_mfa_ticket(ticket: str) -> dict | None:
    """The ticket's claims when it is genuine, unexpired and of the right type; else None."""
    try:
        return verify_jwt(ticket, MFA_TICKET_TYPE, MFA_TICKET_CLAIMS)
    except jwt.InvalidTokenError:
        return None


# --- the second factor as a check ------------------------------------------------------


def _second_factor_ok(user: dict, fields) -> bool:
    """A current, unused authenticator code, or an unused recovery code, of this user."""
    if fields.code is not None:
        step = totp_step(decrypt_totp_secret(user["mfa"]["secret"]), fields.code)
        return step is not None and User.use_totp_step(user["_id"], step)
    if fields.recovery_code is not None and User.use_recovery_code(user["_id"], fields.recovery_code):
        record("mfa_recovery_code_used", user["_id"])
        return True
    return False


def require_second_factor(user: dict, fields, action: str) -> None:
    """Sensitive actions need the second factor too, when the account has one. Wrong codes
    count towards the lock-out, so a stolen access token cannot guess codes for ever."""
    if not mfa_enabled(user):
        return
    lock = check_lockout(user["email"], user["_id"])
    if not _second_factor_ok(user, fields):
        if fields.code is not None or fields.recovery_code is not None:
            count_failure(lock)
        record("mfa_failed", user["_id"], step=action)
        raise validate.InvalidInput({"code": "A current authenticator code or an unused recovery code is required."})


def _password_confirmed(user: dict, password: str, event: str, action: str) -> bool:
    """The account's password, asked for again by a sensitive action: limited per account (a
    stolen token guessing from many addresses) and by the lock-out; a wrong one is recorded."""
    rate_limit("password", PASSWORD_ACCOUNT_RATE_LIMIT=user["_id"])
    lock = check_lockout(user["email"], user["_id"])
    if User.check_password(user, password):
        return True
    count_failure(lock)  # a stolen token must not become a password oracle
    record(event, user["_id"], step=action)
    return False


def require_password(user: dict, password: str, action: str) -> None:
    """Sensitive actions need the password in the request itself, so that an access token
    alone (stolen from a browser, say) cannot take them. A wrong one gets login's 401."""
    if not _password_confirmed(user, password, "password_check_failed", action):
        raise Unauthorized(BAD_CREDENTIALS)


def _user_with_mfa(current_user: dict) -> dict:
    """The caller's record, or 409 when two-factor authentication is off."""
    if not mfa_enabled(current_user):
        raise Conflict(NOT_ON)
    return current_user


# --- views -----------------------------------------------------------------------------

two_factor = Blueprint("two_factor", __name__)


@two_factor.post("/login/mfa")
@documented(
    tags=["mfa"],
    ok=(200, validate.Envelope[validate.LoginOut]),
    json=validate.MfaLogin,
    errors=(400, 401, 429),
    messages={401: "The code is not valid."},
    operation_id="logInWithCode",
)
def login_mfa():
    """Finish a login with a second factor: the ticket from /users/login and a code."""
    fields = validate.load(validate.MfaLogin, json_body())
    if fields.code is None and fields.recovery_code is None:
        raise validate.InvalidInput({"code": "Send the code from your authenticator app, or a recovery_code."})
    rate_limit("login", LOGIN_RATE_LIMIT=request.remote_addr)
    claims = _read_mfa_ticket(fields.mfa_ticket)
    user = User.find_by_id(parse_object_id(claims["sub"])) if claims else None
    if user is None or user["disabled"] or not mfa_enabled(user):
        raise Unauthorized(TICKET_INVALID)
    rate_limit("login", LOGIN_ACCOUNT_RATE_LIMIT=user["email"])
    if MfaTickets.usable(claims["jti"], MFA_TICKET_ATTEMPTS) is None:
        raise Unauthorized(TICKET_SPENT)
    lock = check_lockout(user["email"], user["_id"])
    if not _second_factor_ok(user, fields):
        MfaTickets.failed_attempt(claims["jti"])
        count_failure(lock)
        record("mfa_failed", user["_id"], step="login")
        raise Unauthorized("The code is not valid.")
    if not MfaTickets.spend(claims["jti"], MFA_TICKET_ATTEMPTS):
        raise Unauthorized(TICKET_SPENT)
    clear_failures(lock)
    tokens = start_session(user)
    record("login", user["_id"], mfa=True)
    return tokens_reply("Logged in.", {**User.to_json(user), **tokens})


@two_factor.post("/mfa/totp")
@documented(
    tags=["mfa"],
    ok=(201, validate.Envelope[validate.MfaEnrollmentOut]),
    json=validate.MfaStart,
    auth=True,
    errors=(400, 401, 409, 413, 415, 429),
    messages={409: ALREADY_ON},
)
@token_required
def start_mfa(current_user):
    """Start enrolling an authenticator app (needs the password); nothing is active until a
    code is verified."""
    fields = validate.load(validate.MfaStart, optional_json_body())
    if mfa_enabled(current_user):
        raise Conflict(ALREADY_ON)
    require_password(current_user, fields.password, "mfa_enrolment")
    enrollment = new_totp_enrollment(current_user["email"])
    User.start_mfa(current_user["_id"], encrypt_totp_secret(enrollment["secret"]))
    record("mfa_enrollment_started", current_user["_id"])
    return envelope("Scan the QR code, then verify a code to turn it on.", enrollment, 201)


@two_factor.post("/mfa/totp/verify")
@documented(
    tags=["mfa"],
    ok=(200, validate.Envelope[validate.RecoveryCodesOut]),
    json=validate.MfaCode,
    auth=True,
    errors=(400, 409),
    messages={409: START_FIRST},
)
@token_required
def verify_mfa(current_user):
    """Turn the second factor on with a current code; returns recovery codes, once."""
    fields = validate.load(validate.MfaCode, json_body())
    pending = (current_user.get("mfa") or {}).get("pending")
    if mfa_enabled(current_user):
        raise Conflict(ALREADY_ON)
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
    mail.queue("mfa_enabled", current_user["email"], current_user["_id"])
    return envelope("Two-factor authentication is on. Keep these recovery codes safe.", {"recovery_codes": codes})


@two_factor.delete("/mfa/totp")
@documented(
    tags=["mfa"],
    ok=(204, None),
    json=validate.MfaDisable,
    auth=True,
    errors=(400, 409, 429),
    messages={409: NOT_ON},
)
@token_required
def disable_mfa(current_user):
    """Turn the second factor off: needs the password and a code (or a recovery code)."""
    fields = validate.load(validate.MfaDisable, json_body())
    user = _user_with_mfa(current_user)
    if not _password_confirmed(user, fields.password, "mfa_failed", "disable"):
        raise validate.InvalidInput({"password": "Password is incorrect."})
    require_second_factor(user, fields, "disable")
    User.disable_mfa(user["_id"])
    record("mfa_disabled", user["_id"])
    mail.queue("mfa_disabled", user["email"], user["_id"])
    return "", 204


@two_factor.post("/mfa/recovery-codes")
@documented(
    tags=["mfa"],
    ok=(200, validate.Envelope[validate.RecoveryCodesOut]),
    json=validate.MfaFactor,
    auth=True,
    errors=(400, 409, 429),
    messages={409: NOT_ON},
)
@token_required
def replace_recovery_codes(current_user):
    """A new set of recovery codes; the old set stops working. Needs a code."""
    fields = validate.load(validate.MfaFactor, json_body())
    user = _user_with_mfa(current_user)
    require_second_factor(user, fields, "recovery_codes")
    codes = new_recovery_codes()
    User.replace_recovery_codes(user["_id"], codes)
    record("mfa_recovery_codes_replaced", user["_id"])
    mail.queue("recovery_codes_replaced", user["email"], user["_id"])
    return envelope("New recovery codes; the old ones no longer work.", {"recovery_codes": codes})
