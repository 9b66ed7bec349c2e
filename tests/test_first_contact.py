"""What a client meets first, beyond the endpoints themselves: CORS preflights that offer only
the methods a URL has, one Vary header, one value per query parameter, and an app started
with no database that says how to get one."""

from __future__ import annotations

import pytest

from helpers import INVALID_FIELDS, assert_error

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
    ],
)
def test_a_query_parameter_given_twice_is_400(client, auth, path, query, fields):
    response = client.get(f"{path}?{query}", headers=auth.headers())
    assert_error(response, 400, {field: "Give this parameter once." for field in fields}, INVALID_FIELDS)
