"""/users/sessions: the caller's live sessions, and ending one."""

from __future__ import annotations

from typing import Any

from bson import ObjectId
from flask import Blueprint, g
from werkzeug.exceptions import NotFound

from api.openapi import documented
from api.responses import Reply, envelope
from api.schemas import Envelope, SessionOut
from auth.audit import record
from auth.sessions import Sessions
from auth_middleware import token_required
from models import User

sessions = Blueprint("sessions", __name__)


@sessions.get("/sessions")
@documented(tags=["sessions"], ok=(200, Envelope[list[SessionOut]]), auth=True)
@token_required
def list_sessions(current_user: dict[str, Any]) -> Reply:
    """The caller's active sessions, most recently used first."""
    live = Sessions.active(current_user)
    return envelope("Sessions.", [SessionOut.of(session, g.session_id) for session in live])


@sessions.delete("/sessions/<objectid:session_id>")
@documented(tags=["sessions"], ok=(204, None), auth=True, errors=(404,), messages={404: "Session not found."})
@token_required
def end_session(current_user: dict[str, Any], session_id: ObjectId | None) -> tuple[str, int]:
    """End one of the caller's sessions."""
    live = session_id is not None and session_id in User.session_ids(current_user)
    if session_id is None or not live or not Sessions.revoke(current_user["_id"], session_id, reason="ended_by_user"):
        raise NotFound("Session not found.")
    record("session_ended", current_user["_id"], session_id=str(session_id))
    return "", 204
