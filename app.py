"""The Book Library API: application factory, configuration, error handlers and routes."""
from __future__ import annotations

import copy
import importlib.util
import logging
import os
import re
import secrets
import tempfile
import time
import uuid
from typing import Union

import orjson

from dotenv import load_dotenv
from flask import Blueprint, Flask, current_app, g, jsonify, request, send_from_directory, url_for
from flask.json.provider import DefaultJSONProvider
from flask.sessions import SessionInterface
from flask_cors import CORS
from pymongo.errors import ConnectionFailure, DuplicateKeyError, ExecutionTimeout
from spectree import Response as SpecResponse
from spectree import SecurityScheme, SecuritySchemeData, SpecTree
from werkzeug.exceptions import (
    BadRequest,
    Conflict,
    Forbidden,
    HTTPException,
    InternalServerError,
    NotFound,
    ServiceUnavailable,
    TooManyRequests,
    Unauthorized,
    UnsupportedMediaType,
)
from werkzeug.middleware.proxy_fix import ProxyFix

import body_limit
import log_redaction
import models
import save_image
import validate
from auth_middleware import (
    MFA_TICKET_ATTEMPTS,
    MFA_TICKET_SECONDS,
    client_info,
    create_mfa_ticket,
    decrypt_totp_secret,
    encrypt_totp_secret,
    new_recovery_codes,
    new_totp_enrollment,
    rate_limit,
    read_mfa_ticket,
    start_session,
    token_required,
    token_response,
    totp_step,
)
from models import Books, Events, LoginThrottle, MfaTickets, Sessions, User, mfa_enabled, parse_object_id

log = logging.getLogger(__name__)

COVER_MAX_AGE = 365 * 86400
# Headers a browser app may read from responses (CORS).
EXPOSED_HEADERS = ["WWW-Authenticate", "Retry-After", "Link", "X-Total-Count", "X-Request-ID"]
DEV_CORS_ORIGINS = (
    "http://localhost:3000,http://127.0.0.1:3000,http://localhost:5173,http://127.0.0.1:5173,"
    "http://localhost:8080,http://127.0.0.1:8080"
)
JSON_CSP = "default-src 'none'; frame-ancestors 'none'"
DOCS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'"
)

TUTORIAL_SECRET = "this is a secret"
MIN_SECRET_BYTES = 32

DEFAULTS = {
    "APP_ENV": "development",
    "DATABASE_URL": "mongodb://127.0.0.1:27017/book_library",
    "DATABASE_TIMEOUT_MS": 2000,
    "DATABASE_SOCKET_TIMEOUT_MS": 10000,
    "DATABASE_POOL_SIZE": 20,
    "ACCESS_TOKEN_EXPIRES_SECONDS": 15 * 60,
    "REFRESH_TOKEN_EXPIRES_SECONDS": 30 * 86400,
    "REFRESH_TOKEN_COOKIE": False,
    "JWT_ISSUER": "book-library",
    "JWT_AUDIENCE": "book-library-api",
    # OWASP Password Storage Cheat Sheet: Argon2id, m=19 MiB, t=2, p=1.
    "PASSWORD_HASH_TIME_COST": 2,
    "PASSWORD_HASH_MEMORY_KIB": 19 * 1024,
    "PASSWORD_HASH_PARALLELISM": 1,
    "RATELIMIT_ENABLED": True,
    "RATELIMIT_STORAGE_URI": "",  # empty: the app's own MongoDB
    "LOGIN_RATE_LIMIT": "20 per minute",
    "LOGIN_ACCOUNT_RATE_LIMIT": "10 per minute",
    "SIGNUP_RATE_LIMIT": "10 per hour",
    "REFRESH_RATE_LIMIT": "60 per minute",
    "REFRESH_ACCOUNT_RATE_LIMIT": "30 per minute",
    "PASSWORD_RATE_LIMIT": "10 per hour",
    "PASSWORD_ACCOUNT_RATE_LIMIT": "5 per 15 minutes",
    "LOGIN_LOCKOUT_THRESHOLD": 5,
    "LOGIN_LOCKOUT_SECONDS": 60,
    "LOGIN_LOCKOUT_MAX_SECONDS": 15 * 60,
    "AUDIT_RETENTION_DAYS": 90,
    "MAX_UPLOAD_BYTES": 5 * 1024 * 1024,
    "MAX_IMAGE_PIXELS": 50_000_000,
    # Full-size pixel buffers one cover may need while it is shrunk (see save_image.decode_cost).
    "MAX_IMAGE_DECODE_BYTES": 96 * 1024 * 1024,
    "UPLOAD_FOLDER": "",  # empty: static/images/books beside this file
    "TRUSTED_PROXIES": 0,
    "REQUEST_LOG": True,  # one JSON line per request on standard error
    "MFA_ENCRYPTION_KEY": "",  # empty: derived from SECRET_KEY
    "CORS_ORIGINS": "",  # comma-separated; empty: none in production, localhost ports in development
}


def _typed(key: str, value):
    """Environment strings become the type of the key's default."""
    default = DEFAULTS.get(key)
    if isinstance(default, bool) and isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    if isinstance(default, int) and not isinstance(default, bool):
        return int(value)
    return value


