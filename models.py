"""The tutorial's models: users and their books, each the one owner of its collection
(database/ holds the client they reach it through). A model writes only its own collection;
what spans several lives in workflows/."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.cursor import Cursor

from database.documents import Document, Index, Model, digest, utcnow

# What the API shows of an account; the password hash and second-factor secrets stay inside.
USER_FIELDS = {
    "name": 1,
    "email": 1,
    "email_verified": 1,
    "disabled": 1,
    "created_at": 1,
    "updated_at": 1,
    "mfa.enabled": 1,
}


class User(Model):
    """An account. Its document also lists its live sessions (`sessions`: the revocation
    check is one lookup), counts its books' list positions (`book_seq`) and records which of
    them hold no book (`book_gaps`: deleted books, failed creates), and holds the
    second factor: {"mfa": {"enabled", "secret" (encrypted), "pending" (encrypted, during
    enrolment), "last_step", "recovery" (hashes)}}."""

    collection = "users"
    # Active sessions per user; a new login beyond this ends the oldest one.
    MAX_SESSIONS = 50

    @classmethod
    def indexes(cls) -> list[Index]:
        # A disabled account is deleted by MongoDB at its purge_at (live ones have none).
        return [
            Index([("email", ASCENDING)], "email_unique", {"unique": True}),
            Index([("purge_at", ASCENDING)], "purge", {"expireAfterSeconds": 0}),
            # Authenticating a personal access token: one lookup by its hash (auth/access_tokens.py).
            Index([("access_tokens.hash", ASCENDING)], "access_token_hash", {"sparse": True}),
        ]

    @staticmethod
    def create(name: str, email: str, password_hash: str) -> Document:
        """Insert a user; DuplicateKeyError propagates when the email is taken."""
        now = utcnow()
        doc: Document = {
            "name": name,
            "email": email,
            "email_verified": False,
            "password": password_hash,
            "disabled": False,
            "sessions": [],
            "book_seq": 0,  # the list position of the user's newest book (see next_book_position)
            "book_gaps": [],  # positions up to book_seq that hold no book (see workflows.book_list)
            "created_at": now,
            "updated_at": now,
        }
        doc["_id"] = User._col().insert_one(doc).inserted_id
        return doc

    @staticmethod
    def get_for_session(user_id: ObjectId, session_id: ObjectId) -> Document | None:
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
    def token_version(user: Document) -> int:
        """Access tokens carry the version current when they were signed (claim `ver`); a
        password change moves it on, so no token signed before it passes token_required."""
        version: int = user.get("token_version", 0)
        return version

    @staticmethod
    def session_ids(user: Document) -> set[ObjectId]:
        """Ids of the sessions the user's record lists: the sessions that may be used."""
        return {entry["sid"] for entry in user.get("sessions", ())}

    @staticmethod
    def find_by_email(email: str) -> Document | None:
        return User._col().find_one({"email": email})

    @staticmethod
    def ids() -> Iterator[ObjectId]:
        for user in User._col().find({}, {"_id": 1}):
            yield user["_id"]

    @staticmethod
    def find_by_id(user_id: ObjectId) -> Document | None:
        return User._col().find_one({"_id": user_id})

    @staticmethod
    def replace_password_hash(user: Document, new_hash: str) -> None:
        """Store a re-made hash of the same password, unless the password changed meanwhile."""
        User._col().update_one({"_id": user["_id"], "password": user["password"]}, {"$set": {"password": new_hash}})

    @staticmethod
    def set_password_hash(user_id: ObjectId, password_hash: str) -> Document | None:
        """A new password: the account moves to a new token version, so every access token
        signed before now stops working. Returns {_id, token_version}."""
        return User._col().find_one_and_update(
            {"_id": user_id},
            {"$set": {"password": password_hash, "updated_at": utcnow()}, "$inc": {"token_version": 1}},
            projection={"token_version": 1, "email": 1},
            return_document=ReturnDocument.AFTER,
        )

    @staticmethod
    def mark_email_verified(user_id: ObjectId, email: str) -> bool:
        """Record that the owner of `email` proved it; False when the account's address is another
        now, or a later sign-up with the address waits for its own link (see add_claim)."""
        result = User._col().update_one(
            {"_id": user_id, "email": email, "disabled": False, "claim": {"$exists": False}},
            {"$set": {"email_verified": True, "updated_at": utcnow()}},
        )
        return result.matched_count == 1

    # --- an unverified account, and whoever proves its address -------------------------------

    @staticmethod
    def add_claim(email: str, name: str, password_hash: str) -> tuple[ObjectId, str] | None:
        """A sign-up with the address of an account nobody has verified: kept beside it until its
        own link is used (it replaces any earlier one). Returns (account id, claim id); None when
        no live unverified account has the address."""
        claim_id = str(ObjectId())
        claim = {"id": claim_id, "name": name, "password": password_hash, "at": utcnow()}
        user = User._col().find_one_and_update(
            {"email": email, "email_verified": False, "disabled": False},
            {"$set": {"claim": claim}},
            projection={"_id": 1},
        )
        return None if user is None else (user["_id"], claim_id)

    @staticmethod
    def apply_claim(user_id: ObjectId, email: str, claim_id: str) -> bool:
        """The claim's link was used: the account becomes that sign-up's (its name and password),
        verified, with no second factor and no session; every token signed before stops working.
        False when the claim is no longer the account's newest, or the account changed meanwhile."""
        query = {"_id": user_id, "email": email, "email_verified": False, "disabled": False, "claim.id": claim_id}
        user = User._col().find_one(query, {"claim": 1})
        if user is None:
            return False
        claim = user["claim"]
        result = User._col().update_one(
            query,
            {
                "$set": {
                    "name": claim["name"],
                    "password": claim["password"],
                    "email_verified": True,
                    "sessions": [],
                    "updated_at": utcnow(),
                },
                "$unset": {"claim": "", "mfa": ""},
                "$inc": {"token_version": 1},
            },
        )
        return result.modified_count == 1

    @staticmethod
    def discard_unproven(user_id: ObjectId) -> bool:
        """Before a reset link proves the address of an account nobody had verified: whatever its
        unproven holder set up goes (a second factor, enrolled or pending, and a waiting sign-up).
        False when the account is verified (its second factor then stays)."""
        result = User._col().update_one({"_id": user_id, "email_verified": False}, {"$unset": {"mfa": "", "claim": ""}})
        return result.matched_count == 1

    @staticmethod
    def change_email(user_id: ObjectId, email: str) -> Document | None:
        """Move the account to a proven address; DuplicateKeyError when another account has it."""
        return User._col().find_one_and_update(
            {"_id": user_id, "disabled": False},
            {"$set": {"email": email, "email_verified": True, "updated_at": utcnow()}},
            return_document=ReturnDocument.BEFORE,
        )

    @staticmethod
    def update_name(user_id: ObjectId, name: str) -> Document | None:
        return User._col().find_one_and_update(
            {"_id": user_id, "disabled": False},
            {"$set": {"name": name, "updated_at": utcnow()}},
            projection=USER_FIELDS,
            return_document=ReturnDocument.AFTER,
        )

    @staticmethod
    def disable(user_id: ObjectId, purge_at: datetime) -> None:
        """Disable the account, empty its session and token lists, and schedule its deletion (the purge TTL index)."""
        now = utcnow()
        listed: Document = {"sessions": [], "access_tokens": []}
        User._col().update_one(
            {"_id": user_id},
            {"$set": {"disabled": True, "disabled_at": now, "updated_at": now, **listed, "purge_at": purge_at}},
        )

    # --- the session list --------------------------------------------------------------

    @staticmethod
    def list_session(user_id: ObjectId, entry: Document) -> None:
        """Add {sid, exp} to the list, kept sorted by expiry and capped in one update: when it
        is full, the entry that expires first (an expired one, or else the oldest login) drops off."""
        User._col().update_one(
            {"_id": user_id},
            {"$push": {"sessions": {"$each": [entry], "$sort": {"exp": 1}, "$slice": -User.MAX_SESSIONS}}},
        )

    @staticmethod
    def unlist_session(user_id: ObjectId, sid: ObjectId) -> None:
        User._col().update_one({"_id": user_id}, {"$pull": {"sessions": {"sid": sid}}})

    @staticmethod
    def unlist_sessions(user_id: ObjectId, keep: ObjectId | None = None) -> None:
        """Take every session off the list, or every one but `keep`."""
        if keep is not None:
            User._col().update_one({"_id": user_id}, {"$pull": {"sessions": {"sid": {"$ne": keep}}}})
        else:
            User._col().update_one({"_id": user_id}, {"$set": {"sessions": []}})

    # --- the personal access token list (auth/access_tokens.py) ------------------------------

    @staticmethod
    def get_for_access_token(token_hash: str) -> Document | None:
        """The active account that lists a token with this hash: the whole revocation check.
        Filtered by the hash alone (the embedded server plans any other condition as a scan)."""
        user = User._col().find_one({"access_tokens.hash": token_hash})
        return None if user is None or user.get("disabled") else user

    @staticmethod
    def list_access_token(user_id: ObjectId, entry: Document, most: int) -> bool:
        """Add {id, hash, scopes, exp} to the list, dropping expired entries; False (nothing
        added) when `most` live ones are listed already."""
        now = utcnow()
        User._col().update_one({"_id": user_id}, {"$pull": {"access_tokens": {"exp": {"$lte": now}}}})
        result = User._col().update_one(
            {"_id": user_id, "disabled": False, f"access_tokens.{most - 1}": {"$exists": False}},
            {"$push": {"access_tokens": entry}},
        )
        return result.modified_count == 1

    @staticmethod
    def unlist_access_token(user_id: ObjectId, token_id: ObjectId) -> None:
        User._col().update_one({"_id": user_id}, {"$pull": {"access_tokens": {"id": token_id}}})

    @staticmethod
    def unlist_access_tokens(user_id: ObjectId) -> None:
        User._col().update_one({"_id": user_id}, {"$set": {"access_tokens": []}})

    # --- list positions of the user's books -----------------------------------------------

    @staticmethod
    def next_book_position(user_id: ObjectId) -> int | None:
        """Take the next list position from the counter (atomic, so never given twice); None
        when the account has no counter yet (see workflows.accounts.number_books)."""
        user = User._col().find_one_and_update(
            {"_id": user_id, "book_seq": {"$exists": True}},
            {"$inc": {"book_seq": 1}},
            projection={"book_seq": 1},
            return_document=ReturnDocument.AFTER,
        )
        return None if user is None else int(user["book_seq"])

    @staticmethod
    def start_book_positions(user_id: ObjectId, last: int) -> None:
        """Start the counter after `last`, unless another request started it meanwhile."""
        User._col().update_one({"_id": user_id, "book_seq": {"$exists": False}}, {"$set": {"book_seq": last}})

    @staticmethod
    def mark_book_gaps(user_id: ObjectId, positions: list[int]) -> None:
        """Record positions as holding no book. A set: marking twice is marking once, so a
        repair and the request it repairs after can both write it."""
        User._col().update_one({"_id": user_id}, {"$addToSet": {"book_gaps": {"$each": positions}}})

    @staticmethod
    def unmark_book_gaps(user_id: ObjectId, positions: list[int]) -> None:
        User._col().update_one({"_id": user_id}, {"$pull": {"book_gaps": {"$in": positions}}})

    # --- second factor ----------------------------------------------------------------------

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


