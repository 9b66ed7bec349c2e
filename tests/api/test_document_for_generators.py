"""/openapi.json as code generators read it (issue 18): what a client may leave out is not
required, what an answer may lack is optional, unions carry a field to narrow on, and the list's
paging parameters are plain query parameters. The generated clients themselves run in
test_generated_clients.py; these checks need no Node or generator."""

from __future__ import annotations

import pytest

from app import create_app
from helpers import config_for_tests


@pytest.fixture(scope="module")
def document(tmp_path_factory) -> dict:
    app = create_app(config_for_tests(tmp_path_factory.mktemp("app"), DATABASE_URL=""))
    return app.test_client().get("/openapi.json").get_json()


def operations(document: dict):
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield f"{method.upper()} {path}", operation


def component(document: dict, media: dict) -> dict:
    return document["components"]["schemas"][media["schema"]["$ref"].rsplit("/", 1)[1]]


def test_the_list_pages_through_four_plain_query_parameters(document):
    parameters = {p["name"]: p for p in document["paths"]["/books/"]["get"]["parameters"] if p["in"] == "query"}
    assert set(parameters) == {"page", "per_page", "limit", "after", "category"}
    for name in ("page", "per_page", "limit", "after"):
        assert parameters[name]["schema"]["type"] in ("integer", "string"), name
        assert parameters[name]["required"] is False
        assert "a mix is refused (400)" in parameters[name]["description"], name


def test_no_query_parameter_or_request_field_has_a_default_a_generator_would_send_or_require(document):
    for name, operation in operations(document):
        for parameter in operation.get("parameters", []):
            assert "default" not in parameter["schema"], (name, parameter["name"])
        for media in operation.get("requestBody", {}).get("content", {}).values():
            for field, schema in component(document, media)["properties"].items():
                assert "default" not in schema, (name, field)


def test_an_answer_field_is_required_unless_it_may_be_absent(document):
    schemas = document["components"]["schemas"]
    tokens = schemas["TokensOut"]
    assert {"refresh_token", "csrf_token"}.isdisjoint(tokens["required"])
    assert tokens["properties"]["csrf_token"]["type"] == "string"
    for name in ("Accepted", "Envelope_UserOut_", "ErrorEnvelope", "MfaChallengeOut", "LoginOut"):
        properties = schemas[name]["properties"]
        assert set(properties) - {"refresh_token", "csrf_token"} <= set(schemas[name]["required"]), name
        assert not any("default" in field for field in properties.values()), name


def test_unions_carry_a_constant_to_narrow_on(document):
    schemas = document["components"]["schemas"]
    assert schemas["LoginOut"]["properties"]["mfa_required"]["const"] is False
    assert schemas["MfaChallengeOut"]["properties"]["mfa_required"]["const"] is True
    meta = schemas["BookPage"]["properties"]["meta"]
    assert meta["discriminator"]["propertyName"] == "paging"
    assert schemas["PageMeta"]["properties"]["paging"]["const"] == "page"
    assert schemas["CursorMeta"]["properties"]["paging"]["const"] == "cursor"
    assert len(schemas["BookOut"]["properties"]["category"]["enum"]) == 8


def test_a_cover_is_a_binary_file_part(document):
    form = document["paths"]["/books/"]["post"]["requestBody"]["content"]["multipart/form-data"]
    assert component(document, form)["properties"]["cover_image"]["format"] == "binary"
    assert "image/png" in form["encoding"]["cover_image"]["contentType"]
