"""Bearer-token authentication: signing and verifying the app's JWTs, the token_required
decorator, and how tokens reach a client (JSON, or the refresh token in a cookie)."""

from __future__ import annotations

import math
import secrets
import time
import uuid
from datetime import UTC, datetime, timedelta
from functools import wraps

import jwt
from flask import current_app, g, request
from werkzeug.exceptions import Forbidden, Unauthorized

import validate
from auth_models import Events, Sessions
from models import User, parse_object_id
from responses import envelope, json_body

ALGORITHM = "HS256"
# RFC 9068's media type for JWT access tokens. Any other token this app signs carries
# another typ, so it can never pass as an access token (RFC 8725, section 3.11).
ACCESS_TOKEN_TYPE = "at+jwt"
REQUIRED_CLAIMS = ["exp", "iat", "sub", "sid", "jti", "iss", "aud"]
LEEWAY_SECONDS = 5
REALM = "book-library"


class WrongTokenType(jwt.InvalidTokenError):
    """A genuine token of another kind than the one expected."""


def sign_jwt(claims: dict, token_type: str, lifetime: int) -> str:
    """An HS256 JWT of one kind (its `typ`), with issuer, audience, id and lifetime."""
    config = current_app.config
    now = datetime.now(UTC)
    standard = {
        "iss": config["JWT_ISSUER"],
        "aud": config["JWT_AUDIENCE"],
        "jti": uuid.uuid4().hex,
        "iat": now,
        "exp": now + timedelta(seconds=lifetime),
    }
    return jwt.encode({**standard, **claims}, config["SECRET_KEY"], algorithm=ALGORITHM, headers={"typ": token_type})


def verify_jwt(token: str, token_type: str, required: list[str]) -> dict:
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


def create_access_token(user: dict, session_id, session_expires: datetime) -> tuple[str, int]:
    """Sign an access token for `user` (a record with _id and token_version) bound to a
    session, expiring no later than the session; returns (token, lifetime in seconds)."""
    left = math.ceil((session_expires - datetime.now(UTC)).total_seconds())
    lifetime = min(int(current_app.config["ACCESS_TOKEN_EXPIRES_SECONDS"]), left)
    claims = {"sub": str(user["_id"]), "sid": str(session_id), "ver": User.token_version(user)}
    return sign_jwt(claims, ACCESS_TOKEN_TYPE, lifetime), lifetime


def client_info() -> tuple[str | None, str | None]:
    """(IP, user agent) of the caller, as recorded on sessions and events."""
    return request.remote_addr, request.headers.get("User-Agent")


def record(kind: str, user_id=None, **detail) -> None:
    """An audit event about the current request's caller."""
    Events.record(kind, user_id, *client_info(), **detail)


def start_session(user: dict) -> dict:
    """Log a user in (their record as just read): a new session, its refresh token, and an access token."""
    session, refresh_token = Sessions.create(user, *client_info())
    return token_response(user, session, refresh_token)


def token_response(user: dict, session: dict, refresh_token: str) -> dict:
    """The tokens a client gets for `session` (its record: _id and expires_at)."""
    token, lifetime = create_access_token(user, session["_id"], session["expires_at"])
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
        return verify_jwt(token, ACCESS_TOKEN_TYPE, REQUIRED_CLAIMS)
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
        if claims.get("ver", 0) != User.token_version(user):
            raise BearerChallenge("Token was issued before the password was changed.")
        g.user_id, g.session_id = user_id, session_id
        return view(user, *args, **kwargs)

    return wrapper


# --- how tokens reach the client ----------------------------------------------

REFRESH_COOKIE, CSRF_COOKIE, CSRF_HEADER = "refresh_token", "csrf_token", "X-CSRF-Token"
REFRESH_COOKIE_PATH = "/users"


def tokens_reply(message: str, data: dict):
    """JSON with the tokens; with cookie mode on, the refresh token goes in a cookie instead,
    and the body carries the CSRF token: a page on another origin cannot read the cookie."""
    if not current_app.config["REFRESH_TOKEN_COOKIE"]:
        return envelope(message, data)
    refresh_token = data.pop("refresh_token")
    data["csrf_token"] = secrets.token_urlsafe(32)
    response, status = envelope(message, data)
    _set_refresh_cookies(response, refresh_token, data["csrf_token"])
    return response, status


def _set_refresh_cookies(response, refresh_token: str, csrf_token: str) -> None:
    """HttpOnly refresh token for the refresh and logout endpoints only, and the CSRF token
    that the browser app echoes in a header (double-submit)."""
    max_age = current_app.config["REFRESH_TOKEN_EXPIRES_SECONDS"]
    common = {"max_age": max_age, "secure": True, "samesite": current_app.config["REFRESH_COOKIE_SAMESITE"]}
    response.set_cookie(REFRESH_COOKIE, refresh_token, httponly=True, path=REFRESH_COOKIE_PATH, **common)
    response.set_cookie(CSRF_COOKIE, csrf_token, httponly=False, path="/", **common)


def clear_refresh_cookies(response) -> None:
    if current_app.config["REFRESH_TOKEN_COOKIE"]:
        same_site = current_app.config["REFRESH_COOKIE_SAMESITE"]
        response.delete_cookie(REFRESH_COOKIE, path=REFRESH_COOKIE_PATH, secure=True, samesite=same_site)
        response.delete_cookie(CSRF_COOKIE, path="/", secure=True, samesite=same_site)


def presented_refresh_token() -> str:
    """The refresh token from the JSON body, or from the cookie with a matching CSRF header."""
    if request.is_json or not current_app.config["REFRESH_TOKEN_COOKIE"]:
        return validate.load(validate.RefreshRequest, json_body()).refresh_token
    cookie = request.cookies.get(REFRESH_COOKIE)
    if not cookie:
        raise Unauthorized("Refresh token is missing.")
    csrf_cookie = request.cookies.get(CSRF_COOKIE, "")
    csrf_header = request.headers.get(CSRF_HEADER, "")
    # Compared as bytes: compare_digest refuses non-ASCII text, and a header may carry any.
    if not csrf_cookie or not secrets.compare_digest(csrf_cookie.encode(), csrf_header.encode()):
        raise Forbidden(f"The {CSRF_HEADER} header must match the {CSRF_COOKIE} cookie.")
    return cookie
