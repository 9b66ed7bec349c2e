"""The state behind mailed links: single-use link tokens, and the outbox every mail passes through.

Neither holds a secret a thief could use: a link token is stored only as its SHA-256,
and an outbox entry holds what to send, not the link itself (the token is made when
the mail is prepared, just before each attempt to send it).
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from bson import ObjectId
from pymongo import ASCENDING, ReturnDocument

from models import _Model, digest, utcnow

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

# Outbox states: waiting to be sent (or retried), delivered, abandoned, not needed after all.
PENDING, SENT, GIVEN_UP, DROPPED = "pending", "sent", "given_up", "dropped"
# How long a finished entry stays for inspection before MongoDB removes it.
KEEP_FINISHED = timedelta(days=7)


class LinkTokens(_Model):
    """Tokens carried by mailed links: 32 random bytes, kept only as a hash, used once."""

    collection = "link_tokens"

    @staticmethod
    def issue(user_id: ObjectId, purpose: str, expires_at: datetime, **data) -> str:
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
    def find(token: str, purposes: tuple[str, ...]) -> dict | None:
        """The token's record while it works, without using it up."""
        return LinkTokens._col().find_one(LinkTokens._usable(token, purposes))

    @staticmethod
    def _usable(token: str, purposes: tuple[str, ...]) -> dict:
        return {"hash": digest(token), "purpose": {"$in": list(purposes)}, "expires_at": {"$gt": utcnow()}}

    @staticmethod
    def consume(token: str, purposes: tuple[str, ...]) -> dict | None:
        """The token's record, deleted in the same step so that it works once; None when
        the token is unknown, used, expired or meant for something else."""
        return LinkTokens._col().find_one_and_delete(LinkTokens._usable(token, purposes))

    @staticmethod
    def discard(user_id: ObjectId, *purposes: str) -> None:
        """End the user's tokens of these purposes (all of them when none is named)."""
        query = {"user_id": user_id}
        if purposes:
            query["purpose"] = {"$in": list(purposes)}
        LinkTokens._col().delete_many(query)


class Outbox(_Model):
    """Mails to send. An entry is claimed with a lease, so that of several sender
    processes one sends it; a failed attempt moves the lease to the next retry."""

    collection = "outbox"

    @staticmethod
    def add(kind: str, to: str, user_id: ObjectId | None, message_id: str, give_up_at: datetime, **params) -> ObjectId:
        now = utcnow()
        doc = {
            "kind": kind,
            "to": to,
            "user_id": user_id,
            "params": params,
            "message_id": message_id,
            "status": PENDING,
            "attempts": 0,
            "lease_until": now,  # due at once
            "lease_owner": None,
            "created_at": now,
            "give_up_at": give_up_at,
        }
        return Outbox._col().insert_one(doc).inserted_id

    @staticmethod
    def claim(owner: str, lease: timedelta) -> dict | None:
        """The next due mail, leased to `owner`; None when nothing is due."""
        now = utcnow()
        return Outbox._col().find_one_and_update(
            {"status": PENDING, "lease_until": {"$lte": now}},
            {"$set": {"lease_until": now + lease, "lease_owner": owner}, "$inc": {"attempts": 1}},
            sort=[("lease_until", ASCENDING)],
            return_document=ReturnDocument.AFTER,
        )

    @staticmethod
    def finish(mail: dict, status: str, **fields) -> bool:
        """Close a claimed mail; False when its lease had passed to another sender."""
        now = utcnow()
        result = Outbox._col().update_one(
            {"_id": mail["_id"], "lease_owner": mail["lease_owner"], "status": PENDING},
            {"$set": {"status": status, "finished_at": now, "purge_at": now + KEEP_FINISHED, **fields}},
        )
        return result.modified_count == 1

    @staticmethod
    def retry_at(mail: dict, when: datetime, error: str, user_id: ObjectId | None) -> None:
        """Leave a claimed mail for another attempt at `when`, noting the account it turned
        out to concern (a reset asked for by address), for the event if it is given up."""
        Outbox._col().update_one(
            {"_id": mail["_id"], "lease_owner": mail["lease_owner"], "status": PENDING},
            {"$set": {"lease_until": when, "last_error": error, "user_id": user_id}},
        )
