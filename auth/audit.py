"""The audit log: what happened to an account, when and from where; never passwords or tokens."""

from __future__ import annotations

import logging
from typing import Any

from bson import ObjectId
from flask import current_app, request
from pymongo import ASCENDING, DESCENDING
from pymongo.errors import ConnectionFailure

from database.documents import SECONDS_PER_DAY, Document, Index, Model, utcnow

log = logging.getLogger(f"book_library.{__name__}")

# Stored user agents are cut to this many characters.
USER_AGENT_MAX = 300


class Events(Model):
    """Auth events: what happened, to whom, from where."""

    collection = "auth_events"

    @classmethod
    def indexes(cls) -> list[Index]:
        retention = current_app.config["AUDIT_RETENTION_DAYS"] * SECONDS_PER_DAY
        return [
            Index([("user_id", ASCENDING), ("at", DESCENDING), ("_id", DESCENDING)], "user_recent_events"),
            # Old events are removed by MongoDB itself.
            Index([("at", ASCENDING)], "retention", {"expireAfterSeconds": retention}),
        ]

    @staticmethod
    def record(kind: str, user_id: ObjectId | None, ip: str | None, user_agent: str | None, **detail: Any) -> None:
        doc: Document = {
            "type": kind,
            "user_id": user_id,
            "at": utcnow(),
            "ip": ip,
            "user_agent": (user_agent or "")[:USER_AGENT_MAX],
        }
        if detail:
            doc["detail"] = detail
        try:
            Events._col().insert_one(doc)
        except ConnectionFailure:
            log.warning("could not record auth event %s", kind)

    @staticmethod
    def recent(user_id: ObjectId, limit: int) -> list[Document]:
        cursor = Events._col().find({"user_id": user_id})
        cursor = cursor.sort([("at", DESCENDING), ("_id", DESCENDING)])
        return list(cursor.limit(limit))


def client_info() -> tuple[str | None, str | None]:
    """(IP, user agent) of the caller, as recorded on sessions and events."""
    return request.remote_addr, request.headers.get("User-Agent")


def record(kind: str, user_id: ObjectId | None = None, **detail: Any) -> None:
    """An audit event about the current request's caller."""
    Events.record(kind, user_id, *client_info(), **detail)
