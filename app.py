"""The Book Library API: the application factory, the JSON envelope for every error, browser
policies, and the one place every blueprint is registered. Settings live in config.py."""

from __future__ import annotations

import logging
import os

import click
import orjson
from flask import Flask, g, jsonify, request
from flask.json.provider import DefaultJSONProvider
from flask.sessions import SessionInterface
from flask_cors import CORS
from pymongo.errors import ConnectionFailure, ExecutionTimeout
from werkzeug.exceptions import HTTPException, InternalServerError, ServiceUnavailable
from werkzeug.middleware.proxy_fix import ProxyFix

import app_logging
import body_limit
import cover_storage
import mail
import models
import validate
from account_email import account_email
from api_docs import docs
from books import books, covers
from config import load_config
from meta import meta
from two_factor import two_factor
from users import users
from web_app import web_app

log = logging.getLogger(__name__)

# Headers a browser app may read from responses (CORS).
EXPOSED_HEADERS = ["WWW-Authenticate", "Retry-After", "Link", "X-Total-Count", "X-Request-ID"]
CORS_PREFLIGHT_MAX_AGE = 600
HSTS = "max-age=31536000; includeSubDomains"
JSON_CSP = "default-src 'none'; frame-ancestors 'none'"
DOCS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'"
)
# Routes that use the database: only they wait for the indexes, or answer 503 without one.
DATABASE_BLUEPRINTS = ("users", "two_factor", "account_email", "books")
DATABASE_ENDPOINTS = ("meta.healthz",)
NO_DATABASE = (
    "No database is configured: start the API with `make run` or `make dev` (they start an "
    "embedded database), or set DATABASE_URL to a MongoDB URL."
)
DATABASE_RETRY_AFTER_SECONDS = 5


class OrjsonProvider(DefaultJSONProvider):
    """orjson for request and response bodies, for speed."""

    def dumps(self, obj, **kwargs) -> str:
        return orjson.dumps(obj).decode()

    def loads(self, s, **kwargs):
        return orjson.loads(s)

    def response(self, *args, **kwargs):
        obj = self._prepare_response_obj(args, kwargs)
        return self._app.response_class(orjson.dumps(obj), mimetype=self.mimetype)


class NoSessions(SessionInterface):
    """Flask's cookie session is never used here; skip opening and saving it."""

    def open_session(self, app, request):
        return None  # Flask falls back to a null session

    def save_session(self, app, session, response):
        pass


def register_browser_policies(app: Flask) -> None:
    """CORS for the browser app, and the OWASP REST security headers on every response."""
    origins = app.config["CORS_ORIGINS"]

    # Registered before flask-cors, so that it runs after it (Flask runs these in reverse).
    @app.after_request
    def _security_headers(response):
        headers = response.headers
        headers["X-Content-Type-Options"] = "nosniff"
        headers["X-Frame-Options"] = "DENY"
        headers.setdefault("Content-Security-Policy", DOCS_CSP if request.endpoint == "docs.swagger_ui" else JSON_CSP)
        headers.setdefault("Referrer-Policy", "no-referrer")
        if response.mimetype == "application/json":
            headers["Cache-Control"] = "no-store"
        if origins:
            # CORS headers depend on the Origin, allowed or not: shared caches must keep them apart.
            response.vary.add("Origin")
        if "Access-Control-Allow-Methods" in headers:
            # flask-cors offers every method it knows (PATCH too); a preflight names the URL's own.
            headers["Access-Control-Allow-Methods"] = headers.get("Allow", "")
        if request.is_secure:
            headers["Strict-Transport-Security"] = HSTS
        return response

    if origins:
        CORS(
            app,
            origins=origins,
            expose_headers=EXPOSED_HEADERS,
            allow_headers=["Authorization", "Content-Type", "X-Request-ID", "X-CSRF-Token"],
            # Credentials only matter for the refresh cookie.
            supports_credentials=app.config["REFRESH_TOKEN_COOKIE"],
            max_age=CORS_PREFLIGHT_MAX_AGE,
            always_send=False,  # no CORS headers for requests without an Origin
        )


