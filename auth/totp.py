"""The second factor (TOTP, RFC 6238): secrets encrypted at rest, enrolment, codes and
recovery codes, and the check that logins and sensitive actions make."""

from __future__ import annotations

import base64
import hmac
import io
import os
import re
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import pyotp
import segno

import validate
from auth.audit import record
from auth.state import auth_state
from auth.throttling import check_lockout, count_failure
from models import User, mfa_enabled

TOTP_ISSUER = "Book Library"
TOTP_DRIFT_STEPS = (0, -1, 1)  # the current step first, then one either side for clock drift
RECOVERY_CODES = validate.RECOVERY_CODES  # the number the document states
QR_SCALE = 5
NONCE_BYTES = 12  # AES-GCM's standard nonce
_SIX_DIGITS = re.compile(r"[0-9]{6}")
FACTOR_REQUIRED = "A current authenticator code or an unused recovery code is required."


class SecondFactor(Protocol):
    """The fields a request offers a second factor in."""

    code: str | None
    recovery_code: str | None


def encrypt_totp_secret(secret: str) -> str:
    nonce = os.urandom(NONCE_BYTES)
    return base64.b64encode(nonce + auth_state().totp_cipher.encrypt(nonce, secret.encode(), b"totp")).decode()


def decrypt_totp_secret(blob: str) -> str:
    raw = base64.b64decode(blob)
    return auth_state().totp_cipher.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], b"totp").decode()


def new_totp_enrollment(email: str) -> dict[str, str]:
    """A fresh secret, its otpauth:// URI and that URI as a QR code (PNG data URL)."""
    secret = pyotp.random_base32()
    uri = pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=TOTP_ISSUER)
    png = io.BytesIO()
    segno.make(uri, error="m").save(png, kind="png", scale=QR_SCALE)
    qr_code = "data:image/png;base64," + base64.b64encode(png.getvalue()).decode()
    return {"secret": secret, "otpauth_uri": uri, "qr_code": qr_code}


def totp_step(secret: str, code: object) -> int | None:
    """The time step a code belongs to: the current one or one either side (clock drift)."""
    if not isinstance(code, str) or not _SIX_DIGITS.fullmatch(code):
        return None
    totp = pyotp.TOTP(secret)
    now = datetime.now(UTC)
    for drift in TOTP_DRIFT_STEPS:
        step = int(totp.timecode(now + timedelta(seconds=drift * totp.interval)))
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def new_recovery_codes() -> list[str]:
    return [f"{secrets.token_hex(3)}-{secrets.token_hex(3)}" for _ in range(RECOVERY_CODES)]


def second_factor_ok(user: dict[str, Any], fields: SecondFactor) -> bool:
    """A current, unused authenticator code, or an unused recovery code, of this user."""
    if fields.code is not None:
        step = totp_step(decrypt_totp_secret(user["mfa"]["secret"]), fields.code)
        return step is not None and User.use_totp_step(user["_id"], step)
    if fields.recovery_code is not None and User.use_recovery_code(user["_id"], fields.recovery_code):
        record("mfa_recovery_code_used", user["_id"])
        return True
    return False


def require_second_factor(user: dict[str, Any], fields: SecondFactor, action: str) -> None:
    """Sensitive actions need the second factor too, when the account has one. Wrong codes
    count towards the lock-out, so a stolen access token cannot guess codes for ever."""
    if not mfa_enabled(user):
        return
    lock = check_lockout(user["email"], user["_id"])
    if not second_factor_ok(user, fields):
        if fields.code is not None or fields.recovery_code is not None:
            count_failure(lock)
        record("mfa_failed", user["_id"], step=action)
        raise validate.InvalidInput({"code": FACTOR_REQUIRED})
