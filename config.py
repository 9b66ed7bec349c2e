"""Configuration: every setting's default, reading the environment (and .env), and the
derived values (an empty setting means "derive it"), resolved once at start-up."""

from __future__ import annotations

import ipaddress
import os
import secrets
import tempfile
from typing import Any
from urllib.parse import urlsplit

from dotenv import load_dotenv
from flask import Flask

from mail.settings import resolve_settings

DEV_CORS_ORIGINS = (
    "http://localhost:3000,http://127.0.0.1:3000,http://localhost:5173,http://127.0.0.1:5173,"
    "http://localhost:8080,http://127.0.0.1:8080"
)

TUTORIAL_SECRET = "this is a secret"
MIN_SECRET_BYTES = 32

DEFAULTS = {
    "APP_ENV": "development",
    "DATABASE_URL": "",  # empty: no database; the launcher (make run, make dev) sets one
    "DATABASE_TIMEOUT_MS": 2000,
    "DATABASE_SOCKET_TIMEOUT_MS": 10000,
    "DATABASE_POOL_SIZE": 20,
    "ACCESS_TOKEN_EXPIRES_SECONDS": 15 * 60,
    "REFRESH_TOKEN_EXPIRES_SECONDS": 30 * 86400,
    "REFRESH_TOKEN_COOKIE": False,
    # A refresh token presented again this soon after its exchange is another tab, not theft.
    "REFRESH_REUSE_INTERVAL_SECONDS": 10,
    # SameSite of the refresh cookies: Strict, Lax or None (see the README's browser section).
    "REFRESH_COOKIE_SAMESITE": "Strict",
    "JWT_ISSUER": "book-library",
    "JWT_AUDIENCE": "book-library-api",
    # OWASP Password Storage Cheat Sheet: Argon2id, m=19 MiB, t=2, p=1.
    "PASSWORD_HASH_TIME_COST": 2,
    "PASSWORD_HASH_MEMORY_KIB": 19 * 1024,
    "PASSWORD_HASH_PARALLELISM": 1,
    "RATELIMIT_ENABLED": True,
    "RATELIMIT_STORAGE_URI": "",  # empty: the app's own MongoDB (DATABASE_URL)
    "LOGIN_RATE_LIMIT": "20 per minute",
    "LOGIN_ACCOUNT_RATE_LIMIT": "10 per minute",
    "SIGNUP_RATE_LIMIT": "10 per hour",
    "REFRESH_RATE_LIMIT": "60 per minute",
    "REFRESH_ACCOUNT_RATE_LIMIT": "30 per minute",
    "PASSWORD_RATE_LIMIT": "10 per hour",
    "PASSWORD_ACCOUNT_RATE_LIMIT": "5 per 15 minutes",
    "COVER_UPLOAD_RATE_LIMIT": "20 per minute",
    # Requests made with personal access tokens: per token, and per account (all its tokens together).
    "TOKEN_RATE_LIMIT": "300 per minute",
    "TOKEN_ACCOUNT_RATE_LIMIT": "600 per minute",
    "LOGIN_LOCKOUT_THRESHOLD": 5,
    "LOGIN_LOCKOUT_SECONDS": 60,
    "LOGIN_LOCKOUT_MAX_SECONDS": 15 * 60,
    "AUDIT_RETENTION_DAYS": 90,
    # A disabled account and its books are deleted this many days after it was disabled.
    "ACCOUNT_PURGE_DAYS": 30,
    "MAX_UPLOAD_BYTES": 5 * 1024 * 1024,
    "MAX_IMAGE_PIXELS": 50_000_000,
    # Full-size pixel buffers one cover may need while it is shrunk (see save_image.decode_cost).
    "MAX_IMAGE_DECODE_BYTES": 96 * 1024 * 1024,
    "UPLOAD_FOLDER": "",  # empty: static/images/books beside this file
    "COVER_STORAGE": "local",  # local (UPLOAD_FOLDER) or gridfs (the database)
    "TRUSTED_PROXIES": 0,
    "REQUEST_LOG": True,  # one JSON line per request on standard error
    "MFA_ENCRYPTION_KEY": "",  # empty: derived from SECRET_KEY
    "CORS_ORIGINS": "",  # comma-separated; empty: none in production, localhost ports in development
    "APP_NAME": "Book Library",  # in mail subjects and bodies
    # Where clients reach the API (https://books.example.com). Absolute URLs in responses are built
    # from it, not from the request's Host header. Required in production; empty in development:
    # http://HOST:PORT for mailed links, the request's (trusted) host for the rest.
    "PUBLIC_URL": "",
    # Host names the API answers for (comma-separated); any other Host header gets 400. Empty:
    # PUBLIC_URL's host, and in development localhost and 127.0.0.1 as well.
    "TRUSTED_HOSTS": "",
    "FRONTEND_URL": "",  # where mailed links point; empty: the browser app's address, else PUBLIC_URL
    "MAIL_URL": "",  # smtp://user:pass@host:port[?starttls=true] or smtps://...; empty: .eml files (development)
    "MAIL_FROM": "",  # empty: "APP_NAME <no-reply@PUBLIC_URL's host>"
    "MAIL_TIMEOUT_SECONDS": 10,
    "MAIL_SENDER": True,  # a sender thread in each app process
    "REQUIRE_VERIFIED_EMAIL": False,
    "PASSWORD_FORGOT_RATE_LIMIT": "10 per hour",
    "PASSWORD_FORGOT_EMAIL_RATE_LIMIT": "3 per hour",
    "LINK_TOKEN_RATE_LIMIT": "30 per hour",
    "VERIFY_RESEND_RATE_LIMIT": "3 per hour",
    "EMAIL_CHANGE_RATE_LIMIT": "5 per hour",
    # Mails of one kind to one address; more are dropped (an event), the request answered as usual.
    "MAIL_RECIPIENT_RATE_LIMIT": "5 per hour",
    # Passkeys (WebAuthn): the relying party id, a host name; empty: FRONTEND_URL's host
    # ("localhost" in development when that host is an IP address, which browsers refuse).
    "PASSKEY_RP_ID": "",
    # Origins a passkey ceremony may come from (comma-separated); empty: FRONTEND_URL's and
    # PUBLIC_URL's, and in development their localhost forms and the development CORS origins.
    "PASSKEY_ORIGINS": "",
}


