"""Bearer-token authentication: token creation and the token_required decorator."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from functools import wraps

import jwt
from flask import current_app, g, request
from werkzeug.exceptions import Unauthorized

from models import User, parse_object_id

ALGORITHM = "HS256"
REQUIRED_CLAIMS = ["exp", "iat", "sub"]
REALM = "book-library"


def create_token(user_id) -> str:
    """Sign an access token for a user id."""
    now = datetime.now(timezone.utc)
    lifetime = timedelta(seconds=int(current_app.config["ACCESS_TOKEN_EXPIRES_SECONDS"]))
    claims = {"sub": str(user_id), "iat": now, "exp": now + lifetime}
    return jwt.encode(claims, current_app.config["SECRET_KEY"], algorithm=ALGORITHM)


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
    try:
        return jwt.decode(
            token,
            current_app.config["SECRET_KEY"],
            algorithms=[ALGORITHM],
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
    except jwt.InvalidTokenError:
        raise BearerChallenge("Token is malformed.") from None


def token_required(view):
    """Run the view as view(current_user, ...) for a valid token of an active user."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        claims = _decode(_bearer_token())
        user_id = parse_object_id(claims["sub"]) if isinstance(claims["sub"], str) else None
        if user_id is None:
            raise BearerChallenge("Token subject is invalid.")
        user = User.get_active(user_id)
        if user is None:
            raise BearerChallenge("Account is disabled or no longer exists.")
        g.user_id = user_id
        return view(user, *args, **kwargs)

    return wrapper

