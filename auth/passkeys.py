"""Passkeys (WebAuthn credentials) and the challenges of their ceremonies: the two collections.
The ceremonies themselves (options, verification) are in auth/passkey_ceremonies.py."""

from __future__ import annotations

from datetime import datetime

from bson import Binary, ObjectId
from pymongo import ASCENDING, DESCENDING, ReturnDocument

from database.documents import Document, Index, Model, utcnow

# A few authenticators by AAGUID, so that a list can say where a passkey lives. Most passkey
# providers publish theirs; an unknown one (or all zeros, "none" attestation) shows no name.
AUTHENTICATOR_NAMES = {
    "ea9b8d66-4d01-1d21-3ce4-b6b48cb575d4": "Google Password Manager",
    "adce0002-35bc-c60a-648b-0b25f1f05503": "Chrome on Mac",
    "fbfc3007-154e-4ecc-8c0b-6e020557d7bd": "iCloud Keychain",
    "08987058-cadc-4b81-b6e1-30de50dcbe96": "Windows Hello",
    "9ddd1817-af5a-4672-a2b9-3e3dd95000a9": "Windows Hello",
    "6028b017-b1d4-4c02-b4b3-afcdafc96bb2": "Windows Hello",
    "bada5566-a7aa-401f-bd96-45619a55120d": "1Password",
    "d548826e-79b4-db40-a3d8-11116f7e8349": "Bitwarden",
}


def authenticator_name(aaguid: str | None) -> str | None:
    return AUTHENTICATOR_NAMES.get(aaguid or "")


class Passkeys(Model):
    """A user's passkeys: {user_id, credential_id (bytes, unique), public_key (COSE bytes),
    sign_count, aaguid, name, backed_up, created_at, last_used_at}; `purge_at` once the
    account is disabled, so that they go with it."""

    collection = "passkeys"

    @classmethod
    def indexes(cls) -> list[Index]:
        return [
            Index([("credential_id", ASCENDING)], "credential_unique", {"unique": True}),
            Index([("user_id", ASCENDING), ("created_at", DESCENDING)], "user_passkeys"),
            Index([("purge_at", ASCENDING)], "purge", {"expireAfterSeconds": 0}),
        ]

    @staticmethod
    def create(
        user_id: ObjectId, credential_id: bytes, public_key: bytes, sign_count: int, **fields: object
    ) -> Document:
        """Insert a passkey; DuplicateKeyError when the credential is registered already."""
        doc: Document = {
            "user_id": user_id,
            "credential_id": Binary(credential_id),
            "public_key": Binary(public_key),
            "sign_count": sign_count,
            "created_at": utcnow(),
            "last_used_at": None,
            **fields,
        }
        doc["_id"] = Passkeys._col().insert_one(doc).inserted_id
        return doc

    @staticmethod
    def by_credential_id(credential_id: bytes) -> Document | None:
        return Passkeys._col().find_one({"credential_id": Binary(credential_id), "purge_at": {"$exists": False}})

    @staticmethod
    def of_user(user_id: ObjectId) -> list[Document]:
        return list(Passkeys._col().find({"user_id": user_id}).sort([("created_at", DESCENDING), ("_id", DESCENDING)]))

    @staticmethod
    def count(user_id: ObjectId) -> int:
        return Passkeys._col().count_documents({"user_id": user_id})

    @staticmethod
    def rename(user_id: ObjectId, passkey_id: ObjectId, name: str) -> Document | None:
        return Passkeys._col().find_one_and_update(
            {"_id": passkey_id, "user_id": user_id}, {"$set": {"name": name}}, return_document=ReturnDocument.AFTER
        )

    @staticmethod
    def delete(user_id: ObjectId, passkey_id: ObjectId) -> Document | None:
        return Passkeys._col().find_one_and_delete({"_id": passkey_id, "user_id": user_id})

    @staticmethod
    def used(passkey: Document, sign_count: int) -> bool:
        """Record a use; False when another login moved the counter meanwhile (compare and set,
        so two assertions with one counter value cannot both pass)."""
        result = Passkeys._col().update_one(
            {"_id": passkey["_id"], "sign_count": passkey["sign_count"]},
            {"$set": {"sign_count": sign_count, "last_used_at": utcnow()}},
        )
        return result.matched_count == 1

    @staticmethod
    def schedule_purge(user_id: ObjectId, purge_at: datetime) -> None:
        Passkeys._col().update_many({"user_id": user_id}, {"$set": {"purge_at": purge_at}})


class WebauthnChallenges(Model):
    """Challenges handed out for a ceremony: single use, gone after their lifetime (TTL, and
    checked on use, since MongoDB removes expired documents only once a minute). In the
    database, so that any app process can finish what another began."""

    collection = "webauthn_challenges"

    @classmethod
    def indexes(cls) -> list[Index]:
        return [Index([("expires_at", ASCENDING)], "expiry", {"expireAfterSeconds": 0})]

    @staticmethod
    def create(challenge: str, purpose: str, user_id: ObjectId | None, expires_at: datetime) -> None:
        WebauthnChallenges._col().insert_one(
            {"_id": challenge, "purpose": purpose, "user_id": user_id, "expires_at": expires_at}
        )

    @staticmethod
    def spend(challenge: str, purpose: str) -> Document | None:
        """The challenge, removed; None when unknown, used, expired or for another ceremony."""
        return WebauthnChallenges._col().find_one_and_delete(
            {"_id": challenge, "purpose": purpose, "expires_at": {"$gt": utcnow()}}
        )