def load_config(app: Flask, overrides: dict | None) -> None:
    """Defaults, then environment (and .env), then the dict passed to create_app."""
    load_dotenv(os.path.join(app.root_path, ".env"))
    app.config.update(DEFAULTS)
    for key in list(DEFAULTS) + ["SECRET_KEY"]:
        if os.environ.get(key):  # an empty line in .env means "use the default"
            app.config[key] = os.environ[key]
    app.config.update(overrides or {})
    for key in DEFAULTS:
        app.config[key] = _typed(key, app.config[key])
    # Relative to the project folder, whatever the working directory.
    app.config["UPLOAD_FOLDER"] = os.path.join(
        app.root_path, app.config["UPLOAD_FOLDER"] or os.path.join("static", "images", "books")
    )
    app.config["SECRET_KEY"] = _secret_key(app)


def _secret_key(app: Flask) -> str:
    key = app.config.get("SECRET_KEY") or ""
    production = app.config["APP_ENV"] == "production"
    if not key:
        if production:
            raise RuntimeError("SECRET_KEY must be set in production.")
        key = _instance_secret(app)
    if key == TUTORIAL_SECRET:
        raise RuntimeError("SECRET_KEY is the tutorial's published default; set a random one.")
    if len(key.encode()) < MIN_SECRET_BYTES:
        raise RuntimeError(f"SECRET_KEY must be at least {MIN_SECRET_BYTES} bytes.")
    return key


def _instance_secret(app: Flask) -> str:
    """A development key generated once and kept, so tokens survive restarts."""
    path = os.path.join(app.instance_path, "secret_key")
    if not os.path.exists(path):
        os.makedirs(app.instance_path, exist_ok=True)
        # Written aside, then linked into place: of several workers starting at once,
        # exactly one key wins and nobody reads a half-written file.
        fd, tmp = tempfile.mkstemp(dir=app.instance_path)  # mode 0600
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(secrets.token_urlsafe(48))
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
    with open(path, encoding="utf-8") as handle:
        return handle.read().strip()


class OrjsonProvider(DefaultJSONProvider):
    """orjson for request and response bodies: several times faster than the json module."""

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


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line, so logs can be searched by field."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return log_redaction.redact(orjson.dumps(entry, default=str).decode())


JsonLogFormatter.converter = time.gmtime


def _configure_logging() -> None:
    """JSON lines on standard error for the app's loggers (once per process)."""
    for name in ("app", "models", "auth_middleware", "book_library.requests"):
        logger = logging.getLogger(name)
        if not logger.handlers:
            handler = logging.StreamHandler()
            handler.setFormatter(JsonLogFormatter())
            logger.addHandler(handler)
            logger.setLevel(logging.INFO)
            logger.propagate = False
    log_redaction.install()  # the root logger's handlers and the last resort


_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
request_log = logging.getLogger("book_library.requests")


def register_request_logging(app: Flask) -> None:
    """An X-Request-ID on every response and one JSON log line per request.

    The line holds method, path (never the query string), status, duration, user id
    and request id: no headers, bodies, tokens or passwords.
    """

    @app.before_request
    def _start():
        incoming = request.headers.get("X-Request-ID", "")
        g.request_id = incoming if _REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex
        g.started = time.perf_counter()

    @app.after_request
    def _finish(response):
        request_id = g.get("request_id") or uuid.uuid4().hex
        response.headers["X-Request-ID"] = request_id
        if app.config["REQUEST_LOG"]:
            user_id = g.get("user_id")
            request_log.info(
                "request",
                extra={
                    "fields": {
                        "method": request.method,
                        "path": request.path,
                        "status": response.status_code,
                        "duration_ms": round((time.perf_counter() - g.get("started", time.perf_counter())) * 1000, 2),
                        "user_id": str(user_id) if user_id else None,
                        "request_id": request_id,
                        "ip": request.remote_addr,
                    }
                },
            )
        return response


def register_browser_policies(app: Flask) -> None:
    """CORS for the browser app, and the OWASP REST security headers on every response."""
    origins = app.config["CORS_ORIGINS"] or ("" if app.config["APP_ENV"] == "production" else DEV_CORS_ORIGINS)
    origins = [origin.strip() for origin in origins.split(",") if origin.strip()]
    if origins:
        CORS(
            app,
            origins=origins,
            expose_headers=EXPOSED_HEADERS,
            allow_headers=["Authorization", "Content-Type", "X-Request-ID", "X-CSRF-Token"],
            # Credentials only matter for the refresh cookie.
            supports_credentials=app.config["REFRESH_TOKEN_COOKIE"],
            max_age=600,
            always_send=False,  # no CORS headers for requests without an Origin
        )

    @app.after_request
    def _security_headers(response):
        headers = response.headers
        headers["X-Content-Type-Options"] = "nosniff"
        headers["X-Frame-Options"] = "DENY"
        headers.setdefault("Content-Security-Policy", DOCS_CSP if request.endpoint == "meta.docs" else JSON_CSP)
        headers.setdefault("Referrer-Policy", "no-referrer")
        if response.mimetype == "application/json":
            headers["Cache-Control"] = "no-store"
        if origins:
            # CORS headers depend on the Origin, allowed or not: shared caches must keep them apart.
            response.vary.add("Origin")
        if request.is_secure:
            headers["Strict-Transport-Security"] = "max-age=31536000; includeSubDomains"
        return response


