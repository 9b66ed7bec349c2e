"""Personal access tokens, for scripts: scoped, expiring, revocable, their secret shown once.

A secret reads `blpat_` + 40 random base62 characters + a 6-character base62 CRC32 of
those 40: a secret scanner recognises a leaked one offline (SECRET_PATTERN, then
`well_formed`), and a typo is refused without a database lookup. Only its SHA-256 is
stored. The token's record here is what the owner sees (name, scopes, prefix, dates,
last use); the account's record lists the live ones ({id, hash, scopes, exp}, see
models.User), so authenticating one is one indexed lookup by hash, and revoking one
takes it off that list: every app server refuses it from the next request on.
"""

from __future__ import annotations

import enum
import hmac
import re
import secrets
import string
import time
import zlib
from datetime import datetime, timedelta
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING, DESCENDING

from auth.state import auth_state
from database.documents import Document, Index, Model, digest, utcnow
from models import User
from validate import TOKEN_SCOPES

PREFIX = "blpat_"
RANDOM_CHARS = 40  # 40 x log2(62) = 238 bits
CHECKSUM_CHARS = 6  # 62**6 > 2**32: a whole CRC32
BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
# What a secret scanner looks for; `well_formed` then checks the checksum.
SECRET_PATTERN = re.compile(rf"\b{PREFIX}[0-9A-Za-z]{{{RANDOM_CHARS + CHECKSUM_CHARS}}}\b")
# The start of the secret the owner is shown again, to tell tokens apart: 4 of the 40 random characters.
SHOWN_PREFIX_CHARS = len(PREFIX) + 4

SCOPES = TOKEN_SCOPES
# Live tokens per account; creating one more is refused (dropping one would break a script unseen).
MAX_TOKENS = 50
# Listed with `expires_soon` this long before they expire.
EXPIRING_SOON = timedelta(days=7)
# A token's use is recorded (last_used_at and an audit event) at most this often.
USE_RECORDED_EVERY = timedelta(minutes=1)


class Outcome(enum.Enum):
    VALID = "valid"
    MALFORMED = "malformed"  # not a secret this API issued (the checksum fails)
    UNKNOWN = "unknown"  # revoked, never issued, or the account is disabled
    EXPIRED = "expired"


def _base62(number: int, width: int) -> str:
    digits = []
    for _ in range(width):
        number, digit = divmod(number, 62)
        digits.append(BASE62[digit])
    return "".join(reversed(digits))


def checksum(body: str) -> str:
    return _base62(zlib.crc32(body.encode()), CHECKSUM_CHARS)


def new_secret() -> str:
    body = "".join(secrets.choice(BASE62) for _ in range(RANDOM_CHARS))
    return PREFIX + body + checksum(body)


def looks_like_access_token(token: str) -> bool:
    """Whether a bearer credential is meant as a personal access token (rather than a JWT)."""
    return token.startswith(PREFIX)


def well_formed(token: str) -> bool:
    """A secret of this API's form with a correct checksum: what a scanner confirms offline."""
    if len(token) != len(PREFIX) + RANDOM_CHARS + CHECKSUM_CHARS or not SECRET_PATTERN.fullmatch(token):
        return False
    body, check = token[len(PREFIX) : -CHECKSUM_CHARS], token[-CHECKSUM_CHARS:]
    return check == checksum(body)


def authenticate(token: str) -> tuple[Outcome, Document | None, Document | None]:
    """(outcome, the account's record, the token's entry on it) for a presented secret."""
    if not well_formed(token):
        return Outcome.MALFORMED, None, None
    presented = digest(token)
    user = User.get_for_access_token(presented)
    entry = next(
        (item for item in (user or {}).get("access_tokens", ()) if hmac.compare_digest(item["hash"], presented)),
        None,
    )
    if user is None or entry is None:
        return Outcome.UNKNOWN, None, None
    if entry["exp"] <= utcnow():
        return Outcome.EXPIRED, None, None
    return Outcome.VALID, user, entry


