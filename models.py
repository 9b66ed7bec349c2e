"""MongoDB access: one client per process, indexes, and the models.

User and Books hold the product's data; Sessions, Events and LoginThrottle hold the
token lifecycle's state, all in MongoDB so that every app process agrees at once.
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
from datetime import datetime, timedelta, timezone

from bson import ObjectId
from bson.errors import InvalidId
from flask import current_app
from pymongo import ASCENDING, DESCENDING, MongoClient, ReturnDocument, uri_parser
from pymongo.errors import ConnectionFailure
from werkzeug.routing import BaseConverter, ValidationError
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from werkzeug.security import check_password_hash

log = logging.getLogger(__name__)

DEFAULT_DATABASE = "book_library"

USER_FIELDS = {
    "name": 1, "email": 1, "email_verified": 1, "disabled": 1, "created_at": 1, "updated_at": 1, "mfa.enabled": 1,
}


def utcnow() -> datetime:
    # MongoDB keeps milliseconds; truncating here keeps what we return equal to what we stored.
    now = datetime.now(timezone.utc)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def init_app(app) -> None:
    """Create the process's MongoClient and keep it in app.extensions."""
    client = app.config.get("MONGO_CLIENT")
    if client is None:
        timeout_ms = int(app.config["DATABASE_TIMEOUT_MS"])
        client = MongoClient(
            app.config["DATABASE_URL"],
            serverSelectionTimeoutMS=timeout_ms,
            connectTimeoutMS=timeout_ms,
            socketTimeoutMS=int(app.config["DATABASE_SOCKET_TIMEOUT_MS"]),
            maxPoolSize=int(app.config["DATABASE_POOL_SIZE"]),
            tz_aware=True,
            appname="book-library",
            connect=False,  # no I/O until the first query, so forking servers stay safe
        )
    # The URL's path names the database, also when a client is handed in (tests).
    name = uri_parser.parse_uri(app.config["DATABASE_URL"])["database"] or DEFAULT_DATABASE
    db = client[name]
    app.extensions["mongo"] = {"client": client, "db": db, "indexes_ready": False}


def get_db():
    return current_app.extensions["mongo"]["db"]


def ensure_indexes(db, audit_retention_days: int = 90) -> None:
    """Create every index the queries rely on. Idempotent."""
    db.users.create_index([("email", ASCENDING)], unique=True, name="email_unique")
    # Expired sessions, failure counters and old audit events are removed by MongoDB itself.
    db.sessions.create_index([("expires_at", ASCENDING)], expireAfterSeconds=0, name="expiry")
    db.sessions.create_index([("user_id", ASCENDING), ("last_used_at", DESCENDING)], name="user_recent")
    db.login_failures.create_index([("expires_at", ASCENDING)], expireAfterSeconds=0, name="expiry")
    db.mfa_tickets.create_index([("expires_at", ASCENDING)], expireAfterSeconds=0, name="expiry")
    db.auth_events.create_index(
        [("user_id", ASCENDING), ("at", DESCENDING), ("_id", DESCENDING)], name="user_recent_events"
    )
    db.auth_events.create_index(
        [("at", ASCENDING)], expireAfterSeconds=audit_retention_days * 86400, name="retention"
    )
    # Mailed links' tokens (one per user and purpose, a newer replacing the older) and the outbox.
    db.link_tokens.create_index([("hash", ASCENDING)], unique=True, name="hash_unique")
    db.link_tokens.create_index([("user_id", ASCENDING), ("purpose", ASCENDING)], unique=True, name="user_purpose_unique")
    db.link_tokens.create_index([("expires_at", ASCENDING)], expireAfterSeconds=0, name="expiry")
    db.outbox.create_index([("status", ASCENDING), ("lease_until", ASCENDING)], name="due")
    db.outbox.create_index([("purge_at", ASCENDING)], expireAfterSeconds=0, name="purge")
    db.books.create_index(
        [("user_id", ASCENDING), ("title_key", ASCENDING)], unique=True, name="user_title_unique"
    )
    db.books.create_index(
        [("user_id", ASCENDING), ("created_at", DESCENDING), ("_id", DESCENDING)],
        name="user_newest",
    )
    db.books.create_index(
        [("user_id", ASCENDING), ("category", ASCENDING), ("created_at", DESCENDING), ("_id", DESCENDING)],
        name="user_category_newest",
    )


