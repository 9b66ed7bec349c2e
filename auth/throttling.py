"""Abuse limits: request rate limits per IP or account, counters for requests that come too
often to pay a database write each (count_requests), and the failed-login lock-out."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bson import ObjectId
from flask import current_app, g, request
from limits import parse as parse_limit
from pymongo import ASCENDING, ReturnDocument
from werkzeug.exceptions import TooManyRequests

from auth.audit import record
from auth.state import Tally, auth_state
from database.documents import Index, Model, utcnow

LOCKED_MESSAGE = "Too many failed logins; try again later."
RATE_LIMITED = "Too many requests; try again later."


@dataclass(frozen=True)
class LockState:
    """What the failure counter says about one email from one IP."""

    key: str
    wait_seconds: int  # 0: not locked
    has_failures: bool  # a counter exists, so a success must clear it


class LoginThrottle(Model):
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

    @classmethod
    def indexes(cls) -> list[Index]:
        return [Index([("expires_at", ASCENDING)], "expiry", {"expireAfterSeconds": 0})]

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
        assert doc is not None  # an upsert returning the document AFTER always has one
        over = doc["count"] - config["LOGIN_LOCKOUT_THRESHOLD"]
        if over >= 0:
            doublings = min(over, LoginThrottle.MAX_DOUBLINGS)
            seconds = min(config["LOGIN_LOCKOUT_SECONDS"] * 2**doublings, config["LOGIN_LOCKOUT_MAX_SECONDS"])
            LoginThrottle._col().update_one({"_id": key}, {"$set": {"locked_until": now + timedelta(seconds=seconds)}})

    @staticmethod
    def clear(key: str) -> None:
        LoginThrottle._col().delete_one({"_id": key})


def _first_refusal(name: tuple[str, str, str], until: float) -> bool:
    """True once per limit, key and window in this process."""
    recorded = auth_state().refusals_recorded
    if (recorded.get(name) or 0) > time.time():
        return False
    recorded.put(name, until)
    return True


def rate_limit(scope: str, **keys: Any) -> None:
    """Count this request against each `SETTING=key` pair; 429 when one is used up.

    `rate_limit("login", LOGIN_RATE_LIMIT=ip, LOGIN_ACCOUNT_RATE_LIMIT=email)` counts
    the request once per IP and once per account.
    """
    if not current_app.config["RATELIMIT_ENABLED"]:
        return
    limiter = auth_state().rate_limiter()
    for setting, key in keys.items():
        limit = parse_limit(current_app.config[setting])
        if limiter.hit(limit, scope, setting, str(key)):
            continue
        reset_at, _ = limiter.get_window_stats(limit, scope, setting, str(key))
        if _first_refusal((scope, setting, str(key)), reset_at):
            record("rate_limited", g.get("user_id"), scope=scope, limit=str(limit))
        raise TooManyRequests(RATE_LIMITED, retry_after=max(1, math.ceil(reset_at - time.time())))


def within_limit(scope: str, setting: str, key: str) -> bool:
    """Count one use against a limit without refusing the request: False once it is used up,
    for what is dropped quietly rather than answered 429."""
    if not current_app.config["RATELIMIT_ENABLED"]:
        return True
    limiter = auth_state().rate_limiter()
    return bool(limiter.hit(parse_limit(current_app.config[setting]), scope, setting, key))


class RequestCounts(Model):
    """Requests per key and fixed window, shared by every app process (see count_requests)."""

    collection = "request_counts"

    @classmethod
    def indexes(cls) -> list[Index]:
        return [Index([("expires_at", ASCENDING)], "expiry", {"expireAfterSeconds": 0})]

    @staticmethod
    def add(name: str, amount: int, expires_at: datetime) -> int:
        """Add to the window's counter; its new total, every process's requests included."""
        doc = RequestCounts._col().find_one_and_update(
            {"_id": name},
            {"$inc": {"count": amount}, "$setOnInsert": {"expires_at": expires_at}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
        return int(doc["count"]) if doc else amount


# A process writes its tally of a counter at least this often, and at every request once
# the counter is past half its limit; below that, requests cost no database write.
TALLY_WRITE_SECONDS = 1.0


def count_requests(scope: str, **keys: Any) -> None:
    """Like rate_limit, for every request of a kind (a personal access token's): counted in
    fixed windows, each process tallying its requests and adding them to the shared counter
    once a second, and at every request past half the limit. Far from its limit a request
    costs no write; near it the count is exact, give or take what other processes counted
    in their last second."""
    if not current_app.config["RATELIMIT_ENABLED"]:
        return
    for setting, key in keys.items():
        limit = parse_limit(current_app.config[setting])
        window = limit.get_expiry()
        now = time.time()
        start = int(now // window) * window
        name = f"{scope}/{setting}/{key}/{start}"
        if _tally(name, limit.amount, start + window) > limit.amount:
            if _first_refusal((scope, setting, str(key)), start + window):
                record("rate_limited", g.get("user_id"), scope=scope, limit=str(limit))
            raise TooManyRequests(RATE_LIMITED, retry_after=max(1, math.ceil(start + window - now)))


def _tally(name: str, amount: int, ends_at: float) -> int:
    """This request counted: the counter's total as far as this process knows."""
    tallies = auth_state().tallies
    tally: Tally | None = tallies.get(name)
    if tally is None:
        tally = Tally()
        tallies.put(name, tally)
    with tally.lock:  # one writer per counter per process; others wait for its total
        tally.pending += 1
        estimate = tally.shared + tally.pending
        if estimate * 2 <= amount and time.time() - tally.written_at < TALLY_WRITE_SECONDS:
            return estimate
        expires_at = datetime.fromtimestamp(ends_at, UTC)
        tally.shared, tally.pending = RequestCounts.add(name, tally.pending, expires_at), 0
        tally.written_at = time.time()
        return tally.shared


def check_lockout(email: str, user_id: ObjectId | None = None) -> LockState:
    """Every check of a password or a second factor starts here: 429 while this email is
    locked out from this IP. Wrong passwords and wrong codes share the one counter."""
    state = LoginThrottle.state(email, request.remote_addr)
    if state.wait_seconds:
        record("login_locked", user_id, email=email)
        raise TooManyRequests(LOCKED_MESSAGE, retry_after=state.wait_seconds)
    return state


def count_failure(state: LockState) -> None:
    LoginThrottle.failed(state.key)


def clear_failures(state: LockState) -> None:
    """Forget the failures after a success; a round trip only when there were some."""
    if state.has_failures:
        LoginThrottle.clear(state.key)
