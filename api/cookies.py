"""How tokens reach a client: in the JSON body, or (REFRESH_TOKEN_COOKIE) the refresh token in
an HttpOnly cookie with a CSRF token to echo; and how a refresh token comes back."""

from __future__ import annotations

import secrets
from typing import Any

from flask import Response, current_app, request
from werkzeug.exceptions import Forbidden, Unauthorized

import validate
from api import account_requests
from api.responses import Reply, envelope, json_body

REFRESH_COOKIE, CSRF_COOKIE, CSRF_HEADER = "refresh_token", "csrf_token", "X-CSRF-Token"
REFRESH_COOKIE_PATH = "/users"


def tokens_reply(message: str, data: dict[str, Any]) -> Reply:
    """JSON with the tokens; with cookie mode on, the refresh token goes in a cookie instead,
    and the body carries the CSRF token: a page on another origin cannot read the cookie."""
    if not current_app.config["REFRESH_TOKEN_COOKIE"]:
        return envelope(message, data)
    refresh_token = data.pop("refresh_token")
    data["csrf_token"] = secrets.token_urlsafe(32)
    response, status = envelope(message, data)
    _set_refresh_cookies(response, refresh_token, data["csrf_token"])
    return response, status


def _set_refresh_cookies(response: Response, refresh_token: str, csrf_token: str) -> None:
    """HttpOnly refresh token for the refresh and logout endpoints only, and the CSRF token
    that the browser app echoes in a header (double-submit)."""
    max_age = current_app.config["REFRESH_TOKEN_EXPIRES_SECONDS"]
    common = {"max_age": max_age, "secure": True, "samesite": current_app.config["REFRESH_COOKIE_SAMESITE"]}
    response.set_cookie(REFRESH_COOKIE, refresh_token, httponly=True, path=REFRESH_COOKIE_PATH, **common)
    response.set_cookie(CSRF_COOKIE, csrf_token, httponly=False, path="/", **common)


def clear_refresh_cookies(response: Response) -> None:
    if current_app.config["REFRESH_TOKEN_COOKIE"]:
        same_site = current_app.config["REFRESH_COOKIE_SAMESITE"]
        response.delete_cookie(REFRESH_COOKIE, path=REFRESH_COOKIE_PATH, secure=True, samesite=same_site)
        response.delete_cookie(CSRF_COOKIE, path="/", secure=True, samesite=same_site)


def presented_refresh_token() -> str:
    """The refresh token from the JSON body, or from the cookie with a matching CSRF header."""
    if request.is_json or not current_app.config["REFRESH_TOKEN_COOKIE"]:
        return validate.load(account_requests.RefreshRequest, json_body()).refresh_token
    cookie = request.cookies.get(REFRESH_COOKIE)
    if not cookie:
        raise Unauthorized("Refresh token is missing.")
    csrf_cookie = request.cookies.get(CSRF_COOKIE, "")
    csrf_header = request.headers.get(CSRF_HEADER, "")
    # Compared as bytes: compare_digest refuses non-ASCII text, and a header may carry any.
    if not csrf_cookie or not secrets.compare_digest(csrf_cookie.encode(), csrf_header.encode()):
        raise Forbidden(f"The {CSRF_HEADER} header must match the {CSRF_COOKIE} cookie.")
    return cookie


def no_content() -> Response:
    """204 that also clears the refresh cookies, for the routes that end sessions."""
    response = current_app.make_response(("", 204))
    clear_refresh_cookies(response)
    return response
