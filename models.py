"""MongoDB access: one client per process, indexes, passwords, and the product's data
(users and their books). The token lifecycle's records live in auth_models.py."""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
from datetime import UTC, datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from bson import ObjectId
from bson.errors import InvalidId
from flask import current_app
from pymongo import ASCENDING, DESCENDING, MongoClient, ReturnDocument, uri_parser
from pymongo.errors import ConnectionFailure
from werkzeug.routing import BaseConverter
from werkzeug.security import check_password_hash

log = logging.getLogger(__name__)

DEFAULT_DATABASE = "book_library"
OBJECT_ID_HEX_LENGTH = 24
SECONDS_PER_DAY = 86400

USER_FIELDS = {
    "name": 1,
    "email": 1,
    "email_verified": 1,
    "disabled": 1,
    "created_at": 1,
    "updated_at": 1,
    "mfa.enabled": 1,
}


def utcnow() -> datetime:
    # MongoDB keeps milliseconds; truncating here keeps what we return equal to what we stored.
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def init_app(app) -> None:
    """Create the process's MongoClient and keep it in app.extensions; with no DATABASE_URL
    (and no client handed in) there is none, and configured() says so."""
    client = app.config.get("MONGO_CLIENT")
    if client is None and not app.config["DATABASE_URL"]:
        app.extensions["mongo"] = {"client": None, "db": None, "indexes_ready": False}
        return
    if client is None:
        timeout_ms = app.config["DATABASE_TIMEOUT_MS"]
        client = MongoClient(
            app.config["DATABASE_URL"],
            serverSelectionTimeoutMS=timeout_ms,
            connectTimeoutMS=timeout_ms,
            socketTimeoutMS=app.config["DATABASE_SOCKET_TIMEOUT_MS"],
            maxPoolSize=app.config["DATABASE_POOL_SIZE"],
            tz_aware=True,
            appname="book-library",
            connect=False,  # no I/O until the first query, so forking servers stay safe
        )
    # The URL's path names the database, also when a client is handed in (tests).
    url = app.config["DATABASE_URL"]
    name = (uri_parser.parse_uri(url)["database"] if url else None) or DEFAULT_DATABASE
    db = client[name]
    app.extensions["mongo"] = {"client": client, "db": db, "indexes_ready": False}


def get_db():
    return current_app.extensions["mongo"]["db"]


def configured(app=None) -> bool:
    """Whether the app has a database at all (DATABASE_URL set, or a client handed in)."""
    return (app or current_app).extensions["mongo"]["client"] is not None


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
        [("at", ASCENDING)], expireAfterSeconds=audit_retention_days * SECONDS_PER_DAY, name="retention"
    )
    # Mailed links' tokens (one per user and purpose, a newer replacing the older) and the outbox.
    db.link_tokens.create_index([("hash", ASCENDING)], unique=True, name="hash_unique")
    db.link_tokens.create_index(
        [("user_id", ASCENDING), ("purpose", ASCENDING)], unique=True, name="user_purpose_unique"
    )
    db.link_tokens.create_index([("expires_at", ASCENDING)], expireAfterSeconds=0, name="expiry")
    db.outbox.create_index([("status", ASCENDING), ("lease_until", ASCENDING)], name="due")
    db.outbox.create_index([("purge_at", ASCENDING)], expireAfterSeconds=0, name="purge")
    db.books.create_index([("user_id", ASCENDING), ("title_key", ASCENDING)], unique=True, name="user_title_unique")
    # A disabled account and its books are deleted by MongoDB at their purge_at (documents
    # without the field, every live one, are never touched).
    db.users.create_index([("purge_at", ASCENDING)], expireAfterSeconds=0, name="purge")
    db.books.create_index([("purge_at", ASCENDING)], expireAfterSeconds=0, name="purge")
    db.books.create_index(
        [("user_id", ASCENDING), ("created_at", DESCENDING), ("_id", DESCENDING)],
        name="user_newest",
    )
    db.books.create_index(
        [("user_id", ASCENDING), ("category", ASCENDING), ("created_at", DESCENDING), ("_id", DESCENDING)],
        name="user_category_newest",
    )
    # Cursor pages: a range of one user's list positions.
    db.books.create_index([("user_id", ASCENDING), ("seq", DESCENDING)], name="user_positions")
    db.books.create_index(
        [("user_id", ASCENDING), ("category", ASCENDING), ("seq", DESCENDING)], name="user_category_positions"
    )


def ensure_indexes_once() -> None:
    """Create indexes on the first request if start-up could not reach the database."""
    state = current_app.extensions["mongo"]
    if not state["indexes_ready"]:
        ensure_indexes(state["db"], current_app.config["AUDIT_RETENTION_DAYS"])
        state["indexes_ready"] = True


def try_ensure_indexes(app) -> None:
    state = app.extensions["mongo"]
    if state["client"] is None:
        return
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
    """URL converter: any path segment matches and a malformed id becomes None, so the
    view answers the same 404 as for a missing record ("Book not found."), not a generic one."""

    regex = "[^/]+"

    def to_python(self, value):
        return parse_object_id(value)

    def to_url(self, value):
        return str(value)


