"""Passwords: Argon2id hashes, and `confirm_password`, the one check every password typed
again goes through (login, password change, email change, two-factor off, closing the account)."""

from __future__ import annotations

from typing import Any

from argon2.exceptions import InvalidHashError, VerificationError
from werkzeug.exceptions import HTTPException, Unauthorized
from werkzeug.security import check_password_hash

from auth.audit import record
from auth.state import auth_state
from auth.throttling import LockState, check_lockout, count_failure, rate_limit
from models import User

# One answer for every wrong password, at login and at a sensitive action alike.
BAD_CREDENTIALS = "Invalid email or password."


def hash_password(password: str) -> str:
    return auth_state().hasher.hash(password)


def _verify(stored: str, password: str) -> tuple[bool, bool]:
    """(matches, needs_rehash). Werkzeug hashes from before Argon2 still verify, once."""
    hasher = auth_state().hasher
    if stored.startswith("$argon2"):
        try:
            hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return False, False
        return True, hasher.check_needs_rehash(stored)
    return check_password_hash(stored, password), True


def check_password(user: dict[str, Any] | None, password: str) -> bool:
    """Verify a password; an unknown user still costs one hash, so timing tells nothing.
    A hash made with older parameters is replaced after a successful check."""
    if user is None:
        _verify(auth_state().dummy_hash, password)
        return False
    matches, needs_rehash = _verify(user["password"], password)
    if matches and needs_rehash:
        User.replace_password_hash(user, hash_password(password))
    return matches


def confirm_password(
    user: dict[str, Any] | None,
    email: str,
    password: str,
    /,
    *,
    failure: HTTPException | Exception,
    event: str,
    **detail: Any,
) -> LockState:
    """The password again, checked under the lock-out of `email` from this IP: a wrong one is
    counted, recorded as `event` and raises `failure`. Returns the lock state, which a login
    clears once every factor has passed."""
    user_id = user["_id"] if user else None
    lock = check_lockout(email, user_id)
    if not check_password(user, password) or (user is not None and user["disabled"]):
        count_failure(lock)  # a stolen token must not become a password oracle
        record(event, user_id, **detail)
        raise failure
    return lock


def require_password(user: dict[str, Any], password: str, action: str) -> None:
    """A sensitive action's step-up: the account's password in the request itself, so that an
    access token alone cannot take it. Limited per account (a stolen token guessing from many
    addresses) besides the lock-out; a wrong one gets login's 401."""
    rate_limit("password", PASSWORD_ACCOUNT_RATE_LIMIT=user["_id"])
    failure = Unauthorized(BAD_CREDENTIALS)
    confirm_password(user, user["email"], password, failure=failure, event="password_check_failed", step=action)