def _typed(key: str, value: Any) -> Any:
    """Environment strings become the type of the key's default."""
    default = DEFAULTS.get(key)
    if isinstance(default, bool) and isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    if isinstance(default, int) and not isinstance(default, bool):
        return int(value)
    return value


def load_config(app: Flask, overrides: dict[str, Any] | None) -> None:
    """Defaults, then environment (and .env), then the dict passed to create_app; then every
    value typed and every derived default (an empty value) resolved, once, here."""
    load_dotenv(os.path.join(app.root_path, ".env"))
    app.config.update(DEFAULTS)
    for key in list(DEFAULTS) + ["SECRET_KEY"]:
        if os.environ.get(key):  # an empty line in .env means "use the default"
            app.config[key] = os.environ[key]
    app.config.update(overrides or {})
    config = app.config
    for key in DEFAULTS:
        config[key] = _typed(key, config[key])
    config["SECRET_KEY"] = _secret_key(app)
    # Relative to the project folder, whatever the working directory.
    config["UPLOAD_FOLDER"] = os.path.join(
        app.root_path, config["UPLOAD_FOLDER"] or os.path.join("static", "images", "books")
    )
    config["RATELIMIT_STORAGE_URI"] = config["RATELIMIT_STORAGE_URI"] or config["DATABASE_URL"]
    config["MFA_ENCRYPTION_KEY"] = config["MFA_ENCRYPTION_KEY"] or config["SECRET_KEY"]
    config["REFRESH_COOKIE_SAMESITE"] = _same_site(config["REFRESH_COOKIE_SAMESITE"])
    origins = config["CORS_ORIGINS"] or ("" if config["APP_ENV"] == "production" else DEV_CORS_ORIGINS)
    config["CORS_ORIGINS"] = [origin.strip() for origin in origins.split(",") if origin.strip()]
    # As configured (production needs one); the mail settings then fill in development's.
    public_url = _public_url(config["PUBLIC_URL"], config["APP_ENV"])
    # Links in answers use the configured one only: empty in development, so that they follow
    # the address the client used (mail links need an address, so the mail settings fill it in).
    config["PUBLIC_URL_AS_CONFIGURED"] = config["PUBLIC_URL"] = public_url
    config["TRUSTED_HOSTS"] = _trusted_hosts(config["TRUSTED_HOSTS"], public_url, config["APP_ENV"])
    listen_address = f"{os.environ.get('HOST') or '127.0.0.1'}:{os.environ.get('PORT') or '5000'}"
    resolve_settings(config, app.root_path, listen_address)
    config["PASSKEY_RP_ID"], config["PASSKEY_ORIGINS"] = _passkey_party(config)


