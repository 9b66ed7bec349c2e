"""/static/images/books/<name>: the cover thumbnails, public by their random names."""

from __future__ import annotations

from flask import Blueprint, Response

from covers.storage import covers as cover_store

covers = Blueprint("covers", __name__)


@covers.get("/static/images/books/<name>")
def cover(name: str) -> Response:
    """Serve a stored thumbnail, from whichever storage holds it; its name never changes
    meaning, so caches may keep it for a year."""
    return cover_store().response(name)
