"""Sessions and their refresh tokens: a login is a session record, its refresh token stored as
a hash and rotated on every use; the user's document lists the live ones (see models.User)."""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import secrets
from datetime import timedelta
from typing import Any

from bson import ObjectId
from flask import current_app
from pymongo import ASCENDING, DESCENDING
from werkzeug.exceptions import Forbidden

from auth.audit import USER_AGENT_MAX, client_info, record
from auth_middleware import create_access_token
from database.documents import OBJECT_ID_HEX_LENGTH, Document, Index, Model, digest, parse_object_id, utcnow
from models import User

UNVERIFIED = (
    "Verify your email address first: open the link in the mail we sent you. "
    "For a new link, sign up again with the same address."
)
# Random bytes in each refresh token's secret part.
SECRET_BYTES = 32


class RefreshOutcome(enum.Enum):
    VALID = "valid"
    REPEATED = "repeated"  # the token just exchanged, again within REFRESH_REUSE_INTERVAL_SECONDS
    REUSED = "reused"  # a secret already exchanged: taken as theft
    INVALID = "invalid"


def _refresh_token(user_id: ObjectId, sid: ObjectId, secret: str) -> str:
    return f"{user_id}.{sid}.{secret}"


def _secret_of(refresh_token: str) -> str:
    return refresh_token.rsplit(".", 1)[-1]