DEV_TRUSTED_HOSTS = ["localhost", "127.0.0.1"]


def _public_url(value: str, app_env: str) -> str:
    """The public base URL without a trailing slash; production cannot do without one, or
    links in responses would point wherever a request's Host header said."""
    value = value.strip().rstrip("/")
    if not value:
        if app_env == "production":
            raise RuntimeError("PUBLIC_URL must be set in production (where clients reach the API).")
        return ""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise RuntimeError("PUBLIC_URL must be an http(s) URL such as https://books.example.com.")
    return value


def _trusted_hosts(value: str, public_url: str, app_env: str) -> list[str]:
    """Flask's TRUSTED_HOSTS: the Host headers the app answers; others get 400. By default
    PUBLIC_URL's host, and in development this machine's names as well. In lower case, as
    policies.LowerCaseHost makes the Host header."""
    hosts = [host.strip().lower() for host in value.split(",") if host.strip()]
    if hosts:
        return hosts
    host = urlsplit(public_url).hostname  # _public_url made sure a URL has one
    public = [host] if host else []
    return public if app_env == "production" else public + DEV_TRUSTED_HOSTS


def _origin(url: str, host: str | None = None) -> str:
    parts = urlsplit(url)
    netloc = f"{host}:{parts.port}" if host and parts.port else host or parts.netloc
    return f"{parts.scheme}://{netloc}"


def _passkey_party(config: Any) -> tuple[str, list[str]]:
    """The passkeys' relying party id and allowed origins, from the configured addresses only:
    never from a request's headers, which a client chooses."""
    development = config["APP_ENV"] != "production"
    urls = [config["FRONTEND_URL"], config["PUBLIC_URL"]]
    rp_id = config["PASSKEY_RP_ID"].strip() or urlsplit(urls[0]).hostname or "localhost"
    if development and _is_ip(rp_id):
        rp_id = "localhost"
    origins = [origin.strip() for origin in config["PASSKEY_ORIGINS"].split(",") if origin.strip()]
    if not origins:
        origins = [_origin(url) for url in urls]
        if development:
            origins += [_origin(url, "localhost") for url in urls] + list(config["CORS_ORIGINS"])
    return rp_id, list(dict.fromkeys(origins))


def _is_ip(host: str) -> bool:
    """An IPv4 or IPv6 literal, which browsers refuse as a relying party id."""
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


SAME_SITE_VALUES = ("Strict", "Lax", "None")


def _same_site(value: str) -> str:
    """The SameSite attribute as browsers spell it; a typo fails at start-up, not in a browser."""
    for allowed in SAME_SITE_VALUES:
        if value.strip().lower() == allowed.lower():
            return allowed
    raise RuntimeError(f"REFRESH_COOKIE_SAMESITE must be one of {', '.join(SAME_SITE_VALUES)}, not {value!r}.")


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