def create_app(config: dict | None = None) -> Flask:
    config = config or {}
    # The instance folder holds the generated development key and the embedded database's files.
    instance_path = config.get("INSTANCE_PATH") or os.environ.get("INSTANCE_PATH")
    app = Flask(__name__, instance_path=os.path.abspath(instance_path) if instance_path else None)
    app.json = OrjsonProvider(app)  # keeps the envelope's order: message, data, error
    app.session_interface = NoSessions()  # a token API: no cookie session to open per request
    load_config(app, config)
    body_limit.install(app)
    _configure_logging()
    if app.config["TRUSTED_PROXIES"]:
        hops = app.config["TRUSTED_PROXIES"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)
    app.url_map.converters["objectid"] = models.ObjectIdConverter
    app.url_map.strict_slashes = False

    models.init_app(app)
    models.try_ensure_indexes(app)
    models.init_passwords(app)

    app.register_blueprint(meta)
    app.register_blueprint(users, url_prefix="/users")
    app.register_blueprint(books, url_prefix="/books")
    register_error_handlers(app)
    register_request_logging(app)
    register_browser_policies(app)

    @app.before_request
    def _indexes():
        # Only routes that use the database wait for it; / and /healthz answer regardless.
        if request.blueprint in ("users", "books"):
            models.ensure_indexes_once()

    @app.cli.command("init-db")
    def init_db():
        """Create the database indexes."""
        models.ensure_indexes(models.get_db(), app.config["AUDIT_RETENTION_DAYS"])
        print("Indexes created.")

    return app


# --- responses and errors -------------------------------------------------


def envelope(message: str, data=None, status: int = 200, error=None, **extra):
    body = {"message": message, "data": data, "error": error, **extra}
    return jsonify(body), status


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        # Start from the exception's own response so WWW-Authenticate, Allow and
        # Retry-After headers survive.
        response = exc.get_response()
        response.data = app.json.dumps(
            {"message": exc.description, "data": None, "error": exc.name}
        )
        response.content_type = "application/json"
        return response

    @app.errorhandler(validate.InvalidInput)
    def invalid_input(exc: validate.InvalidInput):
        return envelope("The request has invalid fields.", status=400, error=exc.errors)

    @app.errorhandler(ConnectionFailure)
    @app.errorhandler(ExecutionTimeout)
    def database_down(exc):
        log.error(
            "database unavailable",
            extra={"fields": {**_request_fields(), "error": type(exc).__name__}},
        )
        unavailable = ServiceUnavailable("The database is unavailable; try again shortly.")
        unavailable.retry_after = 5
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


def json_body() -> dict:
    """The request's JSON object; 415 for another content type, 400 when unparsable."""
    if not request.is_json:
        raise UnsupportedMediaType("Content-Type must be application/json.")
    try:
        return request.get_json()
    except (BadRequest, RecursionError):  # RecursionError: absurdly deep nesting
        raise validate.InvalidInput({"body": "Request body is not valid JSON."}) from None


# --- the OpenAPI document ---------------------------------------------------

api = SpecTree(
    "flask",
    title="Book Library API",
    version="1.0.0",
    description=(
        "A personal book library: sign up, log in for a JWT, manage your books and their covers. "
        "Every JSON response is an envelope `{message, data, error}`."
    ),
    mode="strict",  # only the routes described here
    annotations=False,
    validation_error_status=400,
    validation_error_model=validate.InvalidInputEnvelope,
    # Component names must match ^[A-Za-z0-9._-]+$: Envelope[UserOut] becomes Envelope_UserOut_.
    naming_strategy=lambda model: re.sub(r"[^A-Za-z0-9._-]", "_", model.__name__),
    nested_naming_strategy=lambda parent, child: child,
    security_schemes=[
        SecurityScheme(name="bearerAuth", data=SecuritySchemeData(type="http", scheme="bearer", bearer_format="JWT"))
    ],
)

# Failures any documented route can answer, besides its own.
COMMON_ERRORS = (500, 503)


def documented(*, tags, ok, json=None, form=None, query=None, auth=False, errors=(401,)):
    """Describe a route in the OpenAPI document from the same schemas validate.py checks
    requests with. Validation itself stays in the views (our envelope, our messages)."""
    codes = set(errors) | set(COMMON_ERRORS) | ({401} if auth else set())
    responses = {f"HTTP_{code}": validate.ErrorEnvelope for code in codes if code != 400}
    responses[f"HTTP_{ok[0]}"] = ok[1]
    return api.validate(
        json=json,
        form=form,
        query=query,
        resp=SpecResponse(**responses),
        tags=tags,
        security={"bearerAuth": []} if auth else {},
        skip_validation=True,
    )


def openapi_document() -> dict:
    """The document, built once per process from the routes and schemas."""
    document = current_app.extensions.get("openapi")
    if document is None:
        document = copy.deepcopy(api.spec)
        for item in document["paths"].values():
            for operation in item.values():
                for parameter in operation.get("parameters", []):
                    if parameter["in"] == "path" and parameter["schema"] is None:  # our objectid converter
                        parameter["schema"] = {"type": "string", "pattern": "^[0-9a-fA-F]{24}$"}
        current_app.extensions["openapi"] = document
    return document


