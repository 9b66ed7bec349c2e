"""The reference browser app at /app/: the files of static/app, under their own page policy."""

from __future__ import annotations

import os

from flask import Blueprint, Response, current_app, send_from_directory

web_app = Blueprint("web_app", __name__)

# The app runs only its own files (ES modules, one stylesheet, no inline code), shows covers
# from this origin and previews of chosen files (blob:), and talks to this origin only: a
# password typed on this page goes to this API only. docs/browser-app.md gives the same policy,
# with the API's origin, for serving the app elsewhere.
APP_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'"
)


# strict_slashes: /app redirects to /app/, so that the page's relative URLs resolve under /app/.
@web_app.get("/app/", strict_slashes=True)
def index() -> Response:
    """The app's page."""
    return _send("index.html")


# The pages that mailed links open (mail.KINDS): the same page, which reads the token from the
# link's fragment. No trailing slash, so that the page's relative URLs still resolve under /app/.
@web_app.get("/app/reset-password")
@web_app.get("/app/verify-email")
def link_page() -> Response:
    """The app's page, opened from a mailed link."""
    return _send("index.html")


@web_app.get("/app/<path:name>")
def asset(name: str) -> Response:
    """The app's scripts and stylesheet."""
    return _send(name)


def _send(name: str) -> Response:
    # No caching beyond revalidation: a deploy is seen on the next load.
    static = current_app.static_folder
    assert static is not None  # create_app keeps Flask's default, the static folder
    response = send_from_directory(os.path.join(static, "app"), name, max_age=0)
    response.headers["Content-Security-Policy"] = APP_CSP
    return response
