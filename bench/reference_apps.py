"""The two reference apps `make bench` measures our API against, on the same server settings.

- ceiling: a bare Flask route returning a constant JSON body. Nothing served by
  this gunicorn set-up can be faster.
- floor: a bare Flask route doing one `find_one({"_id": ObjectId})` on the users
  collection of the same database and returning the user as JSON. Any request
  that checks its user does at least this much work.
- same-queries floors (routes of the floor app under /same/): for each read route
  of the API, a bare route making exactly the database calls that route makes
  (filters, sorts, projections), so the API's own cost is the difference.

They import Flask and PyMongo only, never the app's modules.

    gunicorn --pythonpath bench 'reference_apps:create_ceiling_app()'
    DATABASE_URL=mongodb://.../book_library_bench gunicorn --pythonpath bench 'reference_apps:create_floor_app()'
"""

from __future__ import annotations

import os
from datetime import UTC

from bson import ObjectId
from bson.errors import InvalidId
from flask import Flask, abort, jsonify, request
from pymongo import MongoClient
from pymongo.database import Database

# The fields the API itself returns for a user (never the password hash).
USER_FIELDS = {"name": 1, "email": 1, "created_at": 1, "updated_at": 1}


def create_ceiling_app() -> Flask:
    app = Flask(__name__)

    @app.get("/")
    def constant():
        return jsonify({"message": "ok", "data": None, "error": None})

    return app


def create_floor_app() -> Flask:
    app = Flask(__name__)
    # One client per process, opened lazily after gunicorn forks (as the API does).
    client = MongoClient(
        os.environ["DATABASE_URL"],
        serverSelectionTimeoutMS=2000,
        connectTimeoutMS=2000,
        maxPoolSize=20,
        tz_aware=True,
        connect=False,
    )
    users = client.get_default_database()["users"]

    @app.get("/users/<user_id>")
    def one_lookup(user_id: str):
        try:
            oid = ObjectId(user_id)
        except InvalidId:
            abort(404)
        user = users.find_one({"_id": oid}, USER_FIELDS)
        if user is None:
            abort(404)
        data = {
            "id": str(user["_id"]),
            "name": user["name"],
            "email": user["email"],
            "created_at": user["created_at"].astimezone(UTC).isoformat(),
            "updated_at": user["updated_at"].astimezone(UTC).isoformat(),
        }
        return jsonify({"message": "ok", "data": data, "error": None})

    add_same_query_routes(app, client.get_default_database())
    return app


# --- same-queries floors: each read route's own database calls, and nothing else ---------
# The fields the API reads for a page of books (models.CURSOR_FIELDS).
PAGE_FIELDS = {
    "title": 1,
    "description": 1,
    "category": 1,
    "image": 1,
    "user_id": 1,
    "created_at": 1,
    "updated_at": 1,
    "seq": 1,
}


def book_json(book: dict) -> dict:
    return {
        "id": str(book["_id"]),
        "title": book["title"],
        "description": book.get("description"),
        "category": book.get("category"),
        "image": book.get("image"),
        "created_at": book["created_at"].astimezone(UTC).isoformat(),
        "updated_at": book["updated_at"].astimezone(UTC).isoformat(),
    }


def nth_position(top: int, gaps: list[int], n: int) -> int:
    """As workflows.book_list.nth_position: the n-th position below top that holds a book."""
    position = top - n + 1
    for gap in gaps:
        if gap < position:
            break
        position -= 1
    return position


def add_same_query_routes(app: Flask, db: Database) -> None:
    """Routes that make exactly the database calls the API's read routes make (the user for
    the revocation check, then what the route reads), with the same filters, sorts and
    projections, and answer JSON: the API's own cost is the difference."""
    users, books = db["users"], db["books"]

    def user_or_404(user_id: str) -> dict:
        try:
            user = users.find_one({"_id": ObjectId(user_id)})
        except InvalidId:
            user = None
        if user is None:
            abort(404)
        return user

    def window(user_id: ObjectId, below: int, width: int, limit: int = 0) -> list[dict]:
        query = {"user_id": user_id, "seq": {"$gte": max(below - width, 1), "$lt": below}}
        cursor = books.find(query, PAGE_FIELDS).sort("seq", -1)
        return list(cursor.limit(limit) if limit else cursor)

    @app.get("/same/users/<user_id>")
    def same_user(user_id: str):
        user = user_or_404(user_id)
        return jsonify({"message": "ok", "data": {"id": str(user["_id"]), "name": user["name"]}, "error": None})

    @app.get("/same/books/<user_id>/<book_id>")
    def same_book(user_id: str, book_id: str):
        user = user_or_404(user_id)
        book = books.find_one({"user_id": user["_id"], "_id": ObjectId(book_id)})
        if book is None:
            abort(404)
        return jsonify({"message": "ok", "data": book_json(book), "error": None})

    @app.get("/same/page/<user_id>")
    def same_page(user_id: str):
        user = user_or_404(user_id)
        page, per_page = int(request.args.get("page", 1)), int(request.args.get("per_page", 20))
        top, gaps = user["book_seq"], sorted(user.get("book_gaps", []), reverse=True)
        high = nth_position(top, gaps, (page - 1) * per_page + 1)
        low = max(nth_position(top, gaps, page * per_page), 1)
        items = window(user["_id"], high + 1, high - low + 1)
        meta = {"page": page, "per_page": per_page, "total": top - len(gaps)}
        return jsonify({"message": "ok", "data": [book_json(b) for b in items], "meta": meta, "error": None})

    @app.get("/same/cursor/<user_id>")
    def same_cursor(user_id: str):
        user = user_or_404(user_id)
        limit = int(request.args.get("limit", 20))
        below = int(request.args.get("below", user["book_seq"] + 1))
        items = window(user["_id"], below, limit + 1, limit + 1)
        meta = {"limit": limit, "next": items[limit - 1]["seq"] if len(items) > limit else None}
        return jsonify({"message": "ok", "data": [book_json(b) for b in items[:limit]], "meta": meta, "error": None})
