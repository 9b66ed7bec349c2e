"""The service's own routes: a banner at / and the health check."""

from __future__ import annotations

from flask import Blueprint, current_app
from werkzeug.exceptions import ServiceUnavailable

import models
import validate
from api_docs import documented
from responses import envelope

meta = Blueprint("meta", __name__)


@meta.get("/")
@documented(tags=["meta"], ok=(200, validate.Envelope[validate.Banner]), errors=())
def index():
    """A short banner; `refresh_token_cookie` tells a browser app which way refresh tokens travel."""
    data = {
        "name": "book-library",
        "docs": "See README.md",
        "refresh_token_cookie": current_app.config["REFRESH_TOKEN_COOKIE"],
    }
    return envelope("Book Library API", data)


@meta.get("/healthz")
@documented(tags=["meta"], ok=(200, validate.Envelope[validate.Health]), errors=(503,))
def healthz():
    """200 when the database answers a ping, 503 when it does not."""
    if not models.ping():
        raise ServiceUnavailable("The database is unavailable.")
    return envelope("ok", {"database": "up"})
