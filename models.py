"""MongoDB access: one client per process, indexes, and the User and Books models."""
from __future__ import annotations

import logging
import re
from datetime import datetime, timezone

from bson import ObjectId
from bson.errors import InvalidId
from flask import current_app
from pymongo import ASCENDING, DESCENDING, MongoClient, ReturnDocument, uri_parser
from pymongo.errors import ConnectionFailure
from werkzeug.routing import BaseConverter, ValidationError
from werkzeug.security import check_password_hash, generate_password_hash

log = logging.getLogger(__name__)

DEFAULT_DATABASE = "book_library"

USER_FIELDS = {"name": 1, "email": 1, "disabled": 1, "created_at": 1, "updated_at": 1}


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


def ensure_indexes(db) -> None:
    """Create every index the queries rely on. Idempotent."""
    db.users.create_index([("email", ASCENDING)], unique=True, name="email_unique")
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
        ensure_indexes(state["db"])
        state["indexes_ready"] = True


def try_ensure_indexes(app) -> None:
    state = app.extensions["mongo"]
    try:
        ensure_indexes(state["db"])
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


class User:
    collection = "users"

    @staticmethod
    def _col():
        return get_db()[User.collection]

    @staticmethod
    def hash_password(password: str) -> str:
        return generate_password_hash(password, method=current_app.config["PASSWORD_HASH_METHOD"])

    @staticmethod
    def create(name: str, email: str, password: str) -> dict:
        """Insert a user; DuplicateKeyError propagates when the email is taken."""
        now = utcnow()
        doc = {
            "name": name,
            "email": email,
            "password": User.hash_password(password),
            "disabled": False,
            "created_at": now,
            "updated_at": now,
        }
        doc["_id"] = User._col().insert_one(doc).inserted_id
        return doc

    @staticmethod
    def get_active(user_id: ObjectId) -> dict | None:
        return User._col().find_one({"_id": user_id, "disabled": False}, USER_FIELDS)

    @staticmethod
    def authenticate(email: str, password: str) -> dict | None:
        """Return the active user whose password matches, else None.

        An unknown email still costs one hash check, so timing does not tell
        whether an account exists.
        """
        user = User._col().find_one({"email": email})
        if user is None:
            check_password_hash(current_app.extensions["dummy_password_hash"], password)
            return None
        if not check_password_hash(user["password"], password) or user.get("disabled"):
            return None
        return user

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
            {"_id": user_id}, {"$set": {"disabled": True, "disabled_at": now, "updated_at": now}}
        )

    @staticmethod
    def to_json(user: dict) -> dict:
        return {
            "id": str(user["_id"]),
            "name": user["name"],
            "email": user["email"],
            "created_at": isoformat(user["created_at"]),
            "updated_at": isoformat(user["updated_at"]),
        }


_SPACES = re.compile(r"\s+")


def title_key(title: str) -> str:
    """Titles are unique per user regardless of case and spacing."""
    return _SPACES.sub(" ", title).strip().casefold()


class Books:
    collection = "books"

    @staticmethod
    def _col():
        return get_db()[Books.collection]

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
        # Owner in the filter: another user's book is indistinguishable from a missing one.
        return Books._col().find_one({"_id": book_id, "user_id": user_id})

    @staticmethod
    def list(user_id: ObjectId, page: int, per_page: int, category: str | None = None):
        query = {"user_id": user_id}
        if category is not None:
            query["category"] = category
        col = Books._col()
        total = col.count_documents(query)
        cursor = (
            col.find(query)
            .sort([("created_at", DESCENDING), ("_id", DESCENDING)])
            .skip((page - 1) * per_page)
            .limit(per_page)
        )
        return list(cursor), total

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
