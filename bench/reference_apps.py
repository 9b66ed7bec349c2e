"""The two reference apps `make bench` measures our API against, on the same server settings.

- ceiling: a bare Flask route returning a constant JSON body. Nothing served by
  this gunicorn set-up can be faster.
- floor: a bare Flask route doing one `find_one({"_id": ObjectId})` on the users
  collection of the same database and returning the user as JSON. Any request
  that checks its user does at least this much work.

They import Flask and PyMongo only, never the app's modules.

    gunicorn --pythonpath bench 'reference_apps:create_ceiling_app()'
    DATABASE_URL=mongodb://.../book_library_bench gunicorn --pythonpath bench 'reference_apps:create_floor_app()'
"""

from __future__ import annotations

import os
from datetime import UTC

from bson import ObjectId
from bson.errors import InvalidId
from flask import Flask, abort, jsonify
from pymongo import MongoClient

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

    return app