# --- root and health --------------------------------------------------------

meta = Blueprint("meta", __name__)


@meta.get("/")
@documented(tags=["meta"], ok=(200, validate.Envelope[validate.Banner]), errors=())
def index():
    """A short banner."""
    return envelope("Book Library API", {"name": "book-library", "docs": "See README.md"})


@meta.get("/healthz")
@documented(tags=["meta"], ok=(200, validate.Envelope[validate.Health]), errors=(503,))
def healthz():
    """200 when the database answers a ping, 503 when it does not."""
    if models.ping():
        return envelope("ok", {"database": "up"})
    return envelope("The database is unavailable.", {"database": "down"}, 503, "Service Unavailable")


@meta.get("/static/images/books/<name>")
def cover(name: str):
    """Serve a stored thumbnail. Names are random and never reused, so caches may keep it."""
    response = send_from_directory(current_app.config["UPLOAD_FOLDER"], name, max_age=COVER_MAX_AGE)
    response.cache_control.immutable = True
    response.cache_control.public = True
    return response


@meta.get("/openapi.json")
def openapi():
    """The OpenAPI 3.1 document (import it into Postman, or read it at /docs)."""
    return current_app.json.response(openapi_document())


@meta.get("/docs")
def docs():
    """Interactive documentation (Swagger UI), served entirely by this app."""
    return send_from_directory(os.path.join(current_app.static_folder, "docs"), "index.html", max_age=0)


@meta.get("/docs/assets/<path:name>")
def docs_assets(name: str):
    """Swagger UI's files, shipped by the flask-openapi3-swagger package."""
    return send_from_directory(swagger_ui_folder(), name, max_age=86400)


def swagger_ui_folder() -> str:
    # Located without importing the package (it would import its Flask plugin).
    spec = importlib.util.find_spec("flask_openapi3_swagger")
    return os.path.join(spec.submodule_search_locations[0], "templates", "swagger")


# --- users -----------------------------------------------------------------

users = Blueprint("users", __name__)


def record(kind: str, user_id=None, **detail) -> None:
    Events.record(kind, user_id, *client_info(), **detail)


@users.post("/")
@documented(tags=["users"], ok=(201, validate.Envelope[validate.UserOut]), json=validate.SignUp, errors=(400, 409, 413, 415, 429))
def sign_up():
    """Create an account."""
    rate_limit("signup", SIGNUP_RATE_LIMIT=request.remote_addr)
    fields = validate.load(validate.SignUp, json_body())
    try:
        user = User.create(fields.name, fields.email, fields.password)
    except DuplicateKeyError:
        return envelope("An account with this email already exists.", status=409, error="Conflict")
    record("signup", user["_id"])
    return envelope("Account created.", User.to_json(user), 201)


@users.post("/login")
@documented(
    tags=["users"],
    ok=(200, validate.Envelope[Union[validate.LoginOut, validate.MfaChallengeOut]]),
    json=validate.Login,
    errors=(400, 401, 413, 415, 429),
)
def login():
    """Exchange email and password for an access token and a refresh token."""
    fields = validate.load(validate.Login, json_body())
    email = fields.email
    rate_limit("login", LOGIN_RATE_LIMIT=request.remote_addr, LOGIN_ACCOUNT_RATE_LIMIT=email)
    user = User.find_by_email(email)
    user_id = user["_id"] if user else None
    # Locked or not says nothing about whether the account exists: unknown emails
    # are counted and locked exactly like known ones.
    throttle = LoginThrottle(email, request.remote_addr)
    wait = throttle.locked_for()
    if wait:
        record("login_locked", user_id, email=email)
        raise TooManyRequests("Too many failed logins; try again later.", retry_after=wait)
    if not User.check_password(user, fields.password) or user["disabled"]:
        throttle.failed()
        record("login_failed", user_id, email=email)
        raise Unauthorized("Invalid email or password.")
    if mfa_enabled(user):
        # The failure count stays until the second step succeeds: wrong codes add to it.
        record("mfa_challenge", user_id)
        ticket = {"mfa_required": True, "mfa_ticket": create_mfa_ticket(user_id), "expires_in": MFA_TICKET_SECONDS}
        return envelope("Enter the code from your authenticator app.", ticket)
    throttle.succeeded()
    tokens = start_session(user)
    record("login", user_id)
    return _tokens_reply("Logged in.", {**User.to_json(user), **tokens})


