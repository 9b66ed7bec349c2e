"""The Book Library API: application factory, configuration, error handlers and routes."""
from __future__ import annotations

import logging
import os
import secrets
import tempfile

from dotenv import load_dotenv
from flask import Blueprint, Flask, current_app, jsonify, request, send_from_directory, url_for
from pymongo.errors import ConnectionFailure, DuplicateKeyError, ExecutionTimeout
from werkzeug.exceptions import (
    BadRequest,
    HTTPException,
    InternalServerError,
    NotFound,
    ServiceUnavailable,
    UnsupportedMediaType,
)
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.security import generate_password_hash

import models
import save_image
import validate
from auth_middleware import create_token, token_required
from models import Books, User

log = logging.getLogger(__name__)

TUTORIAL_SECRET = "this is a secret"
MIN_SECRET_BYTES = 32

DEFAULTS = {
    "APP_ENV": "development",
    "DATABASE_URL": "mongodb://127.0.0.1:27017/book_library",
    "DATABASE_TIMEOUT_MS": 2000,
    "DATABASE_SOCKET_TIMEOUT_MS": 10000,
    "DATABASE_POOL_SIZE": 20,
    "ACCESS_TOKEN_EXPIRES_SECONDS": 24 * 3600,
    "MAX_UPLOAD_BYTES": 5 * 1024 * 1024,
    "MAX_IMAGE_PIXELS": 50_000_000,
    "PASSWORD_HASH_METHOD": "scrypt",
    "UPLOAD_FOLDER": None,  # defaults to static/images/books beside this file
    "TRUSTED_PROXIES": 0,
}


def load_config(app: Flask, overrides: dict | None) -> None:
    """Defaults, then environment (and .env), then the dict passed to create_app."""
    load_dotenv(os.path.join(app.root_path, ".env"))
    app.config.update(DEFAULTS)
    for key in list(DEFAULTS) + ["SECRET_KEY"]:
        if os.environ.get(key):  # an empty line in .env means "use the default"
            app.config[key] = os.environ[key]
    app.config.update(overrides or {})
    for key in (
        "DATABASE_TIMEOUT_MS",
        "DATABASE_SOCKET_TIMEOUT_MS",
        "DATABASE_POOL_SIZE",
        "ACCESS_TOKEN_EXPIRES_SECONDS",
        "MAX_UPLOAD_BYTES",
        "MAX_IMAGE_PIXELS",
        "TRUSTED_PROXIES",
    ):
        app.config[key] = int(app.config[key])
    app.config["MAX_CONTENT_LENGTH"] = app.config["MAX_UPLOAD_BYTES"]
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


def create_app(config: dict | None = None) -> Flask:
    config = config or {}
    # The instance folder holds the generated development key and the embedded database's files.
    instance_path = config.get("INSTANCE_PATH") or os.environ.get("INSTANCE_PATH")
    app = Flask(__name__, instance_path=os.path.abspath(instance_path) if instance_path else None)
    app.json.sort_keys = False  # keep the envelope's order: message, data, error
    load_config(app, config)
    if app.config["TRUSTED_PROXIES"]:
        hops = app.config["TRUSTED_PROXIES"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)
    app.url_map.converters["objectid"] = models.ObjectIdConverter
    app.url_map.strict_slashes = False

    models.init_app(app)
    models.try_ensure_indexes(app)
    # Unknown emails are checked against this, so they cost as much as known ones.
    app.extensions["dummy_password_hash"] = generate_password_hash(
        secrets.token_urlsafe(16), method=app.config["PASSWORD_HASH_METHOD"]
    )

    app.register_blueprint(meta)
    app.register_blueprint(users, url_prefix="/users")
    app.register_blueprint(books, url_prefix="/books")
    register_error_handlers(app)

    @app.before_request
    def _indexes():
        # Only routes that use the database wait for it; / and /healthz answer regardless.
        if request.blueprint in ("users", "books"):
            models.ensure_indexes_once()

    @app.cli.command("init-db")
    def init_db():
        """Create the database indexes."""
        models.ensure_indexes(models.get_db())
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
        log.error("database unavailable: %s %s: %s", request.method, request.path, type(exc).__name__)
        unavailable = ServiceUnavailable("The database is unavailable; try again shortly.")
        unavailable.retry_after = 5
        return http_error(unavailable)

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        log.exception("unhandled error: %s %s", request.method, request.path)
        return http_error(InternalServerError("An unexpected error occurred."))


