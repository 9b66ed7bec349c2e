"""Property-based contract tests: Schemathesis drives every documented operation of the running
app (in-process, over WSGI) with generated requests, authenticated ones included, and checks
each response against the OpenAPI document: no 5xx, documented status codes, content types,
headers and bodies."""

import tempfile
import uuid

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app import create_app
from helpers import PASSWORD, MongomockClient, config_for_tests

# What is checked. Not "positive data acceptance": the document states the shape of inputs,
# while some rules (a common password, a one-word name) are checked beyond it and answered 400.
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


def _contract_app(tmp_root):
    return create_app(
        config_for_tests(
            tmp_root,
            MONGO_CLIENT=MongomockClient(tz_aware=True),
            DATABASE_URL="mongodb://unused/contract",
            REQUEST_LOG=False,
        )
    )


# Schemathesis reads the document once, at collection; the app it tests is this one.
CONTRACT_APP = _contract_app(tempfile.mkdtemp(prefix="book-library-contract-"))
schema = schemathesis.openapi.from_wsgi("/openapi.json", CONTRACT_APP)


@pytest.fixture
def bearer():
    """A fresh account's token for each operation: a DELETE /users/ example only ends its own."""
    client = CONTRACT_APP.test_client()
    email = f"contract-{uuid.uuid4().hex[:10]}@example.com"
    client.post("/users/", json={"name": "Contract Tester", "email": email, "password": PASSWORD})
    login = client.post("/users/login", json={"email": email, "password": PASSWORD})
    return {"Authorization": f"Bearer {login.get_json()['data']['token']}"}


@schema.parametrize()
@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_every_operation_conforms_to_the_document(case, bearer):
    case.call_and_validate(headers=bearer, checks=CHECKS)
