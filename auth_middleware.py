"""Bearer-token authentication: access tokens, sessions, and the token_required decorator."""
from __future__ import annotations

import math
import time
import uuid
from datetime import datetime, timedelta, timezone
from functools import wraps

import jwt
from flask import current_app, g, request
from limits import parse as parse_limit
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter
from werkzeug.exceptions import TooManyRequests, Unauthorized

from models import Events, Sessions, User, parse_object_id

ALGORITHM = "HS256"
# RFC 9068's media type for JWT access tokens. Any other token this app signs carries
# another typ, so it can never pass as an access token (RFC 8725, section 3.11).
ACCESS_TOKEN_TYPE = "at+jwt"
REQUIRED_CLAIMS = ["exp", "iat", "sub", "sid", "jti", "iss", "aud"]
LEEWAY_SECONDS = 5
REALM = "book-library"


def create_access_token(user_id, session_id) -> tuple[str, int]:
    """Sign an access token bound to a session; returns (token, lifetime in seconds)."""
    config = current_app.config
    lifetime = int(config["ACCESS_TOKEN_EXPIRES_SECONDS"])
    now = datetime.now(timezone.utc)
    claims = {
        "iss": config["JWT_ISSUER"],
        "aud": config["JWT_AUDIENCE"],
        "sub": str(user_id),
        "sid": str(session_id),
        "jti": uuid.uuid4().hex,
        "iat": now,
        "exp": now + timedelta(seconds=lifetime),
    }
    token = jwt.encode(claims, config["SECRET_KEY"], algorithm=ALGORITHM, headers={"typ": ACCESS_TOKEN_TYPE})
    return token, lifetime


def client_info() -> tuple[str | None, str | None]:
    """(IP, user agent) of the caller, as recorded on sessions and events."""
    return request.remote_addr, request.headers.get("User-Agent")


def start_session(user_id) -> dict:
    """Log a user in: a new session, its refresh token, and an access token."""
    session, refresh_token = Sessions.create(user_id, *client_info())
    return token_response(user_id, session["_id"], refresh_token)


def token_response(user_id, session_id, refresh_token: str) -> dict:
    token, lifetime = create_access_token(user_id, session_id)
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


def _decode(token: str) -> dict:
    config = current_app.config
    try:
        decoded = jwt.api_jwt.decode_complete(
            token,
            config["SECRET_KEY"],
            algorithms=[ALGORITHM],
            audience=config["JWT_AUDIENCE"],
            issuer=config["JWT_ISSUER"],
            leeway=LEEWAY_SECONDS,
            options={"require": REQUIRED_CLAIMS},
        )
    except jwt.ExpiredSignatureError:
        raise BearerChallenge("Token has expired.") from None
    except jwt.InvalidSignatureError:
        raise BearerChallenge("Token signature is invalid.") from None
    except jwt.InvalidAlgorithmError:
        raise BearerChallenge("Token algorithm is not allowed.") from None
    except jwt.MissingRequiredClaimError as exc:
        raise BearerChallenge(f"Token is missing the '{exc.claim}' claim.") from None
    except jwt.ImmatureSignatureError:
        raise BearerChallenge("Token is not valid yet.") from None
    except jwt.InvalidAudienceError:
        raise BearerChallenge("Token is not meant for this API.") from None
    except jwt.InvalidIssuerError:
        raise BearerChallenge("Token was not issued by this API.") from None
    except jwt.InvalidTokenError:
        raise BearerChallenge("Token is malformed.") from None
    if decoded["header"].get("typ") != ACCESS_TOKEN_TYPE:
        raise BearerChallenge("Token is not an access token.")
    return decoded["payload"]


def _object_id_claim(claims: dict, name: str):
    value = claims[name]
    return parse_object_id(value) if isinstance(value, str) else None


def token_required(view):
    """Run the view as view(current_user, ...) for a valid token of a live session."""

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
        user_id = getattr(g, "user_id", None)
        Events.record("rate_limited", user_id, *client_info(), scope=scope, limit=str(limit))
        raise TooManyRequests(
            "Too many requests; try again later.", retry_after=max(1, math.ceil(reset_at - time.time()))
        )