def mfa_enabled(user: Document) -> bool:
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


class Books(Model):
    """A user's books. Each has `seq`, its position in the owner's list (1 for the first book
    the user added, newest highest, never reused), for cursor pages; and `version`, counted
    up by every change, for conditional updates (If-Match)."""

    collection = "books"
    # Tries at swapping the cover while concurrent updates win; each try one of them wins.
    SWAP_ATTEMPTS = 20

    @classmethod
    def indexes(cls) -> list[Index]:
        return [
            Index([("user_id", ASCENDING), ("title_key", ASCENDING)], "user_title_unique", {"unique": True}),
            # A disabled account's books are deleted by MongoDB at their purge_at.
            Index([("purge_at", ASCENDING)], "purge", {"expireAfterSeconds": 0}),
            Index([("user_id", ASCENDING), ("created_at", DESCENDING), ("_id", DESCENDING)], "user_newest"),
            Index(
                [("user_id", ASCENDING), ("category", ASCENDING), ("created_at", DESCENDING), ("_id", DESCENDING)],
                "user_category_newest",
            ),
            # One of the owner's books by id (Books.get): the owner leads, as on a sharded cluster.
            Index([("user_id", ASCENDING), ("_id", ASCENDING)], "user_books"),
            # Cursor and numbered pages: a range of one user's list positions.
            Index([("user_id", ASCENDING), ("seq", DESCENDING)], "user_positions"),
            Index([("user_id", ASCENDING), ("category", ASCENDING), ("seq", DESCENDING)], "user_category_positions"),
        ]

    @staticmethod
    def create(user_id: ObjectId, fields: dict[str, Any], image: str | None, seq: int) -> Document:
        """Insert a book at list position `seq`; DuplicateKeyError propagates on a duplicate title."""
        now = utcnow()
        doc: Document = {
            "user_id": user_id,
            **fields,
            "title_key": title_key(fields["title"]),
            "image": image,
            "seq": seq,
            "version": 1,
            "created_at": now,
            "updated_at": now,
        }
        doc["_id"] = Books._col().insert_one(doc).inserted_id
        return doc

    @staticmethod
    def positions(user_id: ObjectId) -> list[Document]:
        """Every book of a user with its position (if any), oldest first."""
        owned = Books._col().find({"user_id": user_id}, {"seq": 1})
        return list(owned.sort([("created_at", ASCENDING), ("_id", ASCENDING)]))

    @staticmethod
    def set_missing_position(book_id: ObjectId, user_id: ObjectId, position: int) -> None:
        """Give a book from before positions existed its position; a numbered book keeps its own."""
        missing = {"_id": book_id, "user_id": user_id, "seq": {"$exists": False}}
        Books._col().update_one(missing, {"$set": {"seq": position}})

    @staticmethod
    def get(book_id: ObjectId | None, user_id: ObjectId) -> Document | None:
        """The user's book, or None: another user's book is indistinguishable from a missing one.
        The owner is part of the filter, so a sharded cluster routes the lookup to one shard;
        owner first, as the user_books index has it: the embedded server then serves it as a
        point lookup (bench/README.md, Query shapes)."""
        return Books._col().find_one({"user_id": user_id, "_id": book_id})

    @staticmethod
    def page_cursor(user_id: ObjectId, page: int, per_page: int, category: str | None = None) -> Cursor[Document]:
        """One page by skip and limit, newest first (list position: the order of every list),
        served by the user_positions or user_category_positions index."""
        return (
            Books._col()
            .find(Books._owned(user_id, category), BOOK_FIELDS)
            .sort([("seq", DESCENDING), ("_id", DESCENDING)])
            .skip((page - 1) * per_page)
            .limit(per_page)
        )

    @staticmethod
    def numbered_page(
        user_id: ObjectId, page: int, per_page: int, category: str | None = None
    ) -> tuple[list[Document], int]:
        """A page of one category by number, and the total of the owner's books in it (the
        whole list is paged by workflows.book_list, from the owner's counter)."""
        items = list(Books.page_cursor(user_id, page, per_page, category))
        if len(items) < per_page and (items or page == 1):
            # The last page: the total follows from it, no count needed (the usual case
            # for a small library, whose first page is its last).
            return items, (page - 1) * per_page + len(items)
        return items, Books._col().count_documents(Books._owned(user_id, category))

    @staticmethod
    def window(
        user_id: ObjectId, below: int, width: int, category: str | None = None, limit: int = 0
    ) -> Cursor[Document]:
        """The books at list positions [below - width, below), newest first.

        Bounded on both sides, so the server reads only the entries in that range (an
        index range scan on user_positions); a bound on one side only would cost the
        embedded server every older book."""
        query = Books._owned(user_id, category)
        query["seq"] = {"$gte": max(below - width, 1), "$lt": below}
        cursor = Books._col().find(query, CURSOR_FIELDS).sort("seq", DESCENDING)
        return cursor.limit(limit) if limit else cursor

    @staticmethod
    def after(
        user_id: ObjectId, below: int, limit: int, category: str | None = None
    ) -> tuple[list[Document], int | None]:
        """Up to `limit` books before list position `below`, newest first, and the position
        to continue from (None when nothing is left). Positions freed by deleted books (or,
        with a category, taken by other categories) are skipped by windows that double."""
        found: list[Document] = []
        width = limit + 1  # one more than the page: whether a next page exists
        while below > 1 and len(found) <= limit:
            found += Books.window(user_id, below, width, category, limit + 1 - len(found))
            below, width = below - width, width * 2
        page = found[:limit]
        return page, page[-1]["seq"] if len(found) > limit else None

    @staticmethod
    def _owned(user_id: ObjectId, category: str | None) -> Document:
        query: Document = {"user_id": user_id}
        if category is not None:
            query["category"] = category
        return query

    @staticmethod
    def update(
        book_id: ObjectId, user_id: ObjectId, fields: dict[str, Any], version: int | None = None
    ) -> tuple[Document | None, Document | None]:
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
    def delete(book_id: ObjectId, user_id: ObjectId, version: int | None = None) -> Document | None:
        return Books._col().find_one_and_delete(Books._at_version(book_id, user_id, version))

    @staticmethod
    def _at_version(book_id: ObjectId, user_id: ObjectId, version: int | None) -> Document:
        query: Document = {"_id": book_id, "user_id": user_id}
        if version is not None:
            # Books from before versions were counted have none: they are at version 0.
            query["version"] = version or None
        return query

    @staticmethod
    def version(book: Document) -> int:
        version: int = book.get("version", 0)
        return version

    @staticmethod
    def images(user_id: ObjectId) -> list[str]:
        """The cover names of every book of a user."""
        return [book["image"] for book in Books._col().find({"user_id": user_id}, {"image": 1}) if book.get("image")]

    @staticmethod
    def schedule_purge(user_id: ObjectId, purge_at: datetime) -> None:
        """A disabled account's books go with it, at its purge_at."""
        Books._col().update_many({"user_id": user_id}, {"$set": {"purge_at": purge_at}})
