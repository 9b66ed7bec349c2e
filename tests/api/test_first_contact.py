"""What a client meets first, beyond the endpoints themselves: CORS preflights that offer only
the methods a URL has, one Vary header, one value per query parameter, and an app started
with no database that says how to get one."""

from __future__ import annotations

import pytest

from app import NO_DATABASE, create_app
from helpers import (
    INVALID_FIELDS,
    assert_envelope,
    config_for_tests,
)

ORIGIN = "http://localhost:5173"


def preflight(client, path: str, method: str):
    return client.options(path, headers={"Origin": ORIGIN, "Access-Control-Request-Method": method})


@pytest.mark.parametrize(
    "path, methods",
    [
        ("/books/", {"GET", "HEAD", "POST", "OPTIONS"}),
        ("/books/5f0c9a1b2c3d4e5f6a7b8c9d", {"GET", "HEAD", "PUT", "DELETE", "OPTIONS"}),
        ("/users/token/refresh", {"POST", "OPTIONS"}),
    ],
)
def test_a_preflight_offers_only_the_methods_of_its_url(client, path, methods):
    response = preflight(client, path, "POST")
    assert response.status_code == 200
    offered = {m.strip() for m in response.headers["Access-Control-Allow-Methods"].split(",")}
    assert offered == methods
    assert "PATCH" not in offered


@pytest.mark.parametrize("request_kind", ["preflight", "get with origin", "get without origin"])
def test_vary_origin_is_sent_once(client, request_kind):
    if request_kind == "preflight":
        response = preflight(client, "/books/", "GET")
    else:
        response = client.get("/", headers={"Origin": ORIGIN} if request_kind == "get with origin" else {})
    assert response.headers.getlist("Vary") == ["Origin"]


@pytest.mark.parametrize(
    "path, query, fields",
    [
        ("/books/", "per_page=1&per_page=2", {"per_page"}),
        ("/books/", "page=1&category=science&page=2&category=horror", {"page", "category"}),
        ("/users/events", "limit=5&limit=5", {"limit"}),
        ("/books/", "after%5Bx%5D%5B0%5D=1", {"after"}),
        ("/books/", "limit=5&per_page%5B%5D=2", {"per_page"}),
    ],
)
def test_a_query_parameter_given_twice_or_nested_is_400(client, auth, path, query, fields):
    response = client.get(f"{path}?{query}", headers=auth.headers())
    assert_envelope(response, 400, INVALID_FIELDS, {field: "Give this parameter once." for field in fields})


# --- no database configured -----------------------------------------------------------------


@pytest.fixture
def app_without_database(tmp_path, log_lines):
    return create_app(config_for_tests(tmp_path, DATABASE_URL=""))


@pytest.mark.parametrize(
    "method, path",
    [("get", "/healthz"), ("post", "/users/"), ("post", "/users/login"), ("get", "/books/"), ("get", "/users/")],
)
def test_without_a_database_the_routes_that_need_one_say_how_to_start_one(app_without_database, method, path):
    response = getattr(app_without_database.test_client(), method)(path)
    assert_envelope(response, 503, NO_DATABASE, "Service Unavailable")
    assert "make run" in NO_DATABASE and "make dev" in NO_DATABASE and "DATABASE_URL" in NO_DATABASE


@pytest.mark.parametrize("path", ["/", "/openapi.json"])
def test_without_a_database_the_banner_and_the_document_still_answer(app_without_database, path):
    assert app_without_database.test_client().get(path).status_code == 200


def test_without_a_database_start_up_logs_how_to_start_one_once(app_without_database, log_lines):
    app_without_database.test_client().get("/books/")
    assert sum(NO_DATABASE in line for line in log_lines) == 1
