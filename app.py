"""The Book Library API: the application factory, the JSON envelope for every error, and the
one place every blueprint is registered. Settings live in config.py.

The layers, each importing only those below it: the views (api/), then the services (auth/,
mail/, covers/, and workflows/ for what spans collections), then the models (models.py and
each service's own), then the database client (database/)."""

from __future__ import annotations

import logging
import os
from typing import Any, cast

import click
import orjson
from flask import Flask, Request, Response, g, jsonify, request
from flask.json.provider import DefaultJSONProvider
from flask.sessions import SessionInterface
from pymongo.errors import ConnectionFailure, ExecutionTimeout
from werkzeug.exceptions import HTTPException, InternalServerError, ServiceUnavailable
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.wrappers import Response as WerkzeugResponse

import validate
from api import body_limit, docs, policies
from api.books import books
from api.covers import covers
from api.docs import docs as docs_routes
from api.email import email
from api.login import login_routes
from api.meta import meta
from api.mfa import mfa
from api.passkeys import passkeys
from api.password import password
from api.sessions import sessions
from api.tokens import tokens
from api.users import users
from api.web_app import web_app
from auth import state as auth_state
from config import load_config
from covers import cli as covers_cli
from covers import storage as cover_storage
from database import client as database
from database.documents import ObjectIdConverter, ensure_indexes, ensure_indexes_once, try_ensure_indexes
from logs import json_lines
from mail import sender as mail_sender
from workflows import book_list

log = logging.getLogger(f"book_library.{__name__}")

# Routes that use the database: only they wait for the indexes, or answer 503 without one.
DATABASE_BLUEPRINTS = ("users", "login", "sessions", "password", "email", "mfa", "passkeys", "tokens", "books")
DATABASE_ENDPOINTS = ("meta.healthz",)
NO_DATABASE = (
    "No database is configured: start the API with `make run` or `make dev` (they start an "
    "embedded database), or set DATABASE_URL to a MongoDB URL."
)
DATABASE_RETRY_AFTER_SECONDS = 5


class OrjsonProvider(DefaultJSONProvider):
    """orjson for request and response bodies, for speed."""

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        return orjson.dumps(obj).decode()

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return orjson.loads(s)

    def response(self, *args: Any, **kwargs: Any) -> Response:
        obj = self._prepare_response_obj(args, kwargs)
        # Flask types the provider's app as its base class, whose responses take no body.
        app = cast(Flask, self._app)
        return app.response_class(orjson.dumps(obj), mimetype=self.mimetype)


class NoSessions(SessionInterface):
    """Flask's cookie session is never used here; skip opening and saving it."""

    def open_session(self, app: Flask, request: Request) -> None:
        return None  # Flask falls back to a null session

    def save_session(self, app: Flask, session: Any, response: Response) -> None:
        pass


def create_app(config: dict[str, Any] | None = None) -> Flask:
    config = config or {}
    # The instance folder holds the generated development key and the embedded database's files.
    instance_path = config.get("INSTANCE_PATH") or os.environ.get("INSTANCE_PATH")
    app = Flask(__name__, instance_path=os.path.abspath(instance_path) if instance_path else None)
    app.json = OrjsonProvider(app)  # keeps the envelope's order: message, data, error
    app.session_interface = NoSessions()  # a token API: no cookie session to open per request
    load_config(app, config)
    body_limit.install(app)
    json_lines.configure()
    # Inside ProxyFix, so that it sees the host a trusted proxy forwarded too.
    app.wsgi_app = policies.LowerCaseHost(app.wsgi_app)  # type: ignore[method-assign]
    if app.config["TRUSTED_PROXIES"]:
        hops = app.config["TRUSTED_PROXIES"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)  # type: ignore[method-assign]
    app.url_map.converters["objectid"] = ObjectIdConverter
    app.url_map.strict_slashes = False

    init_extensions(app)
    register_blueprints(app)
    register_error_handlers(app)
    json_lines.register_request_log(app)
    policies.register(app)
    register_database_guard(app)
    covers_cli.register(app)

    @app.cli.command("init-db")
    def init_db() -> None:
        """Create the database indexes."""
        if not database.configured():
            raise click.ClickException(NO_DATABASE)
        ensure_indexes()
        print("Indexes created.")

    @app.cli.command("repair-book-lists")
    def repair_book_lists() -> None:
        """Check every account's list positions against its books (after a crash)."""
        if not database.configured():
            raise click.ClickException(NO_DATABASE)
        print(f"Checked the book lists of {book_list.repair_all()} accounts.")

    return app