@users.post("/login/mfa")
@documented(tags=["mfa"], ok=(200, validate.Envelope[validate.LoginOut]), json=validate.MfaLogin, errors=(400, 401, 413, 415, 429))
def login_mfa():
    """Finish a login with a second factor: the ticket from /users/login and a code."""
    fields = validate.load(validate.MfaLogin, json_body())
    if fields.code is None and fields.recovery_code is None:
        raise validate.InvalidInput({"code": "Send the code from your authenticator app, or a recovery_code."})
    rate_limit("login", LOGIN_RATE_LIMIT=request.remote_addr)
    claims = read_mfa_ticket(fields.mfa_ticket)
    user = User.find_by_id(parse_object_id(claims["sub"])) if claims else None
    if user is None or user["disabled"] or not mfa_enabled(user):
        raise Unauthorized("The sign-in ticket is invalid or has expired; log in again.")
    rate_limit("login", LOGIN_ACCOUNT_RATE_LIMIT=user["email"])
    if MfaTickets.usable(claims["jti"], MFA_TICKET_ATTEMPTS) is None:
        raise Unauthorized("The sign-in ticket was used, expired or had too many wrong codes; log in again.")
    throttle = _check_factor_lock(user)
    if not _second_factor_ok(user, fields):
        MfaTickets.failed_attempt(claims["jti"])
        throttle.failed()
        record("mfa_failed", user["_id"], step="login")
        raise Unauthorized("The code is not valid.")
    if not MfaTickets.spend(claims["jti"], MFA_TICKET_ATTEMPTS):
        raise Unauthorized("The sign-in ticket was used, expired or had too many wrong codes; log in again.")
    throttle.succeeded()
    tokens = start_session(user)
    record("login", user["_id"], mfa=True)
    return _tokens_reply("Logged in.", {**User.to_json(user), **tokens})


def _second_factor_ok(user: dict, fields) -> bool:
    """A current, unused authenticator code, or an unused recovery code, of this user."""
    if fields.code is not None:
        step = totp_step(decrypt_totp_secret(user["mfa"]["secret"]), fields.code)
        return step is not None and User.use_totp_step(user["_id"], step)
    if fields.recovery_code is not None and User.use_recovery_code(user["_id"], fields.recovery_code):
        record("mfa_recovery_code_used", user["_id"])
        return True
    return False


def _check_factor_lock(user: dict) -> LoginThrottle:
    """Wrong passwords and wrong codes share one lock-out per account and IP; 429 while it holds."""
    throttle = LoginThrottle(user["email"], request.remote_addr)
    wait = throttle.locked_for()
    if wait:
        record("login_locked", user["_id"], email=user["email"])
        raise TooManyRequests("Too many failed logins; try again later.", retry_after=wait)
    return throttle


def _require_second_factor(user: dict, fields, action: str) -> None:
    """Sensitive actions need the second factor too, when the account has one. Wrong codes
    count towards the lock-out, so a stolen access token cannot guess codes for ever."""
    if not mfa_enabled(user):
        return
    throttle = _check_factor_lock(user)
    if not _second_factor_ok(user, fields):
        if fields.code is not None or fields.recovery_code is not None:
            throttle.failed()
        record("mfa_failed", user["_id"], step=action)
        raise validate.InvalidInput({"code": "A current authenticator code or an unused recovery code is required."})


def _user_with_mfa(current_user: dict) -> dict:
    """The caller's record, or 409 when two-factor authentication is off."""
    if not mfa_enabled(current_user):
        raise Conflict("Two-factor authentication is not on.")
    return current_user


@users.post("/mfa/totp")
@documented(tags=["mfa"], ok=(201, validate.Envelope[validate.MfaEnrollmentOut]), auth=True, errors=(409,))
@token_required
def start_mfa(current_user):
    """Start enrolling an authenticator app; nothing is active until a code is verified."""
    if mfa_enabled(current_user):
        return envelope("Two-factor authentication is already on.", status=409, error="Conflict")
    enrollment = new_totp_enrollment(current_user["email"])
    User.start_mfa(current_user["_id"], encrypt_totp_secret(enrollment["secret"]))
    record("mfa_enrollment_started", current_user["_id"])
    return envelope("Scan the QR code, then verify a code to turn it on.", enrollment, 201)


@users.post("/mfa/totp/verify")
@documented(tags=["mfa"], ok=(200, validate.Envelope[validate.RecoveryCodesOut]), json=validate.MfaCode, auth=True, errors=(400, 409, 413, 415))
@token_required
def verify_mfa(current_user):
    """Turn the second factor on with a current code; returns recovery codes, once."""
    fields = validate.load(validate.MfaCode, json_body())
    pending = (current_user.get("mfa") or {}).get("pending")
    if mfa_enabled(current_user):
        return envelope("Two-factor authentication is already on.", status=409, error="Conflict")
    if not pending:
        return envelope("Start enrolment with POST /users/mfa/totp first.", status=409, error="Conflict")
    step = totp_step(decrypt_totp_secret(pending), fields.code)
    if step is None:
        record("mfa_failed", current_user["_id"], step="enrolment")
        raise validate.InvalidInput({"code": "The code is not valid."})
    codes = new_recovery_codes()
    if not User.activate_mfa(current_user["_id"], pending, step, codes):
        return envelope("Start enrolment with POST /users/mfa/totp first.", status=409, error="Conflict")
    record("mfa_enabled", current_user["_id"])
    return envelope("Two-factor authentication is on. Keep these recovery codes safe.", {"recovery_codes": codes})


@users.delete("/mfa/totp")
@documented(tags=["mfa"], ok=(204, None), json=validate.MfaDisable, auth=True, errors=(400, 409, 413, 415))
@token_required
def disable_mfa(current_user):
    """Turn the second factor off: needs the password and a code (or a recovery code)."""
    fields = validate.load(validate.MfaDisable, json_body())
    user = _user_with_mfa(current_user)
    throttle = _check_factor_lock(user)
    if not User.check_password(user, fields.password):
        throttle.failed()  # a stolen token must not become a password oracle
        record("mfa_failed", user["_id"], step="disable")
        raise validate.InvalidInput({"password": "Password is incorrect."})
    _require_second_factor(user, fields, "disable")
    User.disable_mfa(user["_id"])
    record("mfa_disabled", user["_id"])
    return "", 204