class AccessTokens(Model):
    """What the owner sees of each token: name, scopes, prefix, created, expires, last use
    (time and address), and when and why it was revoked. Never the secret nor its hash."""

    collection = "access_tokens"

    @classmethod
    def indexes(cls) -> list[Index]:
        return [
            Index([("user_id", ASCENDING), ("created_at", DESCENDING)], "user_tokens"),
            # An expired token's record is removed by MongoDB itself.
            Index([("expires_at", ASCENDING)], "expiry", {"expireAfterSeconds": 0}),
        ]

    @staticmethod
    def create(user: Document, name: str, scopes: list[str], days: int) -> tuple[Document, str] | None:
        """A new token for `user` (their record as just read); None when the account already
        has MAX_TOKENS live ones. Returns its record and its secret, which is never stored."""
        secret, now = new_secret(), utcnow()
        record: Document = {
            "_id": ObjectId(),
            "user_id": user["_id"],
            "name": name,
            "scopes": scopes,
            "prefix": secret[:SHOWN_PREFIX_CHARS],
            "created_at": now,
            "expires_at": now + timedelta(days=days),
            "last_used_at": None,
            "last_used_ip": None,
            "revoked_at": None,
        }
        entry = {"id": record["_id"], "hash": digest(secret), "scopes": scopes, "exp": record["expires_at"]}
        if not User.list_access_token(user["_id"], entry, MAX_TOKENS):
            return None
        AccessTokens._col().insert_one(record)
        return record, secret

    @staticmethod
    def live(user_id: ObjectId) -> list[Document]:
        """The account's tokens that still work, newest first."""
        query = {"user_id": user_id, "revoked_at": None, "expires_at": {"$gt": utcnow()}}
        return list(AccessTokens._col().find(query).sort("created_at", DESCENDING))

    @staticmethod
    def revoke(user_id: ObjectId, token_id: ObjectId, reason: str) -> bool:
        """Revoke one token now; False when it is not one of the account's live tokens."""
        User.unlist_access_token(user_id, token_id)
        result = AccessTokens._col().update_one(
            {"_id": token_id, "user_id": user_id, "revoked_at": None, "expires_at": {"$gt": utcnow()}},
            {"$set": {"revoked_at": utcnow(), "revoked_reason": reason}},
        )
        return result.modified_count == 1

    @staticmethod
    def revoke_all(user_id: ObjectId, reason: str) -> int:
        """Revoke every token of the account; how many were live."""
        User.unlist_access_tokens(user_id)
        result = AccessTokens._col().update_many(
            {"user_id": user_id, "revoked_at": None}, {"$set": {"revoked_at": utcnow(), "revoked_reason": reason}}
        )
        return result.modified_count

    @staticmethod
    def note_use(token_id: ObjectId, user_id: ObjectId, ip: str | None) -> bool:
        """Record a use as the last one, at most once per USE_RECORDED_EVERY per token (across
        every app server: the write is conditional); True when this use was recorded."""
        seen = auth_state().token_uses
        interval = USE_RECORDED_EVERY.total_seconds()
        if (seen.get(token_id) or 0) > time.time() - interval:
            return False  # recorded by this process less than a minute ago: no write at all
        seen.put(token_id, time.time())
        now = utcnow()
        due = {"$or": [{"last_used_at": None}, {"last_used_at": {"$lte": now - USE_RECORDED_EVERY}}]}
        result = AccessTokens._col().update_one(
            {"_id": token_id, "user_id": user_id, **due}, {"$set": {"last_used_at": now, "last_used_ip": ip}}
        )
        return result.modified_count == 1


def expires_soon(record: Document, now: datetime | None = None) -> bool:
    expires_at: datetime = record["expires_at"]
    return expires_at - (now or utcnow()) <= EXPIRING_SOON


def describe(record: Document) -> dict[str, Any]:
    """What an audit event says of a token: never its secret."""
    return {"token_id": str(record["_id"]), "name": record["name"], "scopes": record["scopes"]}
