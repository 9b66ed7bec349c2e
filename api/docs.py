"""/openapi.json and /docs: the OpenAPI document (built at its first request, once per app)
and Swagger UI, served by this app with no CDN."""

from __future__ import annotations

import importlib.util
import os
import threading
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, send_from_directory

from api.openapi import build_document

SWAGGER_ASSETS_MAX_AGE = 86400
EXTENSION = "book_library.docs"


@dataclass
class DocsState:
    """The document of one app: built on first use (most apps in tests never serve it), once."""

    public_url: str
    _document: dict[str, Any] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def document(self) -> dict[str, Any]:
        with self._lock:
            if self._document is None:
                self._document = build_document(self.public_url)
            return self._document


def init_app(app: Flask) -> None:
    app.extensions[EXTENSION] = DocsState(app.config["PUBLIC_URL"])


def docs_state() -> DocsState:
    result: DocsState = current_app.extensions[EXTENSION]
    return result


docs = Blueprint("docs", __name__)


@docs.get("/openapi.json")
def openapi() -> Response:
    """The OpenAPI 3.1 document (import it into Postman, or read it at /docs)."""
    return jsonify(docs_state().document())


@docs.get("/docs")
def swagger_ui() -> Response:
    """Interactive documentation (Swagger UI), served entirely by this app."""
    return send_from_directory(os.path.join(current_app.static_folder or "static", "docs"), "index.html", max_age=0)


@docs.get("/docs/assets/<path:name>")
def swagger_ui_assets(name: str) -> Response:
    """Swagger UI's files, shipped by the flask-openapi3-swagger package."""
    return send_from_directory(swagger_ui_folder(), name, max_age=SWAGGER_ASSETS_MAX_AGE)


def swagger_ui_folder() -> str:
    # Located without importing the package (it would import its Flask plugin).
    spec = importlib.util.find_spec("flask_openapi3_swagger")
    assert spec is not None and spec.submodule_search_locations, "flask-openapi3-swagger is a requirement"
    return os.path.join(spec.submodule_search_locations[0], "templates", "swagger")