@users.post("/mfa/recovery-codes")
@documented(tags=["mfa"], ok=(200, validate.Envelope[validate.RecoveryCodesOut]), json=validate.MfaFactor, auth=True, errors=(400, 409, 413, 415))
@token_required
def replace_recovery_codes(current_user):
    """A new set of recovery codes; the old set stops working. Needs a code."""
    fields = validate.load(validate.MfaFactor, json_body())
    user = _user_with_mfa(current_user)
    _require_second_factor(user, fields, "recovery_codes")
    codes = new_recovery_codes()
    User.replace_recovery_codes(user["_id"], codes)
    record("mfa_recovery_codes_replaced", user["_id"])
    return envelope("New recovery codes; the old ones no longer work.", {"recovery_codes": codes})


def _tokens_reply(message: str, data: dict):
    """JSON with the tokens; with cookie mode on, the refresh token goes in a cookie instead."""
    if not current_app.config["REFRESH_TOKEN_COOKIE"]:
        return envelope(message, data)
    refresh_token = data.pop("refresh_token")
    response, status = envelope(message, data)
    _set_refresh_cookies(response, refresh_token)
    return response, status


REFRESH_COOKIE, CSRF_COOKIE, CSRF_HEADER = "refresh_token", "csrf_token", "X-CSRF-Token"


def _set_refresh_cookies(response, refresh_token: str) -> None:
    """HttpOnly refresh token for the refresh and logout endpoints only, and a readable
    CSRF token that the browser app echoes in a header (double-submit)."""
    max_age = current_app.config["REFRESH_TOKEN_EXPIRES_SECONDS"]
    common = {"max_age": max_age, "secure": True, "samesite": "Strict"}
    response.set_cookie(REFRESH_COOKIE, refresh_token, httponly=True, path="/users", **common)
    response.set_cookie(CSRF_COOKIE, secrets.token_urlsafe(32), httponly=False, path="/", **common)


def _clear_refresh_cookies(response) -> None:
    if current_app.config["REFRESH_TOKEN_COOKIE"]:
        response.delete_cookie(REFRESH_COOKIE, path="/users", secure=True, samesite="Strict")
        response.delete_cookie(CSRF_COOKIE, path="/", secure=True, samesite="Strict")


def _presented_refresh_token() -> str:
    """The refresh token from the JSON body, or from the cookie with a matching CSRF header."""
    if request.is_json or not current_app.config["REFRESH_TOKEN_COOKIE"]:
        return validate.load(validate.RefreshRequest, json_body()).refresh_token
    cookie = request.cookies.get(REFRESH_COOKIE)
    if not cookie:
        raise Unauthorized("Refresh token is missing.")
    csrf_cookie = request.cookies.get(CSRF_COOKIE, "")
    csrf_header = request.headers.get(CSRF_HEADER, "")
    if not csrf_cookie or not secrets.compare_digest(csrf_cookie, csrf_header):
        raise Forbidden(f"The {CSRF_HEADER} header must match the {CSRF_COOKIE} cookie.")
    return cookie


@users.post("/token/refresh")
@documented(tags=["sessions"], ok=(200, validate.Envelope[validate.TokensOut]), json=validate.RefreshRequest, errors=(400, 401, 403, 413, 415, 429))
def refresh():
    """Exchange a refresh token for new tokens; the old refresh token stops working."""
    rate_limit("refresh", REFRESH_RATE_LIMIT=request.remote_addr)
    outcome, session = Sessions.check(_presented_refresh_token())
    if outcome == "invalid":
        raise Unauthorized("Refresh token is invalid or expired.")
    user_id = session["user_id"]
    # Counted per account only once the token is known to be genuine, so nobody can
    # use up another account's allowance with forged tokens.
    rate_limit("refresh", REFRESH_ACCOUNT_RATE_LIMIT=user_id)
    new_token = Sessions.rotate(session, *client_info()) if outcome == "ok" else None
    if new_token is None:
        Sessions.revoke(user_id, session["_id"], reason="refresh_token_reused")
        record("refresh_token_reused", user_id, session_id=str(session["_id"]))
        raise Unauthorized("Refresh token was already used; the session has been ended.")
    if User.get_for_session(user_id, session["_id"]) is None:
        raise Unauthorized("Refresh token is invalid or expired.")
    record("refresh", user_id, session_id=str(session["_id"]))
    return _tokens_reply("Tokens refreshed.", token_response(user_id, session, new_token))


@users.post("/logout")
@documented(tags=["sessions"], ok=(204, None), auth=True)
@token_required
def logout(current_user):
    """End the current session: its refresh token and access tokens stop working now."""
    Sessions.revoke(current_user["_id"], g.session_id, reason="logout")
    record("logout", current_user["_id"], session_id=str(g.session_id))
    response = current_app.make_response(("", 204))
    _clear_refresh_cookies(response)
    return response


