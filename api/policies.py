"""Browser policies: CORS for the browser app, the OWASP REST security headers on every
response, and the Host header read as case-insensitive."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from flask import Flask, Response, request
from flask_cors import CORS

# Headers a browser app may read from responses (CORS).
EXPOSED_HEADERS = ["WWW-Authenticate", "Retry-After", "Link", "X-Total-Count", "X-Request-ID"]
CORS_PREFLIGHT_MAX_AGE = 600
HSTS = "max-age=31536000; includeSubDomains"
JSON_CSP = "default-src 'none'; frame-ancestors 'none'"
DOCS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'"
)


def register(app: Flask) -> None:
    """CORS for the browser app, and the OWASP REST security headers on every response."""
    origins = app.config["CORS_ORIGINS"]

    # Registered before flask-cors, so that it runs after it (Flask runs these in reverse).
    @app.after_request
    def _security_headers(response: Response) -> Response:
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


class LowerCaseHost:
    """WSGI middleware: the Host header in lower case. Host names are case-insensitive
    (RFC 9110, section 4.2.3), and Flask compares it with TRUSTED_HOSTS exactly."""

    def __init__(self, wsgi_app: Any) -> None:
        self.wsgi_app = wsgi_app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if "HTTP_HOST" in environ:
            environ["HTTP_HOST"] = environ["HTTP_HOST"].lower()
        result: Iterable[bytes] = self.wsgi_app(environ, start_response)
        return result
