"""Bearer-token authentication: signing and verifying the app's JWTs (access tokens, and the
other kinds the auth services sign), and the token_required decorator, which takes a login's
JWT or a personal access token (auth/access_tokens.py) in the same Authorization header."""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from functools import wraps
from typing import Any, TypeVar, overload

import jwt
from bson import ObjectId
from flask import current_app, g, request
from werkzeug.exceptions import Forbidden, Unauthorized

from auth import access_tokens
from auth.access_tokens import AccessTokens, Outcome
from auth.audit import record
from auth.state import auth_state
from auth.throttling import count_requests
from database.documents import Document, parse_object_id
from models import User

R = TypeVar("R")

ALGORITHM = "HS256"
# RFC 9068's media type for JWT access tokens. Any other token this app signs carries
# another typ, so it can never pass as an access token (RFC 8725, section 3.11).
ACCESS_TOKEN_TYPE = "at+jwt"
REQUIRED_CLAIMS = ["exp", "iat", "sub", "sid", "jti", "iss", "aud"]
LEEWAY_SECONDS = 5
REALM = "book-library"


class WrongTokenType(jwt.InvalidTokenError):
    """A genuine token of another kind than the one expected."""


def sign_jwt(claims: dict[str, Any], token_type: str, lifetime: int) -> str:
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


def verify_jwt(token: str, token_type: str, required: list[str]) -> dict[str, Any]:
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
    payload: dict[str, Any] = decoded["payload"]
    return payload


def _declared_type(token: str) -> str | None:
    try:
        return jwt.get_unverified_header(token).get("typ")
    except jwt.InvalidTokenError:
        return None


def create_access_token(user: Document, session_id: ObjectId, session_expires: datetime) -> tuple[str, int]:
    """Sign an access token for `user` (a record with _id and token_version) bound to a
    session, expiring no later than the session; returns (token, lifetime in seconds)."""
    left = math.ceil((session_expires - datetime.now(UTC)).total_seconds())
    lifetime = min(int(current_app.config["ACCESS_TOKEN_EXPIRES_SECONDS"]), left)
    claims = {"sub": str(user["_id"]), "sid": str(session_id), "ver": User.token_version(user)}
    return sign_jwt(claims, ACCESS_TOKEN_TYPE, lifetime), lifetime


class BearerChallenge(Unauthorized):
    """401 with an RFC 6750 challenge; the JSON error handler keeps its headers."""

    def __init__(self, message: str, error: str | None = "invalid_token"):
        super().__init__(message)
        # Built by hand: RFC 9110 wants realm as a quoted string, always.
        params = [f'realm="{REALM}"']
        if error:
            params += [f'error="{error}"', f'error_description="{message}"']
        self.challenge = "Bearer " + ", ".join(params)

    def get_headers(self, environ: Any = None, scope: Any = None) -> list[tuple[str, str]]:
        return [*super().get_headers(environ, scope), ("WWW-Authenticate", self.challenge)]


class ScopeChallenge(Forbidden):
    """403 for a genuine personal access token without what the view needs (RFC 6750, section
    3.1): `scope` names the scopes that would do; none for the views only a login may use."""

    def __init__(self, message: str, scopes: tuple[str, ...]):
        super().__init__(message)
        params = [f'realm="{REALM}"', 'error="insufficient_scope"', f'error_description="{message}"']
        if scopes:
            params.append(f'scope="{" ".join(scopes)}"')
        self.challenge = "Bearer " + ", ".join(params)

    def get_headers(self, environ: Any = None, scope: Any = None) -> list[tuple[str, str]]:
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


def _decode(token: str) -> dict[str, Any]:
    """The claims of a valid access token. Verified tokens are kept per process: a client sends
    the same token for its whole lifetime, and re-checking its signature and claims is most of
    an authenticated request's own CPU. Expiry is checked on every use, and revocation never
    depended on this (it is the one database lookup)."""
    verified = auth_state().verified_tokens
    claims: dict[str, Any] | None = verified.get(token)
    if claims is not None:
        if claims["exp"] + LEEWAY_SECONDS > time.time():
            return claims
        verified.discard(token)
    claims = _verify_access_token(token)
    verified.put(token, claims)
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


def _verify_access_token(token: str) -> dict[str, Any]:
    try:
        return verify_jwt(token, ACCESS_TOKEN_TYPE, REQUIRED_CLAIMS)
    except jwt.InvalidTokenError as exc:
        message = next(text for kind, text in TOKEN_PROBLEMS if isinstance(exc, kind))
        raise BearerChallenge(message.format(claim=getattr(exc, "claim", ""))) from None


