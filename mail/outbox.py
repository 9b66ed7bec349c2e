"""The outbox every mail passes through, and `queue()`, how a view sends one. An entry holds
what to send, not the link itself (the token is made just before each attempt)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from email.utils import parseaddr
from typing import Any

from bson import ObjectId
from flask import current_app, has_request_context, request
from pymongo import ASCENDING, ReturnDocument

from auth.audit import Events, record
from auth.throttling import within_limit
from database.documents import Document, Index, Model, utcnow
from mail.link_tokens import TOKEN_LIFETIMES
from mail.messages import KINDS
from mail.settings import mail_state

# Outbox states: waiting to be sent (or retried), delivered, abandoned, not needed after all.
PENDING, SENT, GIVEN_UP, DROPPED = "pending", "sent", "given_up", "dropped"
# How long a finished entry stays for inspection before MongoDB removes it.
KEEP_FINISHED = timedelta(days=7)
# A mail that cannot be sent for a day is given up (sooner when its link expires first).
GIVE_UP_AFTER = timedelta(hours=24)
# Mails cancelled in one go at most: far more than rate limits let anyone queue for one account.
CANCEL_MAX = 100


class Outbox(Model):
    """Mails to send. An entry is claimed with a lease, so that of several sender
    processes one sends it; a failed attempt moves the lease to the next retry."""

    collection = "outbox"

    @classmethod
    def indexes(cls) -> list[Index]:
        return [
            Index([("status", ASCENDING), ("lease_until", ASCENDING)], "due"),
            # Finished entries are removed by MongoDB once kept long enough.
            Index([("purge_at", ASCENDING)], "purge", {"expireAfterSeconds": 0}),
        ]

    @staticmethod
    def add(
        kind: str, to: str, user_id: ObjectId | None, message_id: str, give_up_at: datetime, **params: Any
    ) -> ObjectId:
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
        mail_id: ObjectId = Outbox._col().insert_one(doc).inserted_id
        return mail_id

    @staticmethod
    def claim(owner: str, lease: timedelta) -> Document | None:
        """The next due mail, leased to `owner`; None when nothing is due."""
        now = utcnow()
        return Outbox._col().find_one_and_update(
            {"status": PENDING, "lease_until": {"$lte": now}},
            {"$set": {"lease_until": now + lease, "lease_owner": owner}, "$inc": {"attempts": 1}},
            sort=[("lease_until", ASCENDING)],
            return_document=ReturnDocument.AFTER,
        )

    @staticmethod
    def finish(mail: Document, status: str, **fields: Any) -> bool:
        """Close a claimed mail; False when its lease had passed to another sender."""
        now = utcnow()
        result = Outbox._col().update_one(
            {"_id": mail["_id"], "lease_owner": mail["lease_owner"], "status": PENDING},
            {"$set": {"status": status, "finished_at": now, "purge_at": now + KEEP_FINISHED, **fields}},
        )
        return result.modified_count == 1

    @staticmethod
    def retry_at(mail: Document, when: datetime, error: str, user_id: ObjectId | None) -> None:
        """Leave a claimed mail for another attempt at `when`, noting the account it turned
        out to concern (a reset asked for by address), for the event if it is given up."""
        Outbox._col().update_one(
            {"_id": mail["_id"], "lease_owner": mail["lease_owner"], "status": PENDING},
            {"$set": {"lease_until": when, "last_error": error, "user_id": user_id}},
        )

    @staticmethod
    def cancel(user_id: ObjectId, email: str, kinds: tuple[str, ...]) -> list[Document]:
        """Drop the account's mails of these kinds that wait to be sent (or retried); a mail
        asked for by address (a reset) counts as the account's while it is addressed to it."""
        query = {
            "status": PENDING,
            "kind": {"$in": list(kinds)},
            "$or": [{"user_id": user_id}, {"user_id": None, "to": email}],
        }
        cancelled: list[Document] = []
        while len(cancelled) < CANCEL_MAX and (mail := Outbox._drop(query)) is not None:
            cancelled.append(mail)
        return cancelled

    @staticmethod
    def _drop(query: Document) -> Document | None:
        now = utcnow()
        fields = {"status": DROPPED, "reason": "cancelled", "finished_at": now, "purge_at": now + KEEP_FINISHED}
        return Outbox._col().find_one_and_update(query, {"$set": fields})

    @staticmethod
    def still_pending(mail: Document) -> bool:
        """Whether a claimed mail is still this sender's to send (nobody cancelled it meanwhile)."""
        query = {"_id": mail["_id"], "lease_owner": mail["lease_owner"], "status": PENDING}
        return Outbox._col().count_documents(query, limit=1) == 1


def link_kinds(*purposes: str) -> tuple[str, ...]:
    """The kinds of mail whose link has one of these purposes (any link when none is named)."""
    return tuple(kind for kind, what in KINDS.items() if what.purpose and (not purposes or what.purpose in purposes))


def cancel_queued(user_id: ObjectId, email: str, kinds: tuple[str, ...], reason: str) -> None:
    """Cancel the account's waiting mails of these kinds, each recorded as a `mail_cancelled` event:
    what made their links useless (a new password, a proven address) must not be undone by a
    link made when the mail is finally sent."""
    for mail in Outbox.cancel(user_id, email, kinds):
        record("mail_cancelled", user_id, mail=mail["kind"], reason=reason)


def queue(kind: str, to: str, user_id: ObjectId | None = None, **params: Any) -> None:
    """Put a mail in the outbox and wake this process's sender. The request never waits for SMTP."""
    state = mail_state()
    if state.transport is None:
        return
    now = utcnow()
    give_up_at = now + GIVE_UP_AFTER
    purpose = KINDS[kind].purpose
    if purpose:
        give_up_at = min(give_up_at, now + TOKEN_LIFETIMES[purpose])
    if has_request_context():
        params.setdefault("ip", request.remote_addr)
        params.setdefault("user_agent", (request.headers.get("User-Agent") or "")[:300])
    if not within_limit("mail", "MAIL_RECIPIENT_RATE_LIMIT", f"{kind} {to}"):
        # Dropped, and the request answered as usual: its answer must not tell what was mailed.
        Events.record("mail_refused", user_id, params.get("ip"), params.get("user_agent"), mail=kind)
        return
    domain = parseaddr(current_app.config["MAIL_FROM"])[1].rpartition("@")[2] or "localhost"
    # Not email.utils.make_msgid: it draws on the random module's shared state.
    message_id = f"<{uuid.uuid4().hex}@{domain}>"
    Outbox.add(kind, to, user_id, message_id, give_up_at, at=now, **params)
    if current_app.config["MAIL_SENDER"]:
        state.sender.ensure_running()
        state.sender.wake.set()
