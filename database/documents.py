"""What every model shares: the base class that owns one collection and declares its indexes,
the clock, ids from outside, and the text forms of stored values."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

from bson import ObjectId
from bson.errors import InvalidId
from pymongo.collection import Collection
from pymongo.errors import ConnectionFailure
from werkzeug.routing import BaseConverter

from database.client import get_db, state

log = logging.getLogger(f"book_library.{__name__}")

OBJECT_ID_HEX_LENGTH = 24
SECONDS_PER_DAY = 86400

Document = dict[str, Any]


def utcnow() -> datetime:
    # MongoDB keeps milliseconds; truncating here keeps what we return equal to what we stored.
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def parse_object_id(value: object) -> ObjectId | None:
    """The one place ids from outside are parsed; None when malformed."""
    try:
        return ObjectId(value)  # type: ignore[arg-type]
    except (InvalidId, TypeError):
        return None


class ObjectIdConverter(BaseConverter):
    """URL converter: any path segment matches and a malformed id becomes None, so the
    view answers the same 404 as for a missing record ("Book not found."), not a generic one."""

    regex = "[^/]+"

    def to_python(self, value: str) -> ObjectId | None:
        return parse_object_id(value)

    def to_url(self, value: object) -> str:
        return str(value)


def digest(secret: str) -> str:
    """SHA-256 of a high-entropy secret (refresh tokens, recovery codes): enough to store it."""
    return hashlib.sha256(secret.encode()).hexdigest()


def isoformat(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Index:
    """One index a model's queries rely on: its keys and create_index's options."""

    keys: list[tuple[str, int]]
    name: str
    options: dict[str, Any] = field(default_factory=dict)


class Model:
    """Owns one MongoDB collection, named by `collection`: only the subclass's own methods
    touch it. Declaring a second owner of a collection is an error at import."""

    collection: ClassVar[str]
    owners: ClassVar[dict[str, type[Model]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        owner = Model.owners.get(cls.collection)
        if owner is not None and owner.__module__ != cls.__module__:
            raise TypeError(f"the {cls.collection} collection already belongs to {owner.__qualname__}")
        Model.owners[cls.collection] = cls

    @classmethod
    def _col(cls) -> Collection[Document]:
        return get_db()[cls.collection]

    @classmethod
    def indexes(cls) -> list[Index]:
        """The indexes of the collection (read from current_app.config where a setting sizes one)."""
        return []


def ensure_indexes() -> None:
    """Create every index every model declares. Idempotent; needs an app context."""
    db = get_db()
    for name, model in sorted(Model.owners.items()):
        for index in model.indexes():
            db[name].create_index(index.keys, name=index.name, **index.options)
    state().indexes_ready = True


def ensure_indexes_once() -> None:
    """Create indexes on the first request if start-up could not reach the database."""
    if not state().indexes_ready:
        ensure_indexes()


def try_ensure_indexes() -> None:
    """At start-up: the indexes now, or on the first request that needs the database."""
    if state().client is None:
        return
    try:
        ensure_indexes()
    except ConnectionFailure:
        log.warning("database unreachable at start-up; indexes will be created on first request")