def init_extensions(app: Flask) -> None:
    """Every concern's state, made once here (each read through its own accessor)."""
    database.init_app(app)
    if not database.configured(app):
        log.warning(NO_DATABASE)
    elif app.config.get("INDEXES_READY"):  # built already, by whoever handed in the client (tests)
        database.state(app).indexes_ready = True
    else:
        with app.app_context():
            try_ensure_indexes()
    auth_state.init_app(app)
    cover_storage.init_app(app)
    mail_sender.init_app(app)
    docs.init_app(app)


def register_blueprints(app: Flask) -> None:
    """Every route of the API, by the module that holds it: the URL names the file."""
    app.register_blueprint(meta)
    app.register_blueprint(docs_routes)
    app.register_blueprint(users, url_prefix="/users")
    app.register_blueprint(login_routes, url_prefix="/users")
    app.register_blueprint(sessions, url_prefix="/users")
    app.register_blueprint(password, url_prefix="/users")
    app.register_blueprint(email, url_prefix="/users")
    app.register_blueprint(mfa, url_prefix="/users")
    app.register_blueprint(passkeys, url_prefix="/users")
    app.register_blueprint(tokens, url_prefix="/users")
    app.register_blueprint(books, url_prefix="/books")
    app.register_blueprint(covers)
    app.register_blueprint(web_app)


def register_database_guard(app: Flask) -> None:
    @app.before_request
    def _database() -> None:
        # Only routes that use the database need it; /, /docs and /openapi.json answer regardless.
        if request.blueprint not in DATABASE_BLUEPRINTS and request.endpoint not in DATABASE_ENDPOINTS:
            return
        if not database.configured():
            raise ServiceUnavailable(NO_DATABASE)
        if request.blueprint in DATABASE_BLUEPRINTS:
            ensure_indexes_once()


# --- errors: one JSON envelope for every failure ---------------------------------------


def _failure(response: WerkzeugResponse, message: str, error: Any) -> None:
    response.data = orjson.dumps({"message": message, "data": None, "error": error})
    response.content_type = "application/json"


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> WerkzeugResponse:
        # Start from the exception's own response so WWW-Authenticate, Allow and
        # Retry-After headers survive.
        response = exc.get_response()
        _failure(response, exc.description or "", exc.name)
        return response

    @app.errorhandler(validate.InvalidInput)
    def invalid_input(exc: validate.InvalidInput) -> Response:
        response = jsonify({"message": exc.message, "data": None, "error": exc.errors})
        response.status_code = 400
        return response

    @app.errorhandler(ConnectionFailure)
    @app.errorhandler(ExecutionTimeout)
    def database_down(exc: Exception) -> WerkzeugResponse:
        log.error("database unavailable", extra={"fields": {**_request_fields(), "error": type(exc).__name__}})
        unavailable = ServiceUnavailable("The database is unavailable; try again shortly.")
        unavailable.retry_after = DATABASE_RETRY_AFTER_SECONDS
        return http_error(unavailable)

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> WerkzeugResponse:
        log.exception("unhandled error", extra={"fields": _request_fields()})
        return http_error(InternalServerError("An unexpected error occurred."))


def _request_fields() -> dict[str, Any]:
    """What an error log line says about its request: never headers or bodies."""
    user_id = g.get("user_id")
    return {
        "method": request.method,
        "path": request.path,
        "request_id": g.get("request_id"),
        "user_id": str(user_id) if user_id else None,
    }