def _object_id_claim(claims: dict[str, Any], name: str) -> ObjectId | None:
    value = claims[name]
    return parse_object_id(value) if isinstance(value, str) else None


# What the view needs of a personal access token, by view: None (or absent) means only a login's
# JWT will do. Read by the OpenAPI document (api/openapi.py), so the two cannot disagree.
_SCOPES: dict[Callable[..., Any], tuple[str, ...] | None] = {}
SESSION_ONLY = (
    "A personal access token cannot be used here: this needs a login (the account's sensitive "
    "actions and its tokens are never open to tokens)."
)
TOKEN_PROBLEMS_BY_OUTCOME = {
    Outcome.MALFORMED: "Token is malformed.",
    Outcome.UNKNOWN: "Token has been revoked or does not exist, or the account is disabled.",
    Outcome.EXPIRED: "Token has expired.",
}


def scope_refusal(scopes: Iterable[str]) -> str:
    return f"This token lacks the scope this needs: {' '.join(scopes)}."


def required_scopes(view: Callable[..., Any]) -> tuple[str, ...] | None:
    """The scopes a personal access token needs for this view; None: tokens are refused."""
    return _SCOPES.get(view)


@overload
def token_required(view: Callable[..., R], /) -> Callable[..., R]: ...
@overload
def token_required(*, scopes: Iterable[str]) -> Callable[[Callable[..., R]], Callable[..., R]]: ...


def token_required(
    view: Callable[..., R] | None = None, /, *, scopes: Iterable[str] | None = None
) -> Callable[..., R] | Callable[[Callable[..., R]], Callable[..., R]]:
    """Run the view as view(current_user, ...) for a valid token of a live session or, where the
    view names `scopes` (`@token_required(scopes=["books:read"])`), a live personal access token
    that has every one of them. Bare `@token_required`: a login's token only.

    current_user is the user's whole record (password hash and MFA state included,
    for the views that check them); it leaves the API only through api.schemas.UserOut.
    """
    if view is not None:
        return _protect(view, None)
    needed = tuple(scopes or ())
    unknown = set(needed) - set(access_tokens.SCOPES)
    if not needed or unknown:
        raise ValueError(f"token_required needs known scopes, not {sorted(unknown) or 'none'}")
    return lambda inner: _protect(inner, needed)


def _protect(view: Callable[..., R], scopes: tuple[str, ...] | None) -> Callable[..., R]:
    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> R:
        token = _bearer_token()
        if access_tokens.looks_like_access_token(token):
            user = _access_token_user(token, scopes)
        else:
            user = _session_user(token)
        return view(user, *args, **kwargs)

    _SCOPES[wrapper] = scopes
    return wrapper


def _session_user(token: str) -> Document:
    claims = _decode(token)
    user_id, session_id = _object_id_claim(claims, "sub"), _object_id_claim(claims, "sid")
    if user_id is None or session_id is None:
        raise BearerChallenge("Token subject is invalid.")
    user = User.get_for_session(user_id, session_id)
    if user is None:
        raise BearerChallenge("Session has ended or the account is disabled.")
    if claims.get("ver", 0) != User.token_version(user):
        raise BearerChallenge("Token was issued before the password was changed.")
    g.user_id, g.session_id = user_id, session_id
    return user


def _access_token_user(token: str, scopes: tuple[str, ...] | None) -> Document:
    """The account of a live personal access token with these scopes: one lookup, by its hash.
    Its requests count against its own rate limit and its account's, and a use a minute is
    recorded, refused ones included (the owner sees a token tried where it may not go)."""
    outcome, user, entry = access_tokens.authenticate(token)
    if outcome is not Outcome.VALID or user is None or entry is None:
        raise BearerChallenge(TOKEN_PROBLEMS_BY_OUTCOME[outcome])
    token_id = entry["id"]
    g.user_id, g.session_id, g.access_token_id = user["_id"], None, token_id
    count_requests("access_token", TOKEN_RATE_LIMIT=token_id, TOKEN_ACCOUNT_RATE_LIMIT=user["_id"])
    if AccessTokens.note_use(token_id, user["_id"], request.remote_addr):
        record("access_token_used", user["_id"], token_id=str(token_id))
    if scopes is None:
        raise ScopeChallenge(SESSION_ONLY, ())
    if not set(scopes) <= set(entry["scopes"]):
        raise ScopeChallenge(scope_refusal(scopes), scopes)
    return user
