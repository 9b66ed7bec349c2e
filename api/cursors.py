"""Opaque cursors for keyset pagination: a position in one user's book list, signed; and a
position in one user's audit log (see encode_event).

A cursor carries the list position (the `seq` of the last book served) and an HMAC over
that position and the owner's id, keyed from SECRET_KEY. A client cannot forge or edit a
position, nor use one user's cursor in another user's list: either way it is refused.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import struct
from datetime import UTC, datetime, timedelta

from bson import ObjectId
from flask import current_app

VERSION = 1
_LAYOUT = struct.Struct(">Bq")  # version, position
MAC_BYTES = 16
KEY_LABEL = b"book-library/book-list-cursor/v1"


class BadCursor(ValueError):
    """The cursor was not made by this server for this user."""


def _key() -> bytes:
    # A key of its own, so a cursor's MAC can never be confused with any other signature.
    return hmac.new(current_app.config["SECRET_KEY"].encode(), KEY_LABEL, hashlib.sha256).digest()


def _mac(user_id: ObjectId, body: bytes) -> bytes:
    return hmac.new(_key(), user_id.binary + body, hashlib.sha256).digest()[:MAC_BYTES]


def encode(user_id: ObjectId, position: int) -> str:
    body = _LAYOUT.pack(VERSION, position)
    return base64.urlsafe_b64encode(body + _mac(user_id, body)).decode().rstrip("=")


def decode(user_id: ObjectId, cursor: str) -> int:
    """The position a cursor names; BadCursor unless this server made it for this user."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    except (binascii.Error, ValueError):
        raise BadCursor() from None
    body, mac = raw[: _LAYOUT.size], raw[_LAYOUT.size :]
    if len(body) != _LAYOUT.size or not hmac.compare_digest(mac, _mac(user_id, body)):
        raise BadCursor()
    version, position = _LAYOUT.unpack(body)
    if version != VERSION:
        raise BadCursor()
    return int(position)


# --- the audit log's pages: a position in one user's events, newest first ---------------------

_EVENT_LAYOUT = struct.Struct(">q12s")  # the event's time in milliseconds since the epoch, its _id
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def encode_event(at: datetime, event_id: ObjectId) -> str:
    """Where the next page of events starts: just after this one. Unsigned: the list is always
    the caller's own, so a made-up position only shows the caller's own events from there."""
    millis = (at.replace(tzinfo=at.tzinfo or UTC) - _EPOCH) // timedelta(milliseconds=1)
    return base64.urlsafe_b64encode(_EVENT_LAYOUT.pack(millis, event_id.binary)).decode().rstrip("=")


def decode_event(cursor: str) -> tuple[datetime, ObjectId]:
    """The (at, _id) an events cursor names; BadCursor when it is not one."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        millis, binary = _EVENT_LAYOUT.unpack(raw)
        return _EPOCH + timedelta(milliseconds=millis), ObjectId(binary)
    except (binascii.Error, ValueError, struct.error, OverflowError, OSError):
        raise BadCursor() from None
