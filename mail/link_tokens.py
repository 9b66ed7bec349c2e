"""Tokens carried by mailed links. Stored only as their SHA-256: nothing in the database is a
usable link."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING

import validate
from auth.audit import record
from database.documents import Document, Index, Model, digest, utcnow

# A link token's purpose, and how long its link works.
RESET_PASSWORD = "reset_password"
VERIFY_EMAIL = "verify_email"
CHANGE_EMAIL = "change_email"
TOKEN_LIFETIMES = {
    RESET_PASSWORD: timedelta(minutes=30),
    VERIFY_EMAIL: timedelta(hours=24),
    CHANGE_EMAIL: timedelta(hours=24),
}
TOKEN_BYTES = 32
INVALID_LINK = "This link is invalid or has expired."


class LinkTokens(Model):
    """Tokens carried by mailed links: 32 random bytes, kept only as a hash, used once."""

    collection = "link_tokens"

    @classmethod
    def indexes(cls) -> list[Index]:
        # One token per user and purpose: a newer replaces the older.
        return [
            Index([("hash", ASCENDING)], "hash_unique", {"unique": True}),
            Index([("user_id", ASCENDING), ("purpose", ASCENDING)], "user_purpose_unique", {"unique": True}),
            Index([("expires_at", ASCENDING)], "expiry", {"expireAfterSeconds": 0}),
        ]

    @staticmethod
    def issue(user_id: ObjectId, purpose: str, expires_at: datetime, **data: Any) -> str:
        """A new token for this user and purpose; any older one of the same purpose stops working."""
        token = secrets.token_urlsafe(TOKEN_BYTES)
        doc = {
            "user_id": user_id,
            "purpose": purpose,
            "hash": digest(token),
            "created_at": utcnow(),
            "expires_at": expires_at,
            "data": data,
        }
        LinkTokens._col().replace_one({"user_id": user_id, "purpose": purpose}, doc, upsert=True)
        return token

    @staticmethod
    def find(token: str, purposes: tuple[str, ...]) -> Document | None:
        """The token's record while it works, without using it up."""
        return LinkTokens._col().find_one(LinkTokens._usable(token, purposes))

    @staticmethod
    def _usable(token: str, purposes: tuple[str, ...]) -> Document:
        return {"hash": digest(token), "purpose": {"$in": list(purposes)}, "expires_at": {"$gt": utcnow()}}

    @staticmethod
    def consume(token: str, purposes: tuple[str, ...]) -> Document | None:
        """The token's record, deleted in the same step so that it works once; None when
        the token is unknown, used, expired or meant for something else."""
        return LinkTokens._col().find_one_and_delete(LinkTokens._usable(token, purposes))

    @staticmethod
    def discard(user_id: ObjectId, *purposes: str) -> None:
        """End the user's tokens of these purposes (all of them when none is named)."""
        query: Document = {"user_id": user_id}
        if purposes:
            query["purpose"] = {"$in": list(purposes)}
        LinkTokens._col().delete_many(query)


def invalid_link(purpose: str) -> validate.InvalidInput:
    """The one answer to a wrong, used or expired token, recorded: nothing tells them apart."""
    record("link_token_invalid", None, purpose=purpose)
    return validate.InvalidInput({"token": INVALID_LINK}, message=INVALID_LINK)