def json_body() -> dict:
    """The request's JSON object; 415 for another content type, 400 when unparsable."""
    if not request.is_json:
        raise UnsupportedMediaType("Content-Type must be application/json.")
    try:
        return request.get_json()
    except (BadRequest, RecursionError):  # RecursionError: absurdly deep nesting
        raise validate.InvalidInput({"body": "Request body is not valid JSON."}) from None


# --- root and health --------------------------------------------------------

meta = Blueprint("meta", __name__)


@meta.get("/")
def index():
    """A short banner."""
    return envelope("Book Library API", {"name": "book-library", "docs": "See README.md"})


@meta.get("/healthz")
def healthz():
    """200 when the database answers a ping, 503 when it does not."""
    if models.ping():
        return envelope("ok", {"database": "up"})
    return envelope("The database is unavailable.", {"database": "down"}, 503, "Service Unavailable")


@meta.get("/static/images/books/<name>")
def cover(name: str):
    """Serve a stored thumbnail."""
    return send_from_directory(current_app.config["UPLOAD_FOLDER"], name)


# --- users -----------------------------------------------------------------

users = Blueprint("users", __name__)


@users.post("/")
def sign_up():
    """Create an account."""
    fields = validate.load(validate.SignUp, json_body())
    try:
        user = User.create(fields.name, fields.email, fields.password)
    except DuplicateKeyError:
        return envelope("An account with this email already exists.", status=409, error="Conflict")
    return envelope("Account created.", User.to_json(user), 201)


@users.post("/login")
def login():
    """Exchange email and password for an access token."""
    fields = validate.load(validate.Login, json_body())
    user = User.authenticate(fields.email, fields.password)
    if user is None:
        return envelope("Invalid email or password.", status=401, error="Unauthorized")
    data = User.to_json(user)
    data["token"] = create_token(user["_id"])
    return envelope("Logged in.", data)


@users.get("/")
@token_required
def get_current_user(current_user):
    """The caller's account."""
    return envelope("Current user.", User.to_json(current_user))


@users.put("/")
@token_required
def update_user(current_user):
    """Change the caller's name."""
    fields = validate.load(validate.UserUpdate, json_body())
    user = User.update_name(current_user["_id"], fields.name)
    return envelope("Account updated.", User.to_json(user or current_user))


@users.delete("/")
@token_required
def disable_user(current_user):
    """Disable the caller's account; its tokens stop working."""
    User.disable(current_user["_id"])
    return "", 204


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
    return save_image.make_thumbnail(upload.stream, current_app.config["MAX_IMAGE_PIXELS"])


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
    return envelope("Books.", [_book_json(book) for book in items], meta=meta_info)


def _own_book(book_id, user_id) -> dict:
    """The caller's book or 404: another user's book looks exactly like a missing one."""
    book = Books.get(book_id, user_id)
    if book is None:
        raise NotFound("Book not found.")
    return book


@books.get("/<objectid:book_id>")
@token_required
def get_book(current_user, book_id):
    """One of the caller's books."""
    return envelope("Book.", _book_json(_own_book(book_id, current_user["_id"])))


@books.put("/<objectid:book_id>")
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
@token_required
def delete_book(current_user, book_id):
    """Delete a book and its cover."""
    book = Books.delete(book_id, current_user["_id"])
    if book is None:
        raise NotFound("Book not found.")
    save_image.remove(book["image"], current_app.config["UPLOAD_FOLDER"])
    return "", 204