@users.post("/logout-all")
@documented(tags=["sessions"], ok=(204, None), auth=True)
@token_required
def logout_all(current_user):
    """End every session of the caller."""
    Sessions.revoke_all(current_user["_id"], reason="logout_all")
    record("logout_all", current_user["_id"])
    response = current_app.make_response(("", 204))
    _clear_refresh_cookies(response)
    return response


@users.get("/sessions")
@documented(tags=["sessions"], ok=(200, validate.Envelope[list[validate.SessionOut]]), auth=True)
@token_required
def list_sessions(current_user):
    """The caller's active sessions, most recently used first."""
    sessions = Sessions.active(current_user)
    return envelope("Sessions.", [Sessions.to_json(s, g.session_id) for s in sessions])


@users.delete("/sessions/<objectid:session_id>")
@documented(tags=["sessions"], ok=(204, None), auth=True, errors=(404,))
@token_required
def end_session(current_user, session_id):
    """End one of the caller's sessions."""
    live = session_id in User.session_ids(current_user)
    if not live or not Sessions.revoke(current_user["_id"], session_id, reason="ended_by_user"):
        raise NotFound("Session not found.")
    record("session_ended", current_user["_id"], session_id=str(session_id))
    return "", 204


@users.put("/password")
@documented(tags=["sessions"], ok=(200, validate.Envelope[validate.TokensOut]), json=validate.PasswordChange, auth=True, errors=(400, 413, 415, 429))
@token_required
def change_password(current_user):
    """Change the password; every other session ends, this one gets fresh tokens."""
    user_id = current_user["_id"]
    rate_limit("password", PASSWORD_RATE_LIMIT=request.remote_addr, PASSWORD_ACCOUNT_RATE_LIMIT=user_id)
    user_inputs = (current_user["name"], current_user["email"])
    fields = validate.load(validate.PasswordChange, json_body(), context={"user_inputs": user_inputs})
    if not User.check_password(current_user, fields.current_password):
        record("password_change_failed", user_id)
        raise validate.InvalidInput({"current_password": "Current password is incorrect."})
    _require_second_factor(current_user, fields, "password_change")
    User.set_password(user_id, fields.new_password)
    Sessions.revoke_all(user_id, reason="password_changed", keep=g.session_id)
    session, new_refresh_token = Sessions.reissue(g.session_id)
    record("password_changed", user_id)
    return _tokens_reply("Password changed.", token_response(user_id, session, new_refresh_token))


@users.get("/events")
@documented(tags=["users"], ok=(200, validate.Envelope[list[validate.EventOut]]), query=validate.EventsQuery, auth=True, errors=(400,))
@token_required
def list_events(current_user):
    """The caller's recent auth events, newest first."""
    query = validate.load(validate.EventsQuery, request.args.to_dict())
    events = Events.recent(current_user["_id"], query.limit)
    return envelope("Events.", [Events.to_json(e) for e in events])


@users.get("/")
@documented(tags=["users"], ok=(200, validate.Envelope[validate.UserOut]), auth=True)
@token_required
def get_current_user(current_user):
    """The caller's account."""
    return envelope("Current user.", User.to_json(current_user))


@users.put("/")
@documented(tags=["users"], ok=(200, validate.Envelope[validate.UserOut]), json=validate.UserUpdate, auth=True, errors=(400, 413, 415))
@token_required
def update_user(current_user):
    """Change the caller's name."""
    fields = validate.load(validate.UserUpdate, json_body())
    user = User.update_name(current_user["_id"], fields.name)
    return envelope("Account updated.", User.to_json(user or current_user))


@users.delete("/")
@documented(tags=["users"], ok=(204, None), json=validate.MfaFactor, auth=True, errors=(400, 413, 415))
@token_required
def disable_user(current_user):
    """Disable the caller's account: every session ends and it can no longer log in.
    With a second factor on, the JSON body must carry a `code` or `recovery_code`."""
    if mfa_enabled(current_user):
        body = json_body() if request.content_length or request.is_json else {}
        _require_second_factor(current_user, validate.load(validate.MfaFactor, body), "disable_account")
    User.disable(current_user["_id"])
    Sessions.revoke_all(current_user["_id"], reason="account_disabled")
    record("account_disabled", current_user["_id"])
    response = current_app.make_response(("", 204))
    _clear_refresh_cookies(response)
    return response


# --- books -----------------------------------------------------------------

books = Blueprint("books", __name__)


def _book_json(book: dict) -> dict:
    url = url_for("meta.cover", name=book["image"], _external=True)
    return Books.to_json(book, url)


FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")


def _form_or_json() -> dict:
    if request.is_json:
        return json_body()
    if request.mimetype in FORM_TYPES:
        return request.form.to_dict()
    raise UnsupportedMediaType(
        "Content-Type must be multipart/form-data, application/x-www-form-urlencoded or application/json."
    )


def _thumbnail_from_request():
    """(bytes, extension) of the uploaded cover, or None when none was sent."""
    upload = request.files.get("cover_image")
    # Postman sends an empty part when the file field is left blank: treat it as absent.
    if upload is None or upload.stream.read(1) == b"":
        return None
    upload.stream.seek(0)
    config = current_app.config
    return save_image.make_thumbnail(upload.stream, config["MAX_IMAGE_PIXELS"], config["MAX_IMAGE_DECODE_BYTES"])


