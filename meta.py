"""The service's own routes: a banner at / and the health check."""

from __future__ import annotations

from flask import Blueprint, url_for
from werkzeug.exceptions import ServiceUnavailable

import models
import validate
from api_docs import documented
from responses import envelope

meta = Blueprint("meta", __name__)
BANNER_LINKS = {"docs": "docs.swagger_ui", "openapi": "docs.openapi"}


@meta.get("/")
@documented(tags=["meta"], ok=(200, validate.Envelope[validate.Banner]), operation_id="getBanner", database=False)
def index():
    """A short banner with links to the documentation."""
    links = {name: url_for(endpoint, _external=True) for name, endpoint in BANNER_LINKS.items()}
    return envelope("Book Library API", {"name": "book-library", **links})


@meta.get("/healthz")
@documented(
    tags=["meta"],
    ok=(200, validate.Envelope[validate.Health]),
    operation_id="checkHealth",
    messages={503: "The database is unavailable."},
)
def healthz():
    """200 when the database answers a ping, 503 when it does not."""
    if not models.ping():
        raise ServiceUnavailable("The database is unavailable.")
    return envelope("ok", {"database": "up"})
