"""Request and response helpers shared by the views: the JSON envelope and body parsing."""

from __future__ import annotations

import hashlib
from typing import Any

from flask import Response, current_app, jsonify, request, url_for
from pydantic import BaseModel
from werkzeug.exceptions import BadRequest, UnsupportedMediaType

import validate
from api import body_limit

FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")
FORM_OR_JSON_REQUIRED = (
    "Content-Type must be multipart/form-data, application/x-www-form-urlencoded or application/json."
)


Reply = tuple[Response, int]


def envelope(message: str, data: Any = None, status: int = 200, **extra: Any) -> Reply:
    """A successful response: {message, data, error: null} plus any extra top-level keys."""
    body = {"message": message, "data": data, "error": None, **extra}
    return jsonify(body), status


def external_url(endpoint: str, **values: Any) -> str:
    """An absolute URL for a response: under PUBLIC_URL when it is set, never from a Host
    header alone (a forged one would put its host into links that clients follow)."""
    base: str = current_app.config["PUBLIC_URL_AS_CONFIGURED"]
    if not base:
        return url_for(endpoint, _external=True, **values)
    return base + url_for(endpoint, **values)


def json_body() -> dict[str, Any]:
    """The request's JSON object; 415 for another content type, 400 when unparsable."""
    if not request.is_json:
        raise UnsupportedMediaType("Content-Type must be application/json.")
    try:
        body: dict[str, Any] = request.get_json()
    except body_limit.MalformedBody:  # a BadRequest with its own message: the body could not be read at all
        raise
    except (BadRequest, RecursionError):  # RecursionError: absurdly deep nesting
        raise validate.InvalidInput({"body": "Request body is not valid JSON."}) from None
    return body


def optional_json_body() -> dict[str, Any]:
    """The JSON object of a request whose body may be left out (DELETE with optional fields)."""
    return json_body() if request.content_length or request.is_json else {}


def query_args(schema: type[BaseModel]) -> dict[str, str]:
    """The query string, one value per parameter; a parameter of `schema` given twice is 400, since
    the document describes each as a single value (`?per_page=1&per_page=2` means nothing).
    Parameters the API does not know are ignored, as everywhere; a known one in a nested form
    (`after[x]=...`) is not a parameter the API does not know, so it is 400 too."""
    known = schema.model_fields
    refused = {}
    for key, values in request.args.lists():
        name = key.split("[", 1)[0]
        if name in known and (len(values) > 1 or name != key):
            refused[name] = "Give this parameter once."
    if refused:
        raise validate.InvalidInput(refused)
    return request.args.to_dict()


def form_or_json() -> dict[str, Any]:
    """Fields from a JSON object or a form, whichever the client sent."""
    if request.is_json:
        return json_body()
    if request.mimetype in FORM_TYPES:
        return request.form.to_dict()
    raise UnsupportedMediaType(FORM_OR_JSON_REQUIRED)


def conditional(reply: Reply, tag: str | None = None) -> Response:
    """A GET reply with an ETag (the given one, or a digest of its body, the same on every
    app server); when the client's If-None-Match holds it, 304 with no body instead."""
    response, status = reply
    response.status_code = status
    response.set_etag(tag or hashlib.sha256(response.get_data()).hexdigest()[:32])
    response.make_conditional(request)  # in place (it returns the same response, typed as Werkzeug's)
    return response
