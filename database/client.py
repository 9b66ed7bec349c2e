"""The process's one MongoClient and its database, made at app creation and kept in
app.extensions; `get_db()` is how everything above reaches it."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from flask import Flask, current_app
from pymongo import MongoClient, uri_parser
from pymongo.database import Database
from pymongo.errors import ConnectionFailure

log = logging.getLogger(f"book_library.{__name__}")

DEFAULT_DATABASE = "book_library"
EXTENSION = "book_library.database"


@dataclass
class DatabaseState:
    client: MongoClient[dict[str, Any]] | None
    db: Database[dict[str, Any]] | None
    indexes_ready: bool = False


def init_app(app: Flask) -> None:
    """Create the process's MongoClient; with no DATABASE_URL (and no client handed in)
    there is none, and configured() says so."""
    client = app.config.get("MONGO_CLIENT")
    url = app.config["DATABASE_URL"]
    if client is None and not url:
        app.extensions[EXTENSION] = DatabaseState(None, None)
        return
    if client is None:
        timeout_ms = app.config["DATABASE_TIMEOUT_MS"]
        client = MongoClient(
            url,
            serverSelectionTimeoutMS=timeout_ms,
            connectTimeoutMS=timeout_ms,
            socketTimeoutMS=app.config["DATABASE_SOCKET_TIMEOUT_MS"],
            maxPoolSize=app.config["DATABASE_POOL_SIZE"],
            tz_aware=True,
            appname="book-library",
            connect=False,  # no I/O until the first query, so forking servers stay safe
        )
    # The URL's path names the database, also when a client is handed in (tests).
    name = (uri_parser.parse_uri(url)["database"] if url else None) or DEFAULT_DATABASE
    app.extensions[EXTENSION] = DatabaseState(client, client[name])


def state(app: Flask | None = None) -> DatabaseState:
    result: DatabaseState = (app or current_app).extensions[EXTENSION]
    return result


def get_db() -> Database[dict[str, Any]]:
    db = state().db
    if db is None:
        raise ConnectionFailure("no database is configured")
    return db


def configured(app: Flask | None = None) -> bool:
    """Whether the app has a database at all (DATABASE_URL set, or a client handed in)."""
    return state(app).client is not None


def ping() -> bool:
    client = state().client
    if client is None:
        return False
    try:
        client.admin.command("ping")
        return True
    except ConnectionFailure:
        return False