def create_app(config: dict | None = None) -> Flask:
    config = config or {}
    # The instance folder holds the generated development key and the embedded database's files.
    instance_path = config.get("INSTANCE_PATH") or os.environ.get("INSTANCE_PATH")
    app = Flask(__name__, instance_path=os.path.abspath(instance_path) if instance_path else None)
    app.json = OrjsonProvider(app)  # keeps the envelope's order: message, data, error
    app.session_interface = NoSessions()  # a token API: no cookie session to open per request
    load_config(app, config)
    body_limit.install(app)
    app_logging.configure()
    if app.config["TRUSTED_PROXIES"]:
        hops = app.config["TRUSTED_PROXIES"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)
    app.url_map.converters["objectid"] = models.ObjectIdConverter
    app.url_map.strict_slashes = False

    models.init_app(app)
    if not models.configured(app):
        log.warning(NO_DATABASE)
    models.try_ensure_indexes(app)
    models.init_passwords(app)
    cover_storage.init_app(app)
    mail.init_app(app)

    register_blueprints(app)
    register_error_handlers(app)
    app_logging.register_request_log(app)
    register_browser_policies(app)

    @app.before_request
    def _database():
        # Only routes that use the database need it; /, /docs and /openapi.json answer regardless.
        if request.blueprint not in DATABASE_BLUEPRINTS and request.endpoint not in DATABASE_ENDPOINTS:
            return
        if not models.configured():
            raise ServiceUnavailable(NO_DATABASE)
        if request.blueprint in DATABASE_BLUEPRINTS:
            models.ensure_indexes_once()

    @app.cli.command("init-db")
    def init_db():
        """Create the database indexes."""
        if not models.configured():
            raise click.ClickException(NO_DATABASE)
        models.ensure_indexes(models.get_db(), app.config["AUDIT_RETENTION_DAYS"])
        print("Indexes created.")

    return app


def register_blueprints(app: Flask) -> None:
    """Every route of the API, by the module that holds it."""
    app.register_blueprint(meta)
    app.register_blueprint(docs)
    app.register_blueprint(users, url_prefix="/users")
    app.register_blueprint(two_factor, url_prefix="/users")
    app.register_blueprint(account_email, url_prefix="/users")
    app.register_blueprint(books, url_prefix="/books")
    app.register_blueprint(covers)
    app.register_blueprint(web_app)


# --- errors: one JSON envelope for every failure ---------------------------------------


def _failure(response, message: str, error) -> None:
    response.data = orjson.dumps({"message": message, "data": None, "error": error})
    response.content_type = "application/json"


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        # Start from the exception's own response so WWW-Authenticate, Allow and
        # Retry-After headers survive.
        response = exc.get_response()
        _failure(response, exc.description, exc.name)
        return response

    @app.errorhandler(validate.InvalidInput)
    def invalid_input(exc: validate.InvalidInput):
        response = jsonify({"message": exc.message, "data": None, "error": exc.errors})
        response.status_code = 400
        return response

    @app.errorhandler(ConnectionFailure)
    @app.errorhandler(ExecutionTimeout)
    def database_down(exc):
        log.error("database unavailable", extra={"fields": {**_request_fields(), "error": type(exc).__name__}})
        unavailable = ServiceUnavailable("The database is unavailable; try again shortly.")
        unavailable.retry_after = DATABASE_RETRY_AFTER_SECONDS
        return http_error(unavailable)

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        log.exception("unhandled error", extra={"fields": _request_fields()})
        return http_error(InternalServerError("An unexpected error occurred."))


def _request_fields() -> dict:
    """What an error log line says about its request: never headers or bodies."""
    user_id = g.get("user_id")
    return {
        "method": request.method,
        "path": request.path,
        "request_id": g.get("request_id"),
        "user_id": str(user_id) if user_id else None,
    }
