"""Abuse limits: request rate limits per IP or account, and the failed-login lock-out."""

from __future__ import annotations

import math
import time

from flask import current_app, g, request
from limits import parse as parse_limit
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter
from werkzeug.exceptions import TooManyRequests

from auth_middleware import record
from auth_models import LockState, LoginThrottle

LOCKED_MESSAGE = "Too many failed logins; try again later."
# Refused (limit, key) pairs remembered per process, so a flood of 429s writes one event per window.
REFUSALS_KEPT = 10_000


def _rate_limiter() -> MovingWindowRateLimiter:
    """Moving-window limits (the `limits` library, as used by Flask-Limiter), with counters
    in MongoDB by default so that every app process shares them. Made on first use:
    an app with limits switched off never opens the store."""
    state = current_app.extensions
    if "rate_limiter" not in state:
        config = current_app.config
        uri = config["RATELIMIT_STORAGE_URI"]
        options = {}
        if uri.startswith("mongodb"):
            timeout_ms = config["DATABASE_TIMEOUT_MS"]
            options = {
                "database_name": state["mongo"]["db"].name,
                "counter_collection_name": "rate_limit_counters",
                "window_collection_name": "rate_limit_windows",
                "serverSelectionTimeoutMS": timeout_ms,
                "connectTimeoutMS": timeout_ms,
                "socketTimeoutMS": config["DATABASE_SOCKET_TIMEOUT_MS"],
            }
        state["rate_limiter"] = MovingWindowRateLimiter(storage_from_string(uri, **options))
    return state["rate_limiter"]


def _first_refusal(name: tuple, until: float) -> bool:
    """True once per limit, key and window in this process."""
    recorded = current_app.extensions.setdefault("refusals_recorded", {})
    now = time.time()
    if recorded.get(name, 0) > now:
        return False
    if len(recorded) >= REFUSALS_KEPT:
        for stale in [key for key, expires in recorded.items() if expires <= now]:
            del recorded[stale]
        if len(recorded) >= REFUSALS_KEPT:
            recorded.clear()
    recorded[name] = until
    return True


def rate_limit(scope: str, **keys) -> None:
    """Count this request against each `SETTING=key` pair; 429 when one is used up.

    `rate_limit("login", LOGIN_RATE_LIMIT=ip, LOGIN_ACCOUNT_RATE_LIMIT=email)` counts
    the request once per IP and once per account.
    """
    config = current_app.config
    if not config["RATELIMIT_ENABLED"]:
        return
    limiter = _rate_limiter()
    for setting, key in keys.items():
        limit = parse_limit(config[setting])
        if limiter.hit(limit, scope, setting, str(key)):
            continue
        reset_at, _ = limiter.get_window_stats(limit, scope, setting, str(key))
        if _first_refusal((scope, setting, str(key)), reset_at):
            record("rate_limited", g.get("user_id"), scope=scope, limit=str(limit))
        raise TooManyRequests(
            "Too many requests; try again later.", retry_after=max(1, math.ceil(reset_at - time.time()))
        )


def check_lockout(email: str, user_id=None) -> LockState:
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
