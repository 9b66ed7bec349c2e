"""Bearer-token authentication: access tokens, sessions, and the token_required decorator."""
from __future__ import annotations

import base64
import hmac
import io
import math
import os
import re
import secrets
import time
import uuid
from datetime import datetime, timedelta, timezone
from functools import wraps

import jwt
import pyotp
import segno
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import current_app, g, request
from limits import parse as parse_limit
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter
from werkzeug.exceptions import TooManyRequests, Unauthorized

from models import Events, MfaTickets, Sessions, User, parse_object_id

ALGORITHM = "HS256"
# RFC 9068's media type for JWT access tokens. Any other token this app signs carries
# another typ, so it can never pass as an access token (RFC 8725, section 3.11).
ACCESS_TOKEN_TYPE = "at+jwt"
REQUIRED_CLAIMS = ["exp", "iat", "sub", "sid", "jti", "iss", "aud"]
LEEWAY_SECONDS = 5
REALM = "book-library"


class WrongTokenType(jwt.InvalidTokenError):
    """A genuine token of another kind than the one expected."""


def _sign(claims: dict, token_type: str, lifetime: int) -> str:
    """An HS256 JWT of one kind (its `typ`), with issuer, audience, id and lifetime."""
    config = current_app.config
    now = datetime.now(timezone.utc)
    standard = {
        "iss": config["JWT_ISSUER"],
        "aud": config["JWT_AUDIENCE"],
        "jti": uuid.uuid4().hex,
        "iat": now,
        "exp": now + timedelta(seconds=lifetime),
    }
    return jwt.encode({**standard, **claims}, config["SECRET_KEY"], algorithm=ALGORITHM, headers={"typ": token_type})


def _verify(token: str, token_type: str, required: list[str]) -> dict:
    """The claims of a genuine, current token of this kind; raises jwt.InvalidTokenError."""
    config = current_app.config
    try:
        # One parse on the way that matters: PyJWT's base64 checks cost more than the HMAC.
        decoded = jwt.decode_complete(
            token,
            config["SECRET_KEY"],
            algorithms=[ALGORITHM],  # pinned: never "none", never what the header asks for
            audience=config["JWT_AUDIENCE"],
            issuer=config["JWT_ISSUER"],
            leeway=LEEWAY_SECONDS,
            options={"require": required},
        )
    except jwt.InvalidTokenError as exc:
        # Another kind of token this app signs is named as such, whatever else is wrong with it.
        if _declared_type(token) not in (None, token_type):
            raise WrongTokenType(token_type) from exc
        raise
    if decoded["header"].get("typ") != token_type:
        raise WrongTokenType(token_type)
    return decoded["payload"]


def _declared_type(token: str) -> str | None:
    try:
        return jwt.get_unverified_header(token).get("typ")
    except jwt.InvalidTokenError:
        return None


def create_access_token(user_id, session_id, session_expires: datetime) -> tuple[str, int]:
    """Sign an access token bound to a session, expiring no later than the session;
    returns (token, lifetime in seconds)."""
    left = math.ceil((session_expires - datetime.now(timezone.utc)).total_seconds())
    lifetime = min(int(current_app.config["ACCESS_TOKEN_EXPIRES_SECONDS"]), left)
    claims = {"sub": str(user_id), "sid": str(session_id)}
    return _sign(claims, ACCESS_TOKEN_TYPE, lifetime), lifetime


def client_info() -> tuple[str | None, str | None]:
    """(IP, user agent) of the caller, as recorded on sessions and events."""
    return request.remote_addr, request.headers.get("User-Agent")


def start_session(user: dict) -> dict:
    """Log a user in (their record as just read): a new session, its refresh token, and an access token."""
    session, refresh_token = Sessions.create(user, *client_info())
    return token_response(user["_id"], session, refresh_token)


def token_response(user_id, session: dict, refresh_token: str) -> dict:
    """The tokens a client gets for `session` (its record: _id and expires_at)."""
    token, lifetime = create_access_token(user_id, session["_id"], session["expires_at"])
    return {"token": token, "token_type": "Bearer", "expires_in": lifetime, "refresh_token": refresh_token}


class BearerChallenge(Unauthorized):
    """401 with an RFC 6750 challenge; the JSON error handler keeps its headers."""

    def __init__(self, message: str, error: str | None = "invalid_token"):
        super().__init__(message)
        # Built by hand: RFC 9110 wants realm as a quoted string, always.
        params = [f'realm="{REALM}"']
        if error:
            params += [f'error="{error}"', f'error_description="{message}"']
        self.challenge = "Bearer " + ", ".join(params)

    def get_headers(self, environ=None, scope=None):
        return [*super().get_headers(environ, scope), ("WWW-Authenticate", self.challenge)]


