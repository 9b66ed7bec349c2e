"""The second step of a login: a short-lived, single-use ticket (a JWT of its own type, and a
record that counts its wrong codes)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from bson import ObjectId
from pymongo import ASCENDING

from auth_middleware import sign_jwt, verify_jwt
from database.documents import Document, Index, Model, utcnow

MFA_TICKET_TYPE = "mfa-ticket+jwt"  # never accepted where an access token is expected
MFA_TICKET_CLAIMS = ["exp", "iat", "sub", "jti", "iss", "aud"]
MFA_TICKET_SECONDS = 300
MFA_TICKET_ATTEMPTS = 5


class MfaTickets(Model):
    """Second-step login tickets: single use, a few tries, gone after five minutes (TTL)."""

    collection = "mfa_tickets"

    @classmethod
    def indexes(cls) -> list[Index]:
        return [Index([("expires_at", ASCENDING)], "expiry", {"expireAfterSeconds": 0})]

    @staticmethod
    def create(jti: str, user_id: ObjectId, expires_at: datetime) -> None:
        MfaTickets._col().insert_one(
            {"_id": jti, "user_id": user_id, "attempts": 0, "used_at": None, "expires_at": expires_at}
        )

    @staticmethod
    def usable(jti: str) -> Document | None:
        return MfaTickets._col().find_one(
            {"_id": jti, "used_at": None, "attempts": {"$lt": MFA_TICKET_ATTEMPTS}, "expires_at": {"$gt": utcnow()}}
        )

    @staticmethod
    def failed_attempt(jti: str) -> None:
        MfaTickets._col().update_one({"_id": jti}, {"$inc": {"attempts": 1}})

    @staticmethod
    def spend(jti: str) -> bool:
        result = MfaTickets._col().update_one(
            {"_id": jti, "used_at": None, "attempts": {"$lt": MFA_TICKET_ATTEMPTS}}, {"$set": {"used_at": utcnow()}}
        )
        return result.modified_count == 1


def create_mfa_ticket(user_id: ObjectId) -> str:
    """A short-lived, single-use ticket for the second step of a login."""
    jti = uuid.uuid4().hex
    expires = datetime.now(UTC) + timedelta(seconds=MFA_TICKET_SECONDS)
    MfaTickets.create(jti, user_id, expires)
    return sign_jwt({"sub": str(user_id), "jti": jti}, MFA_TICKET_TYPE, MFA_TICKET_SECONDS)


def read_mfa_ticket(ticket: str) -> dict[str, Any] | None:
    """The ticket's claims when it is genuine, unexpired and of the right type; else None."""
    try:
        return verify_jwt(ticket, MFA_TICKET_TYPE, MFA_TICKET_CLAIMS)
    except jwt.InvalidTokenError:
        return None
