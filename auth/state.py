"""What authentication keeps per app, made once at app creation and read through `auth_state()`."""

from __future__ import annotations

import functools
import secrets
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from argon2 import PasswordHasher
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import Config, Flask, current_app
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from database.client import DEFAULT_DATABASE
from database.client import state as database_state

EXTENSION = "book_library.auth"
# Verified access tokens kept per process (see auth_middleware).
VERIFIED_TOKENS_KEPT = 4096
# Personal access tokens whose use this process recorded lately (see auth.access_tokens.note_use).
TOKEN_USES_KEPT = 4096
# Shared request counters this process tallies (see auth.throttling.count_requests).
TALLIES_KEPT = 10_000
# Refused (limit, key) pairs remembered per process, so a flood of 429s writes one event per window.
REFUSALS_KEPT = 10_000


class BoundedCache:
    """A dict that forgets its oldest entry past `size`; safe across a worker's threads."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._items: OrderedDict[Any, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Any) -> Any:
        with self._lock:
            return self._items.get(key)

    def put(self, key: Any, value: Any) -> None:
        with self._lock:
            self._items[key] = value
            if len(self._items) > self._size:
                self._items.popitem(last=False)

    def discard(self, key: Any) -> None:
        with self._lock:
            self._items.pop(key, None)


@dataclass
class Tally:
    """One shared request counter as this process knows it."""

    shared: int = 0  # the counter's total at this process's last write
    pending: int = 0  # counted here since, not written yet
    written_at: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class AuthState:
    hasher: PasswordHasher
    dummy_hash: str  # verified for unknown emails, so timing tells nothing
    totp_cipher: AESGCM
    make_rate_limiter: Callable[[], MovingWindowRateLimiter]
    verified_tokens: BoundedCache = field(default_factory=lambda: BoundedCache(VERIFIED_TOKENS_KEPT))
    refusals_recorded: BoundedCache = field(default_factory=lambda: BoundedCache(REFUSALS_KEPT))
    token_uses: BoundedCache = field(default_factory=lambda: BoundedCache(TOKEN_USES_KEPT))
    tallies: BoundedCache = field(default_factory=lambda: BoundedCache(TALLIES_KEPT))
    _rate_limiter: MovingWindowRateLimiter | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def rate_limiter(self) -> MovingWindowRateLimiter:
        """Made at the first limited request: an app whose limits are off never opens the store."""
        with self._lock:
            if self._rate_limiter is None:
                self._rate_limiter = self.make_rate_limiter()
            return self._rate_limiter

    def drop_rate_limiter(self) -> None:
        with self._lock:
            self._rate_limiter = None


def init_app(app: Flask) -> None:
    config = app.config
    # Argon2id at the OWASP parameters by default.
    hasher = PasswordHasher(
        time_cost=config["PASSWORD_HASH_TIME_COST"],
        memory_cost=config["PASSWORD_HASH_MEMORY_KIB"],
        parallelism=config["PASSWORD_HASH_PARALLELISM"],
    )
    state = AuthState(
        hasher=hasher,
        dummy_hash=hasher.hash(secrets.token_urlsafe(16)),
        totp_cipher=_totp_cipher(config["MFA_ENCRYPTION_KEY"]),
        # Not a closure over the app: the state must not keep its app alive (see below).
        make_rate_limiter=functools.partial(_rate_limiter, config, _database_name(app)),
    )
    app.extensions[EXTENSION] = state
    # The MongoDB store closes its client in __del__. Left to interpreter shutdown, that fails
    # ("sys.meta_path is None") or waits on a database already gone; dropped when the app goes
    # instead, it closes while the interpreter still works.
    weakref.finalize(app, state.drop_rate_limiter)


def auth_state() -> AuthState:
    result: AuthState = current_app.extensions[EXTENSION]
    return result


def _totp_cipher(material: str) -> AESGCM:
    """AES-GCM with a key derived from MFA_ENCRYPTION_KEY (by default SECRET_KEY) by HKDF."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"book-library totp secret")
    return AESGCM(hkdf.derive(material.encode()))


def _database_name(app: Flask) -> str:
    db = database_state(app).db
    return db.name if db is not None else DEFAULT_DATABASE


def _rate_limiter(config: Config, database_name: str) -> MovingWindowRateLimiter:
    """Moving-window limits (the `limits` library, as used by Flask-Limiter), with counters
    in MongoDB by default so that every app process shares them."""
    uri = config["RATELIMIT_STORAGE_URI"]
    options: dict[str, Any] = {}
    if uri.startswith("mongodb"):
        timeout_ms = config["DATABASE_TIMEOUT_MS"]
        options = {
            "database_name": database_name,
            "counter_collection_name": "rate_limit_counters",
            "window_collection_name": "rate_limit_windows",
            "serverSelectionTimeoutMS": timeout_ms,
            "connectTimeoutMS": timeout_ms,
            "socketTimeoutMS": config["DATABASE_SOCKET_TIMEOUT_MS"],
        }
    return MovingWindowRateLimiter(storage_from_string(uri, **options))