def _bearer_token() -> str:
    header = request.headers.get("Authorization", "")
    if not header:
        raise BearerChallenge("Authentication token is missing.", error=None)
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        raise BearerChallenge("Authorization header must be 'Bearer <token>'.", error="invalid_request")
    return token


# Verified access tokens, per process: a client sends the same token for its whole
# lifetime, and re-checking its signature and claims on every request is most of an
# authenticated request's own CPU. Only successes are kept; expiry is checked on every
# use, and revocation never depended on this (it is the one database lookup).
VERIFIED_TOKENS_KEPT = 4096


def _decode(token: str) -> dict:
    verified = current_app.extensions.setdefault("verified_access_tokens", {})
    claims = verified.get(token)
    if claims is not None:
        if claims["exp"] + LEEWAY_SECONDS > time.time():
            return claims
        del verified[token]
    claims = _verify_access_token(token)
    if len(verified) >= VERIFIED_TOKENS_KEPT:
        try:
            del verified[next(iter(verified))]  # the oldest entry
        except (KeyError, RuntimeError, StopIteration):  # another thread got there first
            pass
    verified[token] = claims
    return claims


# What each verification failure is called in the 401; the first match wins, so the
# catch-all InvalidTokenError ("malformed") comes last.
TOKEN_PROBLEMS = (
    (WrongTokenType, "Token is not an access token."),
    (jwt.ExpiredSignatureError, "Token has expired."),
    (jwt.InvalidSignatureError, "Token signature is invalid."),
    (jwt.InvalidAlgorithmError, "Token algorithm is not allowed."),
    (jwt.MissingRequiredClaimError, "Token is missing the '{claim}' claim."),
    (jwt.ImmatureSignatureError, "Token is not valid yet."),
    (jwt.InvalidAudienceError, "Token is not meant for this API."),
    (jwt.InvalidIssuerError, "Token was not issued by this API."),
    (jwt.InvalidTokenError, "Token is malformed."),
)


def _verify_access_token(token: str) -> dict:
    try:
        return _verify(token, ACCESS_TOKEN_TYPE, REQUIRED_CLAIMS)
    except jwt.InvalidTokenError as exc:
        message = next(text for kind, text in TOKEN_PROBLEMS if isinstance(exc, kind))
        raise BearerChallenge(message.format(claim=getattr(exc, "claim", ""))) from None


def _object_id_claim(claims: dict, name: str):
    value = claims[name]
    return parse_object_id(value) if isinstance(value, str) else None


def token_required(view):
    """Run the view as view(current_user, ...) for a valid token of a live session.

    current_user is the user's whole record (password hash and MFA state included,
    for the views that check them); it leaves the API only through User.to_json.
    """

    @wraps(view)
    def wrapper(*args, **kwargs):
        claims = _decode(_bearer_token())
        user_id, session_id = _object_id_claim(claims, "sub"), _object_id_claim(claims, "sid")
        if user_id is None or session_id is None:
            raise BearerChallenge("Token subject is invalid.")
        user = User.get_for_session(user_id, session_id)
        if user is None:
            raise BearerChallenge("Session has ended or the account is disabled.")
        g.user_id, g.session_id = user_id, session_id
        return view(user, *args, **kwargs)

    return wrapper


# --- abuse limits ------------------------------------------------------------


def _rate_limiter() -> MovingWindowRateLimiter:
    """Moving-window limits (the `limits` library, as used by Flask-Limiter), with counters
    in MongoDB by default so that every app process shares them. Made on first use:
    an app with limits switched off never opens the store."""
    state = current_app.extensions
    if "rate_limiter" not in state:
        config = current_app.config
        uri = config["RATELIMIT_STORAGE_URI"] or config["DATABASE_URL"]
        options = {}
        if uri.startswith("mongodb"):
            timeout_ms = config["DATABASE_TIMEOUT_MS"]
            options = {
                "database_name": state["mongo"]["db"].name,
                "counter_collection_name": "rate_limit_counters",
                "window_collection_name": "rate_limit_windows",
                "serverSelectionTimeoutMS": timeout_ms,
                "connectTimeoutMS": timeout_ms,
                "socketTimeoutMS": config["DATABASE_SOCKET_TIMEOUT_MS"],
            }
        state["rate_limiter"] = MovingWindowRateLimiter(storage_from_string(uri, **options))
    return state["rate_limiter"]


REFUSALS_KEPT = 10_000


