"""/ and /healthz: the service's own routes, a banner and the health check."""

from __future__ import annotations

from flask import Blueprint, current_app
from werkzeug.exceptions import ServiceUnavailable

from api.openapi import documented
from api.responses import Reply, envelope, external_url
from api.schemas import Banner, Envelope, Health
from database.client import ping

meta = Blueprint("meta", __name__)
BANNER_LINKS = {"docs": "docs.swagger_ui", "openapi": "docs.openapi"}


@meta.get("/")
@documented(tags=["meta"], ok=(200, Envelope[Banner]), operation_id="getBanner", database=False)
def index() -> Reply:
    """A short banner with links to the documentation; `refresh_token_cookie` tells a browser
    app which way refresh tokens travel."""
    links = {name: external_url(endpoint) for name, endpoint in BANNER_LINKS.items()}
    data = {"name": "book-library", **links, "refresh_token_cookie": current_app.config["REFRESH_TOKEN_COOKIE"]}
    return envelope("Book Library API", data)


@meta.get("/healthz")
@documented(
    tags=["meta"],
    ok=(200, Envelope[Health]),
    operation_id="checkHealth",
    messages={503: "The database is unavailable."},
)
def healthz() -> Reply:
    """200 when the database answers a ping, 503 when it does not."""
    if not ping():
        raise ServiceUnavailable("The database is unavailable.")
    return envelope("ok", {"database": "up"})