def ensure_indexes_once() -> None:
    """Create indexes on the first request if start-up could not reach the database."""
    state = current_app.extensions["mongo"]
    if not state["indexes_ready"]:
        ensure_indexes(state["db"], current_app.config["AUDIT_RETENTION_DAYS"])
        state["indexes_ready"] = True


def try_ensure_indexes(app) -> None:
    state = app.extensions["mongo"]
    try:
        ensure_indexes(state["db"], app.config["AUDIT_RETENTION_DAYS"])
        state["indexes_ready"] = True
    except ConnectionFailure:
        log.warning("database unreachable at start-up; indexes will be created on first request")


def ping() -> bool:
    try:
        current_app.extensions["mongo"]["client"].admin.command("ping")
        return True
    except ConnectionFailure:
        return False


def parse_object_id(value) -> ObjectId | None:
    """The one place ids from outside are parsed; None when malformed."""
    try:
        return ObjectId(value)
    except (InvalidId, TypeError):
        return None


class ObjectIdConverter(BaseConverter):
    """URL converter: a malformed id fails to match, so the route answers 404."""

    regex = "[0-9a-fA-F]{24}"

    def to_python(self, value):
        oid = parse_object_id(value)
        if oid is None:
            raise ValidationError()
        return oid

    def to_url(self, value):
        return str(value)


