"""The API's operations, from the URL map and the OpenAPI document."""

from __future__ import annotations

import functools
import re
import tempfile

import mongomock

from app import create_app
from helpers.config import config_for_tests

# Routes that serve files or describe the API rather than being part of it.
NOT_API = re.compile(r"^/(static/|app/|docs\b|openapi\.json$)")
SOME_ID = "0123456789abcdef01234567"  # a well-formed ObjectId for a route's <objectid:...> variable


def api_operations(app) -> list[tuple[str, str]]:
    """(METHOD, Flask rule) of every API operation in the app's URL map, HEAD and OPTIONS aside."""
    return [
        (method, rule.rule)
        for rule in app.url_map.iter_rules()
        if not NOT_API.match(rule.rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"})
    ]


def openapi_path(rule: str) -> str:
    """/books/<objectid:book_id> -> /books/{book_id}"""
    return re.sub(r"<(?:[^<>:]+:)?([^<>]+)>", r"{\1}", rule)


def concrete_path(rule: str) -> str:
    """A URL the rule matches."""
    path = re.sub(r"<objectid:[^<>]+>", SOME_ID, rule)
    assert "<" not in path, f"no sample value for a variable of {rule}"
    return path


@functools.cache
def documented_security() -> dict[tuple[str, str], bool]:
    """For every API operation of an app built as the tests build it, (METHOD, URL) -> whether its OpenAPI
    operation requires a bearer token. Read once, when tests are collected, so that they can be
    parametrised by it; test_browser checks that the running app answers 401 exactly where it says so."""
    with tempfile.TemporaryDirectory() as tmp:
        app = create_app(config_for_tests(tmp, MONGO_CLIENT=mongomock.MongoClient(tz_aware=True), REQUEST_LOG=False))
        document = app.test_client().get("/openapi.json").get_json()
        return {
            (method, concrete_path(rule)): bool(document["paths"][openapi_path(rule)][method.lower()].get("security"))
            for method, rule in api_operations(app)
        }


def protected_operations() -> list[tuple[str, str]]:
    """(METHOD, URL) of every operation that needs an access token."""
    return [operation for operation, protected in documented_security().items() if protected]
