"""The audit log: what happened to an account, when and from where; never passwords or tokens."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from bson import ObjectId
from flask import current_app, g, request
from pymongo import ASCENDING, DESCENDING
from pymongo.errors import ConnectionFailure

from database.documents import SECONDS_PER_DAY, Document, Index, Model, utcnow

log = logging.getLogger(f"book_library.{__name__}")

# Stored user agents are cut to this many characters.
USER_AGENT_MAX = 300
# Refusals anyone can cause by typing an address at /users/login: recorded on the account as
# `stranger` (when nobody was signed in), so that the owner's own events are listed apart.
STRANGER_KINDS = frozenset({"login_failed", "login_locked"})
# Which events a list shows: the owner's own (the default), only strangers' refusals, or all.
OWN, STRANGERS, ALL = "exclude", "only", "include"


class Events(Model):
    """Auth events: what happened, to whom, from where."""

    collection = "auth_events"

    @classmethod
    def indexes(cls) -> list[Index]:
        retention = current_app.config["AUDIT_RETENTION_DAYS"] * SECONDS_PER_DAY
        return [
            Index([("user_id", ASCENDING), ("at", DESCENDING), ("_id", DESCENDING)], "user_recent_events"),
            # The owner's own events (stranger: null) and strangers' refusals, each a range of its own.
            Index(
                [("user_id", ASCENDING), ("stranger", ASCENDING), ("at", DESCENDING), ("_id", DESCENDING)],
                "user_recent_events_by_caller",
            ),
            # Old events are removed by MongoDB itself.
            Index([("at", ASCENDING)], "retention", {"expireAfterSeconds": retention}),
        ]

    @staticmethod
    def record(
        kind: str,
        user_id: ObjectId | None,
        ip: str | None,
        user_agent: str | None,
        stranger: bool = False,
        **detail: Any,
    ) -> None:
        doc: Document = {
            "type": kind,
            "user_id": user_id,
            "at": utcnow(),
            "ip": ip,
            "user_agent": (user_agent or "")[:USER_AGENT_MAX],
        }
        if stranger:  # absent otherwise, so that the owner's own events (and older ones) are stranger: null
            doc["stranger"] = True
        if detail:
            doc["detail"] = detail
        try:
            Events._col().insert_one(doc)
        except ConnectionFailure:
            log.warning("could not record auth event %s", kind)

    @staticmethod
    def recent(
        user_id: ObjectId, limit: int, before: tuple[datetime, ObjectId] | None = None, callers: str = OWN
    ) -> list[Document]:
        """The user's events newest first, from just after `before` (the (at, _id) of the last
        event of the previous page): the owner's own, strangers' refusals, or all of them."""
        query: Document = {"user_id": user_id}
        if callers != ALL:
            query["stranger"] = True if callers == STRANGERS else None
        if before is not None:
            at, event_id = before
            query["$or"] = [{"at": {"$lt": at}}, {"at": at, "_id": {"$lt": event_id}}]
        cursor = Events._col().find(query).sort([("at", DESCENDING), ("_id", DESCENDING)])
        return list(cursor.limit(limit))


def client_info() -> tuple[str | None, str | None]:
    """(IP, user agent) of the caller, as recorded on sessions and events."""
    return request.remote_addr, request.headers.get("User-Agent")


def record(kind: str, user_id: ObjectId | None = None, **detail: Any) -> None:
    """An audit event about the current request's caller."""
    stranger = kind in STRANGER_KINDS and g.get("user_id") is None
    Events.record(kind, user_id, *client_info(), stranger=stranger, **detail)