def _first_refusal(name: tuple, until: float) -> bool:
    """True once per limit, key and window in this process: a flood of refused requests
    records one event per window instead of writing one for each request."""
    recorded = current_app.extensions.setdefault("refusals_recorded", {})
    now = time.time()
    if recorded.get(name, 0) > now:
        return False
    if len(recorded) >= REFUSALS_KEPT:
        for stale in [key for key, expires in recorded.items() if expires <= now]:
            del recorded[stale]
        if len(recorded) >= REFUSALS_KEPT:
            recorded.clear()
    recorded[name] = until
    return True


def rate_limit(scope: str, **keys) -> None:
    """Count this request against each `SETTING=key` pair; 429 when one is used up.

    `rate_limit("login", LOGIN_RATE_LIMIT=ip, LOGIN_ACCOUNT_RATE_LIMIT=email)` counts
    the request once per IP and once per account.
    """
    config = current_app.config
    if not config["RATELIMIT_ENABLED"]:
        return
    limiter = _rate_limiter()
    for setting, key in keys.items():
        limit = parse_limit(config[setting])
        if limiter.hit(limit, scope, setting, str(key)):
            continue
        reset_at, _ = limiter.get_window_stats(limit, scope, setting, str(key))
        if _first_refusal((scope, setting, str(key)), reset_at):
            user_id = getattr(g, "user_id", None)
            Events.record("rate_limited", user_id, *client_info(), scope=scope, limit=str(limit))
        raise TooManyRequests(
            "Too many requests; try again later.", retry_after=max(1, math.ceil(reset_at - time.time()))
        )


# --- second factor (TOTP) ----------------------------------------------------------

MFA_TICKET_TYPE = "mfa-ticket+jwt"  # never accepted where an access token is expected
MFA_TICKET_SECONDS = 300
MFA_TICKET_ATTEMPTS = 5
TOTP_ISSUER = "Book Library"
RECOVERY_CODES = 10
# ASCII only: \d would let Arabic-Indic or full-width digits through to a comparison
# that cannot take them.
_SIX_DIGITS = re.compile(r"[0-9]{6}")


def _totp_cipher() -> AESGCM:
    """AES-GCM with a key derived from SECRET_KEY (or MFA_ENCRYPTION_KEY) by HKDF."""
    state = current_app.extensions
    if "totp_cipher" not in state:
        material = (current_app.config["MFA_ENCRYPTION_KEY"] or current_app.config["SECRET_KEY"]).encode()
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"book-library totp secret").derive(material)
        state["totp_cipher"] = AESGCM(key)
    return state["totp_cipher"]


def encrypt_totp_secret(secret: str) -> str:
    nonce = os.urandom(12)
    return base64.b64encode(nonce + _totp_cipher().encrypt(nonce, secret.encode(), b"totp")).decode()


def decrypt_totp_secret(blob: str) -> str:
    raw = base64.b64decode(blob)
    return _totp_cipher().decrypt(raw[:12], raw[12:], b"totp").decode()


def new_totp_enrollment(email: str) -> dict:
    """A fresh secret, its otpauth:// URI and that URI as a QR code (PNG data URL)."""
    secret = pyotp.random_base32()
    uri = pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=TOTP_ISSUER)
    png = io.BytesIO()
    segno.make(uri, error="m").save(png, kind="png", scale=5)
    qr_code = "data:image/png;base64," + base64.b64encode(png.getvalue()).decode()
    return {"secret": secret, "otpauth_uri": uri, "qr_code": qr_code}


def totp_step(secret: str, code: str) -> int | None:
    """The time step a code belongs to: the current one or one either side (clock drift)."""
    if not isinstance(code, str) or not _SIX_DIGITS.fullmatch(code):
        return None
    totp = pyotp.TOTP(secret)
    now = datetime.now(timezone.utc)
    for drift in (0, -1, 1):
        step = totp.timecode(now + timedelta(seconds=drift * totp.interval))
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def new_recovery_codes() -> list[str]:
    return [f"{secrets.token_hex(3)}-{secrets.token_hex(3)}" for _ in range(RECOVERY_CODES)]


def create_mfa_ticket(user_id) -> str:
    """A short-lived, single-use ticket for the second step of a login."""
    jti = uuid.uuid4().hex
    expires = datetime.now(timezone.utc) + timedelta(seconds=MFA_TICKET_SECONDS)
    MfaTickets.create(jti, user_id, expires)
    return _sign({"sub": str(user_id), "jti": jti}, MFA_TICKET_TYPE, MFA_TICKET_SECONDS)


def read_mfa_ticket(ticket: str) -> dict | None:
    """The ticket's claims when it is genuine, unexpired and of the right type; else None."""
    try:
        return _verify(ticket, MFA_TICKET_TYPE, ["exp", "iat", "sub", "jti", "iss", "aud"])
    except jwt.InvalidTokenError:
        return None
