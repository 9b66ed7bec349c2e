"""MongoDB records of the token lifecycle: sessions and refresh tokens, MFA tickets,
failed-login counters and the audit log. All in MongoDB, so every app process agrees at once."""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import logging
import math
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from bson import ObjectId
from flask import current_app
from pymongo import DESCENDING, ReturnDocument
from pymongo.errors import ConnectionFailure

from models import OBJECT_ID_HEX_LENGTH, User, _Model, digest, isoformat, parse_object_id, utcnow

log = logging.getLogger(__name__)

# Stored user agents are cut to this many characters.
USER_AGENT_MAX = 300
# Random bytes in each refresh token's secret part.
SECRET_BYTES = 32


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


class Sessions(_Model):
    """A login: its refresh token (stored as a hash), rotated on every use.

    A refresh token reads "<user id>.<session id>.<secret>", so finding its session
    is one lookup by _id and owner (the owner routes it to one shard of a cluster
    sharded by user). Hashes of secrets already exchanged are kept, so presenting
    one again is recognised as theft, except the one exchanged last, within
    REFRESH_REUSE_INTERVAL_SECONDS of its exchange: that is a second tab.
    """

    collection = "sessions"
    USED_HASHES_KEPT = 20

    @staticmethod
    def create(user: dict, ip: str | None, user_agent: str | None) -> tuple[dict, str]:
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
                    {"_id": dropped["sid"], "user_id": user_id},
                    {"$set": {"revoked_at": now, "revoked_reason": "session_limit"}},
                )
        return session, _refresh_token(user_id, session["_id"], secret)

    @staticmethod
    def check(refresh_token: str) -> tuple[RefreshOutcome, dict | None]:
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
    def _just_rotated(session: dict, presented_hash: str) -> bool:
        """The token exchanged last, presented again within the reuse interval."""
        interval = current_app.config["REFRESH_REUSE_INTERVAL_SECONDS"]
        previous, rotated_at = session.get("previous_hash"), session.get("rotated_at")
        if not interval or previous is None or rotated_at is None:  # 0 turns the grace off
            return False
        return hmac.compare_digest(presented_hash, previous) and utcnow() - rotated_at <= timedelta(seconds=interval)

    @staticmethod
    def rotate(session: dict, refresh_token: str, ip: str | None, user_agent: str | None) -> str | None:
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
    def repeat(session: dict, refresh_token: str) -> str | None:
        """For the token exchanged last, presented again within the interval: the token it
        was exchanged for, while that is still the session's current one."""
        next_secret = _next_secret(session["_id"], _secret_of(refresh_token))
        if not hmac.compare_digest(digest(next_secret), session["refresh_hash"]):
            return None
        return _refresh_token(session["user_id"], session["_id"], next_secret)

    @staticmethod
    def reissue(user_id: ObjectId, sid: ObjectId, token_version: int) -> tuple[dict, str]:
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
        Sessions._col().update_one(
            {"_id": sid, "user_id": user_id},
            {"$push": {"used_hashes": {"$each": [session["refresh_hash"]], "$slice": -Sessions.USED_HASHES_KEPT}}},
        )
        return session, _refresh_token(user_id, sid, secret)

    @staticmethod
    def outdated(session: dict, user: dict) -> bool:
        """A session logged in with a password that has changed since. Sessions from before
        sessions recorded it are judged by the revocations of the change, as they were."""
        return session.get("token_version", User.token_version(user)) != User.token_version(user)

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
            "user_agent": (user_agent or "")[:USER_AGENT_MAX],
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


@dataclass(frozen=True)
class LockState:
    """What the failure counter says about one email from one IP."""

    key: str
    wait_seconds: int  # 0: not locked
    has_failures: bool  # a counter exists, so a success must clear it


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
    # Failures are forgotten a day after the last one.
    MEMORY = timedelta(days=1)
    # The lock doubles per failure over the threshold; past this many doublings the cap holds anyway.
    MAX_DOUBLINGS = 20

    @staticmethod
    def state(email: str, ip: str | None) -> LockState:
        key = f"{email} {ip or '-'}"
        doc = LoginThrottle._col().find_one({"_id": key})
        wait = 0
        if doc and doc.get("locked_until"):
            wait = max(0, math.ceil((doc["locked_until"] - utcnow()).total_seconds()))
        return LockState(key, wait, doc is not None)

    @staticmethod
    def failed(key: str) -> None:
        config = current_app.config
        now = utcnow()
        doc = LoginThrottle._col().find_one_and_update(
            {"_id": key},
            {"$inc": {"count": 1}, "$set": {"expires_at": now + LoginThrottle.MEMORY}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
        over = doc["count"] - config["LOGIN_LOCKOUT_THRESHOLD"]
        if over >= 0:
            doublings = min(over, LoginThrottle.MAX_DOUBLINGS)
            seconds = min(config["LOGIN_LOCKOUT_SECONDS"] * 2**doublings, config["LOGIN_LOCKOUT_MAX_SECONDS"])
            LoginThrottle._col().update_one({"_id": key}, {"$set": {"locked_until": now + timedelta(seconds=seconds)}})

    @staticmethod
    def clear(key: str) -> None:
        LoginThrottle._col().delete_one({"_id": key})
