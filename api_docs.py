"""The OpenAPI 3.1 document, generated from the schemas in validate.py, and its viewers."""

from __future__ import annotations

import copy
import importlib.util
import os
import re

from flask import Blueprint, current_app, send_from_directory
from spectree import Response as SpecResponse
from spectree import SecurityScheme, SecuritySchemeData, SpecTree

import validate

SWAGGER_ASSETS_MAX_AGE = 86400

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


# Answers without a body.
BODILESS = (304,)


def documented(*, tags, ok, json=None, form=None, query=None, headers=None, auth=False, errors=(401,), also=()):
    """Describe a route in the OpenAPI document from the same schemas validate.py checks
    requests with. Validation itself stays in the views (our envelope, our messages).
    `also` lists other successful answers as (status, schema) pairs."""
    codes = set(errors) | set(COMMON_ERRORS) | ({401} if auth else set())
    responses = {f"HTTP_{code}": validate.ErrorEnvelope for code in codes if code not in (400, *BODILESS)}
    for status, schema in (ok, *also):
        responses[f"HTTP_{status}"] = schema
    return api.validate(
        json=json,
        form=form,
        query=query,
        headers=headers,
        resp=SpecResponse(*(f"HTTP_{code}" for code in codes & set(BODILESS)), **responses),
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
                _describe_etags(operation)
        current_app.extensions["openapi"] = document
    return document


def _describe_etags(operation: dict) -> None:
    """Conditional requests: the ETag an answer carries, and what 304 and 412 mean."""
    responses = operation["responses"]
    conditional_get, conditional_change = "304" in responses, "412" in responses
    if conditional_get:
        responses["304"]["description"] = "Not Modified: the If-None-Match ETag still matches; no body."
    if conditional_change:
        responses["412"]["description"] = "Precondition Failed: the If-Match ETag no longer matches; nothing changed."
    if conditional_get or (conditional_change and "200" in responses):
        etag = {"description": "This state's entity tag, for If-None-Match and If-Match.", "schema": {"type": "string"}}
        responses["200"].setdefault("headers", {})["ETag"] = etag


docs = Blueprint("docs", __name__)


@docs.get("/openapi.json")
def openapi():
    """The OpenAPI 3.1 document (import it into Postman, or read it at /docs)."""
    return current_app.json.response(openapi_document())


@docs.get("/docs")
def swagger_ui():
    """Interactive documentation (Swagger UI), served entirely by this app."""
    return send_from_directory(os.path.join(current_app.static_folder, "docs"), "index.html", max_age=0)


@docs.get("/docs/assets/<path:name>")
def swagger_ui_assets(name: str):
    """Swagger UI's files, shipped by the flask-openapi3-swagger package."""
    return send_from_directory(swagger_ui_folder(), name, max_age=SWAGGER_ASSETS_MAX_AGE)


def swagger_ui_folder() -> str:
    # Located without importing the package (it would import its Flask plugin).
    spec = importlib.util.find_spec("flask_openapi3_swagger")
    return os.path.join(spec.submodule_search_locations[0], "templates", "swagger")