def isoformat(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class _Model:
    """A model's MongoDB collection, named by its `collection` attribute."""

    collection: str

    @classmethod
    def _col(cls):
        return get_db()[cls.collection]


# --- passwords -------------------------------------------------------------


def init_passwords(app) -> None:
    """Argon2id at the OWASP parameters by default; a dummy hash for unknown emails."""
    hasher = PasswordHasher(
        time_cost=int(app.config["PASSWORD_HASH_TIME_COST"]),
        memory_cost=int(app.config["PASSWORD_HASH_MEMORY_KIB"]),
        parallelism=int(app.config["PASSWORD_HASH_PARALLELISM"]),
    )
    app.extensions["password_hasher"] = hasher
    app.extensions["dummy_password_hash"] = hasher.hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    return current_app.extensions["password_hasher"].hash(password)


def verify_password(stored: str, password: str) -> tuple[bool, bool]:
    """(matches, needs_rehash). Werkzeug hashes from before Argon2 still verify, once."""
    hasher = current_app.extensions["password_hasher"]
    if stored.startswith("$argon2"):
        try:
            hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return False, False
        return True, hasher.check_needs_rehash(stored)
    return check_password_hash(stored, password), True


# --- users -----------------------------------------------------------------


class User(_Model):
    collection = "users"
    # Active sessions per user; a new login beyond this ends the oldest one.
    MAX_SESSIONS = 50

    @staticmethod
    def create(name: str, email: str, password: str) -> dict:
        """Insert a user; DuplicateKeyError propagates when the email is taken."""
        now = utcnow()
        doc = {
            "name": name,
            "email": email,
            "email_verified": False,
            "password": hash_password(password),
            "disabled": False,
            "sessions": [],
            "created_at": now,
            "updated_at": now,
        }
        doc["_id"] = User._col().insert_one(doc).inserted_id
        return doc

    @staticmethod
    def get_for_session(user_id: ObjectId, session_id: ObjectId) -> dict | None:
        """The active user, only while the session is one of theirs: one lookup by _id.

        This is the whole revocation check: ending a session removes its id from
        the user's document, so every access token of that session fails here.
        The query is by _id alone, the cheapest a server answers (extra predicates
        or a projection cost the embedded server more than shipping the small
        document), and the checks run here.
        """
        user = User._col().find_one({"_id": user_id})
        if user is None or user.get("disabled"):
            return None
        if session_id not in User.session_ids(user):
            return None
        return user

    @staticmethod
    def session_ids(user: dict) -> set:
        """Ids of the sessions the user's record lists: the sessions that may be used."""
        return {entry["sid"] for entry in user.get("sessions", ())}

    # No projections on these lookups: the embedded server takes longer to cut the
    # session list out of the document (measured +1.1 ms a lookup) than to send it.
    @staticmethod
    def find_by_email(email: str) -> dict | None:
        return User._col().find_one({"email": email})

    @staticmethod
    def find_by_id(user_id: ObjectId) -> dict | None:
        return User._col().find_one({"_id": user_id})

    @staticmethod
    def check_password(user: dict | None, password: str) -> bool:
        """Verify a password; an unknown user still costs one hash, so timing tells nothing.

        A hash made with older parameters is replaced after a successful check.
        """
        if user is None:
            verify_password(current_app.extensions["dummy_password_hash"], password)
            return False
        matches, needs_rehash = verify_password(user["password"], password)
        if matches and needs_rehash:
            User._col().update_one(
                {"_id": user["_id"], "password": user["password"]},
                {"$set": {"password": hash_password(password)}},
            )
        return matches

    @staticmethod
    def set_password(user_id: ObjectId, password: str) -> None:
        """A new password, by whatever route: any password-reset link still out stops working."""
        User._col().update_one(
            {"_id": user_id}, {"$set": {"password": hash_password(password), "updated_at": utcnow()}}
        )
        get_db().link_tokens.delete_many({"user_id": user_id, "purpose": "reset_password"})

    @staticmethod
    def mark_email_verified(user_id: ObjectId, email: str) -> bool:
        """Record that the owner of `email` proved it; False when the account's address is another now."""
        result = User._col().update_one(
            {"_id": user_id, "email": email, "disabled": False},
            {"$set": {"email_verified": True, "updated_at": utcnow()}},
        )
        return result.matched_count == 1

    @staticmethod
    def change_email(user_id: ObjectId, email: str) -> dict | None:
        """Move the account to a proven address; DuplicateKeyError when another account has it."""
        return User._col().find_one_and_update(
            {"_id": user_id, "disabled": False},
            {"$set": {"email": email, "email_verified": True, "updated_at": utcnow()}},
            return_document=ReturnDocument.BEFORE,
        )

    @staticmethod
    def update_name(user_id: ObjectId, name: str) -> dict | None:
        return User._col().find_one_and_update(
            {"_id": user_id, "disabled": False},
            {"$set": {"name": name, "updated_at": utcnow()}},
            projection=USER_FIELDS,
            return_document=ReturnDocument.AFTER,
        )

    @staticmethod
    def disable(user_id: ObjectId) -> None:
        now = utcnow()
        User._col().update_one(
            {"_id": user_id},
            {"$set": {"disabled": True, "disabled_at": now, "updated_at": now, "sessions": []}},
        )

    @staticmethod
    def to_json(user: dict) -> dict:
        return {
            "id": str(user["_id"]),
            "name": user["name"],
            "email": user["email"],
            "email_verified": bool(user.get("email_verified")),
            "mfa_enabled": mfa_enabled(user),
            "created_at": isoformat(user["created_at"]),
            "updated_at": isoformat(user["updated_at"]),
        }

    # Second factor. The user document holds {"mfa": {"enabled", "secret" (encrypted),
    # "pending" (encrypted, during enrolment), "last_step", "recovery" (hashes)}}.

    @staticmethod
    def start_mfa(user_id: ObjectId, encrypted_secret: str) -> None:
        User._col().update_one({"_id": user_id}, {"$set": {"mfa.pending": encrypted_secret}})

    @staticmethod
    def activate_mfa(user_id: ObjectId, pending: str, step: int, recovery_codes: list[str]) -> bool:
        """Turn the pending secret on, unless another request did it a moment ago."""
        result = User._col().update_one(
            {"_id": user_id, "mfa.pending": pending},
            {
                "$set": {
                    "mfa.enabled": True,
                    "mfa.secret": pending,
                    "mfa.last_step": step,
                    "mfa.recovery": [_digest(code) for code in recovery_codes],
                    "updated_at": utcnow(),
                },
                "$unset": {"mfa.pending": ""},
            },
        )
        return result.modified_count == 1

    @staticmethod
    def use_totp_step(user_id: ObjectId, step: int) -> bool:
        """Record a code's time step; False when it (or a later one) was used already: a replay."""
        result = User._col().update_one(
            {"_id": user_id, "mfa.last_step": {"$lt": step}}, {"$set": {"mfa.last_step": step}}
        )
        return result.modified_count == 1

    @staticmethod
    def use_recovery_code(user_id: ObjectId, code: str) -> bool:
        """Spend a recovery code: each works once."""
        digest = _digest(code.strip().lower())
        result = User._col().update_one({"_id": user_id, "mfa.recovery": digest}, {"$pull": {"mfa.recovery": digest}})
        return result.modified_count == 1

    @staticmethod
    def replace_recovery_codes(user_id: ObjectId, recovery_codes: list[str]) -> None:
        User._col().update_one(
            {"_id": user_id}, {"$set": {"mfa.recovery": [_digest(code) for code in recovery_codes]}}
        )

    @staticmethod
    def disable_mfa(user_id: ObjectId) -> None:
        User._col().update_one({"_id": user_id}, {"$set": {"mfa": {"enabled": False}, "updated_at": utcnow()}})


def mfa_enabled(user: dict) -> bool:
    return bool((user.get("mfa") or {}).get("enabled"))


class MfaTickets(_Model):
    """Second-step login tickets: single use, a few tries, gone after five minutes (TTL)."""

    collection = "mfa_tickets"

    @staticmethod
    def create(jti: str, user_id: ObjectId, expires_at: datetime) -> None:
        MfaTickets._col().insert_one(
            {"_id": jti, "user_id": user_id, "attempts": 0, "used_at": None, "expires_at": expires_at}
        )

    @staticmethod
    def usable(jti: str, max_attempts: int) -> dict | None:
        return MfaTickets._col().find_one(
            {"_id": jti, "used_at": None, "attempts": {"$lt": max_attempts}, "expires_at": {"$gt": utcnow()}}
        )

    @staticmethod
    def failed_attempt(jti: str) -> None:
        MfaTickets._col().update_one({"_id": jti}, {"$inc": {"attempts": 1}})

    @staticmethod
    def spend(jti: str, max_attempts: int) -> bool:
        result = MfaTickets._col().update_one(
            {"_id": jti, "used_at": None, "attempts": {"$lt": max_attempts}}, {"$set": {"used_at": utcnow()}}
        )
        return result.modified_count == 1


# --- sessions and refresh tokens --------------------------------------------


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class Sessions(_Model):
    """A login: its refresh token (stored as a hash), rotated on every use.

    A refresh token reads "<session id>.<secret>", so finding its session is one
    lookup by _id. Hashes of secrets already exchanged are kept, so presenting
    one again is recognised as theft.
    """

    collection = "sessions"
    USED_HASHES_KEPT = 20

    @staticmethod
    def create(user: dict, ip: str | None, user_agent: str | None) -> tuple[dict, str]:
        """A new session for `user` (their record as just read, with its session list)."""
        user_id = user["_id"]
        now = utcnow()
        expires = now + timedelta(seconds=current_app.config["REFRESH_TOKEN_EXPIRES_SECONDS"])
        secret = secrets.token_urlsafe(32)
        session = {
            "_id": ObjectId(),
            "user_id": user_id,
            "refresh_hash": _digest(secret),
            "used_hashes": [],
            "created_at": now,
            "last_used_at": now,
            "expires_at": expires,
            "ip": ip,
            "user_agent": (user_agent or "")[:300],
            "revoked_at": None,
        }
        Sessions._col().insert_one(session)
        # One update: the list is kept sorted by expiry and capped, so when it is full the
        # entry that expires first (an expired one, or else the oldest login) drops off.
        # An expired entry that stays meanwhile changes nothing: its refresh token has
        # expired, and no access token outlives its session by more than its own lifetime.
        entry = {"sid": session["_id"], "exp": expires}
        User._col().update_one(
            {"_id": user_id},
            {"$push": {"sessions": {"$each": [entry], "$sort": {"exp": 1}, "$slice": -User.MAX_SESSIONS}}},
        )
        # The list is the truth (token_required, refresh and the session list read it);
        # the record of a live session that fell off is closed too, for the audit trail.
        listed = sorted([*user.get("sessions", ()), entry], key=lambda item: item["exp"])
        for dropped in listed[: -User.MAX_SESSIONS]:
            if dropped["exp"] > now:
                Sessions._col().update_one(
                    {"_id": dropped["sid"]}, {"$set": {"revoked_at": now, "revoked_reason": "session_limit"}}
                )
        return session, f"{session['_id']}.{secret}"

    @staticmethod
    def check(refresh_token: str) -> tuple[str, dict | None]:
        """Judge a presented refresh token without spending it: ("ok", session),
        ("reused", session) for a secret already exchanged, or ("invalid", None)."""
        sid_text, _, secret = refresh_token.partition(".")
        sid = parse_object_id(sid_text) if len(sid_text) == 24 else None
        if sid is None or not secret:
            return "invalid", None
        session = Sessions._col().find_one({"_id": sid})
        if session is None or session["revoked_at"] is not None or session["expires_at"] <= utcnow():
            return "invalid", None
        presented = _digest(secret)
        if hmac.compare_digest(presented, session["refresh_hash"]):
            return "ok", session
        if presented in session["used_hashes"]:
            return "reused", session
        return "invalid", None

    @staticmethod
    def rotate(session: dict, ip: str | None, user_agent: str | None) -> str | None:
        """Replace the session's refresh token; None when another request exchanged the
        same token a moment ago (then it counts as reuse)."""
        new_secret = secrets.token_urlsafe(32)
        current = session["refresh_hash"]
        updated = Sessions._col().update_one(
            # Conditional on the hash: of two concurrent exchanges only one wins.
            {"_id": session["_id"], "refresh_hash": current, "revoked_at": None},
            {
                "$set": {
                    "refresh_hash": _digest(new_secret),
                    "last_used_at": utcnow(),
                    "ip": ip,
                    "user_agent": (user_agent or "")[:300],
                },
                "$push": {"used_hashes": {"$each": [current], "$slice": -Sessions.USED_HASHES_KEPT}},
            },
        )
        if updated.modified_count != 1:
            return None
        return f"{session['_id']}.{new_secret}"

    @staticmethod
    def reissue(sid: ObjectId) -> tuple[dict, str]:
        """A new refresh token for a live session (after a password change); the old one
        counts as used. Returns the session record as it was, and the new token."""
        secret = secrets.token_urlsafe(32)
        session = Sessions._col().find_one_and_update(
            {"_id": sid}, {"$set": {"refresh_hash": _digest(secret), "last_used_at": utcnow()}}
        )
        Sessions._col().update_one(
            {"_id": sid},
            {"$push": {"used_hashes": {"$each": [session["refresh_hash"]], "$slice": -Sessions.USED_HASHES_KEPT}}},
        )
        return session, f"{sid}.{secret}"

    @staticmethod
    def revoke(user_id: ObjectId, sid: ObjectId, reason: str) -> bool:
        """End one session; its access tokens fail from the next request on."""
        result = Sessions._col().update_one(
            {"_id": sid, "user_id": user_id, "revoked_at": None},
            {"$set": {"revoked_at": utcnow(), "revoked_reason": reason}},
        )
        User._col().update_one({"_id": user_id}, {"$pull": {"sessions": {"sid": sid}}})
        return result.modified_count == 1

    @staticmethod
    def revoke_all(user_id: ObjectId, reason: str, keep: ObjectId | None = None) -> None:
        """End every session of a user, except `keep` when given."""
        query = {"user_id": user_id, "revoked_at": None}
        if keep is not None:
            query["_id"] = {"$ne": keep}
            User._col().update_one({"_id": user_id}, {"$pull": {"sessions": {"sid": {"$ne": keep}}}})
        else:
            User._col().update_one({"_id": user_id}, {"$set": {"sessions": []}})
        Sessions._col().update_many(query, {"$set": {"revoked_at": utcnow(), "revoked_reason": reason}})

    @staticmethod
    def active(user: dict) -> list[dict]:
        """The user's live sessions: on the user's list, not revoked, not expired."""
        query = {
            "_id": {"$in": sorted(User.session_ids(user))},
            "user_id": user["_id"],
            "revoked_at": None,
            "expires_at": {"$gt": utcnow()},
        }
        cursor = Sessions._col().find(query, {"refresh_hash": 0, "used_hashes": 0}).sort("last_used_at", DESCENDING)
        return list(cursor)

    @staticmethod
    def to_json(session: dict, current_sid: ObjectId | None) -> dict:
        return {
            "id": str(session["_id"]),
            "created_at": isoformat(session["created_at"]),
            "last_used_at": isoformat(session["last_used_at"]),
            "expires_at": isoformat(session["expires_at"]),
            "ip": session.get("ip"),
            "user_agent": session.get("user_agent"),
            "current": session["_id"] == current_sid,
        }


# --- audit events ----------------------------------------------------------


class Events(_Model):
    """Auth events: what happened, to whom, from where. Never passwords or tokens."""

    collection = "auth_events"

    @staticmethod
    def record(kind: str, user_id: ObjectId | None, ip: str | None, user_agent: str | None, **detail):
        doc = {
            "type": kind,
            "user_id": user_id,
            "at": utcnow(),
            "ip": ip,
            "user_agent": (user_agent or "")[:300],
        }
        if detail:
            doc["detail"] = detail
        try:
            Events._col().insert_one(doc)
        except ConnectionFailure:
            log.warning("could not record auth event %s", kind)

    @staticmethod
    def recent(user_id: ObjectId, limit: int) -> list[dict]:
        cursor = Events._col().find({"user_id": user_id})
        cursor = cursor.sort([("at", DESCENDING), ("_id", DESCENDING)])
        return list(cursor.limit(limit))

    @staticmethod
    def to_json(event: dict) -> dict:
        return {
            "type": event["type"],
            "at": isoformat(event["at"]),
            "ip": event.get("ip"),
            "user_agent": event.get("user_agent"),
            "detail": event.get("detail", {}),
        }


# --- failed-login throttle ---------------------------------------------------


class LoginThrottle(_Model):
    """Failure counter with a growing, capped lock-out, per email and client IP.

    Keyed by the email as typed (normalised), whether or not an account has it,
    so a lock-out says nothing about which accounts exist. Keyed by IP too, so
    an attacker's failures lock the attacker out, never the owner: the owner
    logging in from elsewhere is unaffected, and the per-account rate limit is
    what slows an attack spread over many addresses. Locks last at most
    LOGIN_LOCKOUT_MAX_SECONDS.
    """

    collection = "login_failures"

    def __init__(self, email: str, ip: str | None):
        self.key = f"{email} {ip or '-'}"
        self._has_record = True  # until locked_for() has looked

    def locked_for(self) -> int:
        """Seconds until this email may be tried again from this IP; 0 when it may now."""
        doc = self._col().find_one({"_id": self.key})
        self._has_record = doc is not None
        if not doc or not doc.get("locked_until"):
            return 0
        remaining = (doc["locked_until"] - utcnow()).total_seconds()
        return max(0, int(remaining + 0.999))

    def failed(self) -> None:
        config = current_app.config
        now = utcnow()
        doc = self._col().find_one_and_update(
            {"_id": self.key},
            {"$inc": {"count": 1}, "$set": {"expires_at": now + timedelta(days=1)}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
        self._has_record = True
        over = doc["count"] - config["LOGIN_LOCKOUT_THRESHOLD"]
        if over >= 0:
            seconds = min(
                config["LOGIN_LOCKOUT_SECONDS"] * 2 ** min(over, 20), config["LOGIN_LOCKOUT_MAX_SECONDS"]
            )
            self._col().update_one({"_id": self.key}, {"$set": {"locked_until": now + timedelta(seconds=seconds)}})

    def succeeded(self) -> None:
        """Forget the failures; a round trip only when locked_for() found some."""
        if self._has_record:
            self._col().delete_one({"_id": self.key})


_SPACES = re.compile(r"\s+")


def title_key(title: str) -> str:
    """Titles are unique per user regardless of case and spacing."""
    return _SPACES.sub(" ", title).strip().casefold()


# What a book's JSON needs; title_key stays in the database.
BOOK_FIELDS = {
    "title": 1, "description": 1, "category": 1, "image": 1, "user_id": 1, "created_at": 1, "updated_at": 1,
}


class Books(_Model):
    collection = "books"

    @staticmethod
    def create(user_id: ObjectId, fields: dict, image: str) -> dict:
        """Insert a book; DuplicateKeyError propagates on a duplicate title."""
        now = utcnow()
        doc = {
            "user_id": user_id,
            **fields,
            "title_key": title_key(fields["title"]),
            "image": image,
            "created_at": now,
            "updated_at": now,
        }
        doc["_id"] = Books._col().insert_one(doc).inserted_id
        return doc

    @staticmethod
    def get(book_id: ObjectId, user_id: ObjectId) -> dict | None:
        """The user's book, or None: another user's book is indistinguishable from a missing one.

        Looked up by _id alone and the owner compared here: the embedded server answers
        that faster than a filter on both, and the result is the same."""
        book = Books._col().find_one({"_id": book_id})
        return book if book is not None and book["user_id"] == user_id else None

    @staticmethod
    def page_cursor(user_id: ObjectId, page: int, per_page: int, category: str | None = None):
        """One page, newest first: served by the user_newest or user_category_newest index."""
        return (
            Books._col()
            .find(Books._owned(user_id, category), BOOK_FIELDS)
            .sort([("created_at", DESCENDING), ("_id", DESCENDING)])
            .skip((page - 1) * per_page)
            .limit(per_page)
        )

    @staticmethod
    def list(user_id: ObjectId, page: int, per_page: int, category: str | None = None):
        items = list(Books.page_cursor(user_id, page, per_page, category))
        if len(items) < per_page and (items or page == 1):
            # The last page: the total follows from it, no count needed (the usual case
            # for a small library, whose first page is its last).
            return items, (page - 1) * per_page + len(items)
        return items, Books._col().count_documents(Books._owned(user_id, category))

    @staticmethod
    def _owned(user_id: ObjectId, category: str | None) -> dict:
        query = {"user_id": user_id}
        if category is not None:
            query["category"] = category
        return query

    @staticmethod
    def update(book_id: ObjectId, user_id: ObjectId, fields: dict) -> dict | None:
        """Apply the changes and return the new document (None if it vanished)."""
        changes = dict(fields, updated_at=utcnow())
        if "title" in fields:
            changes["title_key"] = title_key(fields["title"])
        return Books._col().find_one_and_update(
            {"_id": book_id, "user_id": user_id},
            {"$set": changes},
            return_document=ReturnDocument.AFTER,
        )

    @staticmethod
    def delete(book_id: ObjectId, user_id: ObjectId) -> dict | None:
        return Books._col().find_one_and_delete({"_id": book_id, "user_id": user_id})

    @staticmethod
    def to_json(book: dict, image_url: str) -> dict:
        return {
            "id": str(book["_id"]),
            "title": book["title"],
            "description": book.get("description", ""),
            "category": book["category"],
            "image_url": image_url,
            "user_id": str(book["user_id"]),
            "created_at": isoformat(book["created_at"]),
            "updated_at": isoformat(book["updated_at"]),
        }
