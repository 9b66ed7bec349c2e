"""/users/tokens: the caller's personal access tokens, for scripts (create, list, revoke).
Only a login reaches these: a token can never make, see or revoke tokens."""

from __future__ import annotations

from typing import Any

from bson import ObjectId
from flask import Blueprint
from werkzeug.exceptions import Conflict, NotFound

import validate
from api import account_requests
from api.openapi import documented
from api.responses import Reply, envelope, json_body
from api.schemas import AccessTokenCreatedOut, AccessTokenOut, Envelope
from auth.access_tokens import MAX_TOKENS, AccessTokens, describe, expires_soon
from auth.audit import record
from auth.passwords import BAD_CREDENTIALS, require_password
from auth.totp import require_second_factor
from auth_middleware import token_required
from database.documents import isoformat, utcnow
from mail.outbox import queue

tokens = Blueprint("tokens", __name__)

TOKEN_NOT_FOUND = "Token not found."
TOO_MANY = f"An account can have at most {MAX_TOKENS} live tokens; revoke one first."


@tokens.post("/tokens")
@documented(
    tags=["tokens"],
    ok=(201, Envelope[AccessTokenCreatedOut]),
    json=account_requests.AccessTokenCreate,
    auth=True,
    errors=(400, 401, 403, 409, 429),
    messages={401: BAD_CREDENTIALS, 409: TOO_MANY},
    operation_id="createAccessToken",
)
@token_required
def create_token(current_user: dict[str, Any]) -> Reply:
    """Create a personal access token for a script; its secret is in this answer and never
    again. Needs the password (and, with two-factor on, a `code` or `recovery_code`)."""
    user_id = current_user["_id"]
    fields = validate.load(account_requests.AccessTokenCreate, json_body())
    require_password(current_user, fields.password, "access_token")
    require_second_factor(current_user, fields, "access_token")
    created = AccessTokens.create(current_user, fields.name, fields.scopes, fields.expires_in_days)
    if created is None:
        raise Conflict(TOO_MANY)
    token, secret = created
    record("access_token_created", user_id, **describe(token), expires_at=isoformat(token["expires_at"]))
    queue(
        "access_token_created",
        current_user["email"],
        user_id,
        token_name=token["name"],
        scopes=" ".join(token["scopes"]),
        expires=token["expires_at"].strftime("%d %B %Y at %H:%M UTC"),
    )
    shown = {**AccessTokenOut.of(token, expires_soon(token)), "token": secret}
    return envelope("Token created. Copy it now: it is not shown again.", shown, 201)


@tokens.get("/tokens")
@documented(tags=["tokens"], ok=(200, Envelope[list[AccessTokenOut]]), auth=True, operation_id="listAccessTokens")
@token_required
def list_tokens(current_user: dict[str, Any]) -> Reply:
    """The caller's live tokens, newest first; `expires_soon` flags those expiring within a week."""
    now = utcnow()
    live = AccessTokens.live(current_user["_id"])
    return envelope("Tokens.", [AccessTokenOut.of(token, expires_soon(token, now)) for token in live])


@tokens.delete("/tokens/<objectid:token_id>")
@documented(
    tags=["tokens"],
    ok=(204, None),
    auth=True,
    errors=(404,),
    messages={404: TOKEN_NOT_FOUND},
    operation_id="revokeAccessToken",
)
@token_required
def revoke_token(current_user: dict[str, Any], token_id: ObjectId | None) -> tuple[str, int]:
    """Revoke one of the caller's tokens: every app server refuses it from the next request on."""
    if token_id is None or not AccessTokens.revoke(current_user["_id"], token_id, reason="revoked_by_user"):
        raise NotFound(TOKEN_NOT_FOUND)
    record("access_token_revoked", current_user["_id"], token_id=str(token_id), reason="revoked_by_user")
    return "", 204