def digest(secret: str) -> str:
    """SHA-256 of a high-entropy secret (refresh tokens, recovery codes): enough to store it."""
    return hashlib.sha256(secret.encode()).hexdigest()


def isoformat(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


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
        time_cost=app.config["PASSWORD_HASH_TIME_COST"],
        memory_cost=app.config["PASSWORD_HASH_MEMORY_KIB"],
        parallelism=app.config["PASSWORD_HASH_PARALLELISM"],
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
            "book_seq": 0,  # the list position of the user's newest book (see Books.next_seq)
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
        """
        user = User._col().find_one({"_id": user_id})
        if user is None or user.get("disabled"):
            return None
        if session_id not in User.session_ids(user):
            return None
        return user

    @staticmethod
    def token_version(user: dict) -> int:
        """Access tokens carry the version current when they were signed (claim `ver`); a
        password change moves it on, so no token signed before it passes token_required."""
        return user.get("token_version", 0)

    @staticmethod
    def session_ids(user: dict) -> set:
        """Ids of the sessions the user's record lists: the sessions that may be used."""
        return {entry["sid"] for entry in user.get("sessions", ())}

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
    def set_password(user_id: ObjectId, password: str) -> dict:
        """A new password, by whatever route: the account moves to a new token version (every
        access token signed before now stops working), and any password-reset or email-change
        link still out stops working: a reset must also evict whoever asked for those.
        Returns {_id, token_version}."""
        user = User._col().find_one_and_update(
            {"_id": user_id},
            {"$set": {"password": hash_password(password), "updated_at": utcnow()}, "$inc": {"token_version": 1}},
            projection={"token_version": 1},
            return_document=ReturnDocument.AFTER,
        )
        get_db().link_tokens.delete_many({"user_id": user_id, "purpose": {"$in": ["reset_password", "change_email"]}})
        return user

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
    def disable(user_id: ObjectId, keep_days: int) -> datetime:
        """Disable the account and schedule it, and its books, for deletion in `keep_days`
        (the purge TTL index); returns when."""
        now = utcnow()
        purge_at = now + timedelta(days=keep_days)
        User._col().update_one(
            {"_id": user_id},
            {"$set": {"disabled": True, "disabled_at": now, "updated_at": now, "sessions": [], "purge_at": purge_at}},
        )
        Books._col().update_many({"user_id": user_id}, {"$set": {"purge_at": purge_at}})
        return purge_at

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
                    "mfa.recovery": [digest(code) for code in recovery_codes],
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
        hashed = digest(code.strip().lower())
        result = User._col().update_one({"_id": user_id, "mfa.recovery": hashed}, {"$pull": {"mfa.recovery": hashed}})
        return result.modified_count == 1

    @staticmethod
    def replace_recovery_codes(user_id: ObjectId, recovery_codes: list[str]) -> None:
        User._col().update_one({"_id": user_id}, {"$set": {"mfa.recovery": [digest(code) for code in recovery_codes]}})

    @staticmethod
    def disable_mfa(user_id: ObjectId) -> None:
        User._col().update_one({"_id": user_id}, {"$set": {"mfa": {"enabled": False}, "updated_at": utcnow()}})


def mfa_enabled(user: dict) -> bool:
    return bool((user.get("mfa") or {}).get("enabled"))


_SPACES = re.compile(r"\s+")


def title_key(title: str) -> str:
    """Titles are unique per user regardless of case and spacing."""
    return _SPACES.sub(" ", title).strip().casefold()


# What a book's JSON needs; title_key stays in the database.
BOOK_FIELDS = {
    "title": 1,
    "description": 1,
    "category": 1,
    "image": 1,
    "user_id": 1,
    "created_at": 1,
    "updated_at": 1,
}
# A cursor page also needs each book's list position.
CURSOR_FIELDS = {**BOOK_FIELDS, "seq": 1}


class BookBusy(Exception):
    """Other requests kept replacing the book's cover while this one tried to."""


class Books(_Model):
    """A user's books. Each has `seq`, its position in the owner's list (1 for the first book
    the user added, newest highest, never reused), for cursor pages; and `version`, counted
    up by every change, for conditional updates (If-Match)."""

    collection = "books"
    # Tries at swapping the cover while concurrent updates win; each try one of them wins.
    SWAP_ATTEMPTS = 20

    @staticmethod
    def create(user_id: ObjectId, fields: dict, image: str) -> dict:
        """Insert a book; DuplicateKeyError propagates on a duplicate title."""
        now = utcnow()
        doc = {
            "user_id": user_id,
            **fields,
            "title_key": title_key(fields["title"]),
            "image": image,
            "seq": Books.next_seq(user_id),
            "version": 1,
            "created_at": now,
            "updated_at": now,
        }
        doc["_id"] = Books._col().insert_one(doc).inserted_id
        return doc

    @staticmethod
    def next_seq(user_id: ObjectId) -> int:
        """Take the next list position from the owner's counter (atomic, so never given twice)."""
        for _ in range(2):
            user = User._col().find_one_and_update(
                {"_id": user_id, "book_seq": {"$exists": True}},
                {"$inc": {"book_seq": 1}},
                projection={"book_seq": 1},
                return_document=ReturnDocument.AFTER,
            )
            if user is not None:
                return user["book_seq"]
            Books.number_existing(user_id)
        raise LookupError("the user to number books for does not exist")

    @staticmethod
    def number_existing(user_id: ObjectId) -> int:
        """Give positions to the books of an account from before positions existed, oldest
        first, and start its counter after them. Safe to run twice at once: both compute
        the same numbers, and each write only fills in what is missing."""
        owned = (
            Books._col().find({"user_id": user_id}, {"seq": 1}).sort([("created_at", ASCENDING), ("_id", ASCENDING)])
        )
        books = list(owned)
        # One write per book, once per account (bulk_write would do; mongomock cannot run it).
        for position, book in enumerate(books, start=1):
            if "seq" not in book:
                missing = {"_id": book["_id"], "user_id": user_id, "seq": {"$exists": False}}
                Books._col().update_one(missing, {"$set": {"seq": position}})
        last = max([len(books)] + [book.get("seq", 0) for book in books])
        User._col().update_one({"_id": user_id, "book_seq": {"$exists": False}}, {"$set": {"book_seq": last}})
        return last

    @staticmethod
    def get(book_id: ObjectId, user_id: ObjectId) -> dict | None:
        """The user's book, or None: another user's book is indistinguishable from a missing one.
        The owner is part of the filter, so a sharded cluster routes the lookup to one shard."""
        return Books._col().find_one({"_id": book_id, "user_id": user_id})

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
    def window(user_id: ObjectId, below: int, width: int, category: str | None = None, limit: int = 0):
        """The books at list positions [below - width, below), newest first.

        Bounded on both sides, so the server reads only the entries in that range (an
        index range scan on user_positions); a bound on one side only would cost the
        embedded server every older book."""
        query = Books._owned(user_id, category)
        query["seq"] = {"$gte": max(below - width, 1), "$lt": below}
        cursor = Books._col().find(query, CURSOR_FIELDS).sort("seq", DESCENDING)
        return cursor.limit(limit) if limit else cursor

    @staticmethod
    def after(user_id: ObjectId, below: int, limit: int, category: str | None = None) -> tuple[list, int | None]:
        """Up to `limit` books before list position `below`, newest first, and the position
        to continue from (None when nothing is left). Positions freed by deleted books (or,
        with a category, taken by other categories) are skipped by windows that double."""
        found: list[dict] = []
        width = limit + 1  # one more than the page: whether a next page exists
        while below > 1 and len(found) <= limit:
            found += Books.window(user_id, below, width, category, limit + 1 - len(found))
            below, width = below - width, width * 2
        page = found[:limit]
        return page, page[-1]["seq"] if len(found) > limit else None

    @staticmethod
    def _owned(user_id: ObjectId, category: str | None) -> dict:
        query = {"user_id": user_id}
        if category is not None:
            query["category"] = category
        return query

    @staticmethod
    def update(
        book_id: ObjectId, user_id: ObjectId, fields: dict, version: int | None = None
    ) -> tuple[dict | None, dict | None]:
        """Apply the changes: (the document they replaced, the new one); (None, None) if the
        book vanished or, when a version is given, is no longer at that version. The replaced
        document says which cover this update, and no other, made unused."""
        changes = dict(fields, updated_at=utcnow())
        if "title" in fields:
            changes["title_key"] = title_key(fields["title"])
        # Compare-and-swap on the version just read (find_one_and_update's BEFORE document
        # says the same on MongoDB, but the embedded server can hand one earlier document to
        # concurrent calls); a conditional update_one is atomic on both.
        for _ in range(Books.SWAP_ATTEMPTS):
            current = Books._col().find_one(Books._at_version(book_id, user_id, version))
            if current is None:
                return None, None
            read = Books.version(current)
            swap = {"$set": changes, "$inc": {"version": 1}}
            if Books._col().update_one(Books._at_version(book_id, user_id, read), swap).matched_count:
                return current, {**current, **changes, "version": read + 1}
            if version is not None:  # the pinned version is gone
                return None, None
        raise BookBusy()

    @staticmethod
    def image_names() -> set[str]:
        """Every cover name a book references (one pass over the collection)."""
        return {book["image"] for book in Books._col().find({}, {"image": 1, "_id": 0}) if book.get("image")}

    @staticmethod
    def delete(book_id: ObjectId, user_id: ObjectId, version: int | None = None) -> dict | None:
        return Books._col().find_one_and_delete(Books._at_version(book_id, user_id, version))

    @staticmethod
    def _at_version(book_id: ObjectId, user_id: ObjectId, version: int | None) -> dict:
        query = {"_id": book_id, "user_id": user_id}
        if version is not None:
            # Books from before versions were counted have none: they are at version 0.
            query["version"] = version or None
        return query

    @staticmethod
    def version(book: dict) -> int:
        return book.get("version", 0)

    @staticmethod
    def images(user_id: ObjectId) -> list[str]:
        """The cover names of every book of a user."""
        return [book["image"] for book in Books._col().find({"user_id": user_id}, {"image": 1}) if book.get("image")]

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