def _book_input(load_fields, data, cover_required: bool):
    """Validate the fields and the cover together, so every bad field is reported at once."""
    errors, fields, thumb = {}, {}, None
    try:
        fields = load_fields(data)
    except validate.InvalidInput as exc:
        errors.update(exc.errors)
    try:
        thumb = _thumbnail_from_request()
    except save_image.ImageRejected as exc:
        errors["cover_image"] = str(exc)
    else:
        if thumb is None and cover_required:
            errors["cover_image"] = "A cover image file is required."
    if errors:
        raise validate.InvalidInput(errors)
    return fields, thumb


@books.post("/")
@documented(tags=["books"], ok=(201, validate.Envelope[validate.BookOut]), form=validate.BookCreateForm, auth=True, errors=(400, 409, 413, 415))
@token_required
def create_book(current_user):
    """Add a book with its cover to the caller's library."""
    if request.mimetype not in FORM_TYPES:
        raise UnsupportedMediaType("Content-Type must be multipart/form-data with a cover_image file.")
    fields, thumb = _book_input(validate.load_book_create, request.form.to_dict(), cover_required=True)
    folder = current_app.config["UPLOAD_FOLDER"]
    image = save_image.store(*thumb, folder)
    try:
        book = Books.create(current_user["_id"], fields, image)
    except BaseException as exc:
        save_image.remove(image, folder)  # a failed request leaves no orphan file
        if isinstance(exc, DuplicateKeyError):
            return envelope("You already have a book with this title.", status=409, error="Conflict")
        raise
    return envelope("Book created.", _book_json(book), 201)


@books.get("/")
@documented(tags=["books"], ok=(200, validate.BookPage), query=validate.BookQuery, auth=True, errors=(400,))
@token_required
def list_books(current_user):
    """The caller's books, newest first, a page at a time."""
    query = validate.load(validate.BookQuery, request.args.to_dict())
    items, total = Books.list(current_user["_id"], query.page, query.per_page, query.category)
    meta_info = {
        "page": query.page,
        "per_page": query.per_page,
        "total": total,
        "pages": (total + query.per_page - 1) // query.per_page,
    }
    response, status = envelope("Books.", [_book_json(book) for book in items], meta=meta_info)
    response.headers["X-Total-Count"] = str(total)
    links = _page_links(query, meta_info["pages"])
    if links:
        response.headers["Link"] = links
    return response, status


def _page_links(query, pages: int) -> str:
    """RFC 8288 links to the first, previous, next and last pages."""
    def url(page: int) -> str:
        args = {"page": page, "per_page": query.per_page}
        if query.category is not None:
            args["category"] = query.category
        return url_for("books.list_books", _external=True, **args)

    links = []
    if pages:
        links.append(f'<{url(1)}>; rel="first"')
        if query.page > 1:
            links.append(f'<{url(min(query.page - 1, pages))}>; rel="prev"')
        if query.page < pages:
            links.append(f'<{url(query.page + 1)}>; rel="next"')
        links.append(f'<{url(pages)}>; rel="last"')
    return ", ".join(links)


def _own_book(book_id, user_id) -> dict:
    """The caller's book or 404: another user's book looks exactly like a missing one."""
    book = Books.get(book_id, user_id)
    if book is None:
        raise NotFound("Book not found.")
    return book


@books.get("/<objectid:book_id>")
@documented(tags=["books"], ok=(200, validate.Envelope[validate.BookOut]), auth=True, errors=(404,))
@token_required
def get_book(current_user, book_id):
    """One of the caller's books."""
    return envelope("Book.", _book_json(_own_book(book_id, current_user["_id"])))


@books.put("/<objectid:book_id>")
@documented(tags=["books"], ok=(200, validate.Envelope[validate.BookOut]), json=validate.BookUpdate, form=validate.BookUpdateForm, auth=True, errors=(400, 404, 409, 413, 415))
@token_required
def update_book(current_user, book_id):
    """Change a book's fields and, with multipart, its cover."""
    fields, thumb = _book_input(validate.load_book_update, _form_or_json(), cover_required=False)
    if not fields and thumb is None:
        raise validate.InvalidInput(
            {"body": "Send at least one of title, description, category or cover_image."}
        )
    old = _own_book(book_id, current_user["_id"])
    folder = current_app.config["UPLOAD_FOLDER"]
    if thumb is not None:
        fields["image"] = save_image.store(*thumb, folder)
    try:
        book = Books.update(book_id, current_user["_id"], fields)
        if book is None:  # deleted between the read and the write
            raise NotFound("Book not found.")
    except BaseException as exc:
        save_image.remove(fields.get("image"), folder)
        if isinstance(exc, DuplicateKeyError):
            return envelope("You already have a book with this title.", status=409, error="Conflict")
        raise
    if "image" in fields:
        save_image.remove(old["image"], folder)
    return envelope("Book updated.", _book_json(book))


@books.delete("/<objectid:book_id>")
@documented(tags=["books"], ok=(204, None), auth=True, errors=(404,))
@token_required
def delete_book(current_user, book_id):
    """Delete a book and its cover."""
    book = Books.delete(book_id, current_user["_id"])
    if book is None:
        raise NotFound("Book not found.")
    save_image.remove(book["image"], current_app.config["UPLOAD_FOLDER"])
    return "", 204