def _next_secret(sid: ObjectId, secret: str) -> str:
    """The secret a refresh token rotates to: derived from it with the server's key, so that
    the same token presented twice (two browser tabs refreshing at once) rotates to the same
    next token, and the second answer can hand it out again without it being stored."""
    key = current_app.config["SECRET_KEY"].encode()
    mac = hmac.new(key, f"refresh-rotation {sid} {secret}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


class Sessions(Model):
    """A login: its refresh token (stored as a hash), rotated on every use.

    A refresh token reads "<user id>.<session id>.<secret>", so finding its session
    is one lookup by _id and owner (the owner routes it to one shard of a cluster
    sharded by user). Hashes of secrets already exchanged are kept, so presenting
    one again is recognised as theft, except the one exchanged last, within
    REFRESH_REUSE_INTERVAL_SECONDS of its exchange: that is a second tab.
    """

    collection = "sessions"
    USED_HASHES_KEPT = 20

    @classmethod
    def indexes(cls) -> list[Index]:
        return [
            # Expired sessions are removed by MongoDB itself.
            Index([("expires_at", ASCENDING)], "expiry", {"expireAfterSeconds": 0}),
            Index([("user_id", ASCENDING), ("last_used_at", DESCENDING)], "user_recent"),
        ]

    @staticmethod
    def create(user: Document, ip: str | None, user_agent: str | None) -> tuple[Document, str]:
        """A new session for `user` (their record as just read, with its session list)."""
        user_id = user["_id"]
        now = utcnow()
        expires = now + timedelta(seconds=current_app.config["REFRESH_TOKEN_EXPIRES_SECONDS"])
        secret = secrets.token_urlsafe(SECRET_BYTES)
        session = {
            "_id": ObjectId(),
            "user_id": user_id,
            "refresh_hash": digest(secret),
            "used_hashes": [],
            "created_at": now,
            "last_used_at": now,
            "expires_at": expires,
            "ip": ip,
            "user_agent": (user_agent or "")[:USER_AGENT_MAX],
            "revoked_at": None,
            # The password's generation the login proved; a later change outdates the session.
            "token_version": User.token_version(user),
        }
        Sessions._col().insert_one(session)
        # An expired entry that stays on the list changes nothing: its refresh token has
        # expired, and no access token outlives its session by more than its own lifetime.
        entry = {"sid": session["_id"], "exp": expires}
        User.list_session(user_id, entry)
        # The list is the truth (token_required, refresh and the session list read it);
        # the record of a live session that fell off is closed too, for the audit trail.
        listed = sorted([*user.get("sessions", ()), entry], key=lambda item: item["exp"])
        for dropped in listed[: -User.MAX_SESSIONS]:
            if dropped["exp"] > now:
                Sessions._col().update_one(
                    {"_id": dropped["sid"], "user_id": user_id},
                    {"$set": {"revoked_at": now, "revoked_reason": "session_limit"}},
                )
        return session, _refresh_token(user_id, session["_id"], secret)

    @staticmethod
    def check(refresh_token: str) -> tuple[RefreshOutcome, Document | None]:
        """Judge a presented refresh token without spending it: (VALID, session),
        (REUSED, session) for a secret already exchanged, or (INVALID, None)."""
        user_text, _, rest = refresh_token.partition(".")
        sid_text, _, secret = rest.partition(".")
        user_id, sid = (
            parse_object_id(text) if len(text) == OBJECT_ID_HEX_LENGTH else None for text in (user_text, sid_text)
        )
        if user_id is None or sid is None or not secret:
            return RefreshOutcome.INVALID, None
        session = Sessions._col().find_one({"_id": sid, "user_id": user_id})
        if session is None or session["revoked_at"] is not None or session["expires_at"] <= utcnow():
            return RefreshOutcome.INVALID, None
        presented = digest(secret)
        if hmac.compare_digest(presented, session["refresh_hash"]):
            return RefreshOutcome.VALID, session
        if Sessions._just_rotated(session, presented):
            return RefreshOutcome.REPEATED, session
        if presented in session["used_hashes"]:
            return RefreshOutcome.REUSED, session
        return RefreshOutcome.INVALID, None

    @staticmethod
    def _just_rotated(session: Document, presented_hash: str) -> bool:
        """The token exchanged last, presented again within the reuse interval."""
        interval = current_app.config["REFRESH_REUSE_INTERVAL_SECONDS"]
        previous, rotated_at = session.get("previous_hash"), session.get("rotated_at")
        if not interval or previous is None or rotated_at is None:  # 0 turns the grace off
            return False
        return hmac.compare_digest(presented_hash, previous) and utcnow() - rotated_at <= timedelta(seconds=interval)

    @staticmethod
    def rotate(session: Document, refresh_token: str, ip: str | None, user_agent: str | None) -> str | None:
        """Exchange the session's current refresh token for the next one; None when that
        fails (the session ended meanwhile)."""
        new_secret = _next_secret(session["_id"], _secret_of(refresh_token))
        current = session["refresh_hash"]
        now = utcnow()
        owned = {"_id": session["_id"], "user_id": session["user_id"]}
        updated = Sessions._col().update_one(
            # Conditional on the hash: of two concurrent exchanges only one writes.
            {**owned, "refresh_hash": current, "revoked_at": None},
            {
                "$set": {
                    "refresh_hash": digest(new_secret),
                    "previous_hash": current,
                    "rotated_at": now,
                    "last_used_at": now,
                    "ip": ip,
                    "user_agent": (user_agent or "")[:USER_AGENT_MAX],
                },
                "$push": {"used_hashes": {"$each": [current], "$slice": -Sessions.USED_HASHES_KEPT}},
            },
        )
        if updated.modified_count == 1:
            return _refresh_token(session["user_id"], session["_id"], new_secret)
        # Another request exchanged the same token a moment ago: a repeat, if it still is one.
        latest = Sessions._col().find_one({**owned, "revoked_at": None})
        return Sessions.repeat(latest, refresh_token) if latest and Sessions._just_rotated(latest, current) else None

    @staticmethod
    def repeat(session: Document, refresh_token: str) -> str | None:
        """For the token exchanged last, presented again within the interval: the token it
        was exchanged for, while that is still the session's current one."""
        next_secret = _next_secret(session["_id"], _secret_of(refresh_token))
        if not hmac.compare_digest(digest(next_secret), session["refresh_hash"]):
            return None
        return _refresh_token(session["user_id"], session["_id"], next_secret)

    @staticmethod
    def reissue(user_id: ObjectId, sid: ObjectId, token_version: int) -> tuple[Document, str]:
        """A new refresh token for a live session (after a password change, whose new token
        version it takes); the old one counts as used. Returns the session record as it was,
        and the new token."""
        secret = secrets.token_urlsafe(SECRET_BYTES)
        changes = {"refresh_hash": digest(secret), "last_used_at": utcnow(), "token_version": token_version}
        session = Sessions._col().find_one_and_update(
            {"_id": sid, "user_id": user_id},
            # No repeat of the token exchanged last: it was issued under the old password.
            {"$set": changes, "$unset": {"previous_hash": ""}},
        )
        assert session is not None  # the caller's live session: its record stays until it expires
        Sessions._col().update_one(
            {"_id": sid, "user_id": user_id},
            {"$push": {"used_hashes": {"$each": [session["refresh_hash"]], "$slice": -Sessions.USED_HASHES_KEPT}}},
        )
        return session, _refresh_token(user_id, sid, secret)

    @staticmethod
    def outdated(session: Document, user: Document) -> bool:
        """A session logged in with a password that has changed since. Sessions from before
        sessions recorded it are judged by the revocations of the change, as they were."""
        logged_in_with: int = session.get("token_version", User.token_version(user))
        return logged_in_with != User.token_version(user)

    @staticmethod
    def revoke(user_id: ObjectId, sid: ObjectId, reason: str) -> bool:
        """End one session; its access tokens fail from the next request on."""
        result = Sessions._col().update_one(
            {"_id": sid, "user_id": user_id, "revoked_at": None},
            {"$set": {"revoked_at": utcnow(), "revoked_reason": reason}},
        )
        User.unlist_session(user_id, sid)
        return result.modified_count == 1

    @staticmethod
    def revoke_all(user_id: ObjectId, reason: str, keep: ObjectId | None = None) -> None:
        """End every session of a user, except `keep` when given."""
        query: Document = {"user_id": user_id, "revoked_at": None}
        if keep is not None:
            query["_id"] = {"$ne": keep}
        User.unlist_sessions(user_id, keep)
        Sessions._col().update_many(query, {"$set": {"revoked_at": utcnow(), "revoked_reason": reason}})

    @staticmethod
    def active(user: Document) -> list[Document]:
        """The user's live sessions: on the user's list, not revoked, not expired."""
        query = {
            "_id": {"$in": sorted(User.session_ids(user))},
            "user_id": user["_id"],
            "revoked_at": None,
            "expires_at": {"$gt": utcnow()},
        }
        cursor = Sessions._col().find(query, {"refresh_hash": 0, "used_hashes": 0}).sort("last_used_at", DESCENDING)
        return list(cursor)


def start_session(user: Document) -> dict[str, Any]:
    """Log a user in (their record as just read): a new session, its refresh token, and an access token."""
    session, refresh_token = Sessions.create(user, *client_info())
    return token_response(user, session, refresh_token)


def token_response(user: Document, session: Document, refresh_token: str) -> dict[str, Any]:
    """The tokens a client gets for `session` (its record: _id and expires_at)."""
    token, lifetime = create_access_token(user, session["_id"], session["expires_at"])
    return {"token": token, "token_type": "Bearer", "expires_in": lifetime, "refresh_token": refresh_token}


def require_verified_address(user: Document) -> None:
    """With REQUIRE_VERIFIED_EMAIL, any way of logging in (password or passkey) answers 403 until
    the address is proven; asked only once the credential itself has passed."""
    if current_app.config["REQUIRE_VERIFIED_EMAIL"] and not user.get("email_verified"):
        record("login_unverified", user["_id"])
        raise Forbidden(UNVERIFIED)
