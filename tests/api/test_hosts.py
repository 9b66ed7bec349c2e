"""The Host header: only trusted hosts are answered, and links in responses come from PUBLIC_URL."""

from __future__ import annotations

import mongomock
import pytest

from app import create_app
from helpers import PASSWORD, assert_envelope, book_form, config_for_tests

PUBLIC = "https://books.example.com/library"


def untrusted(host: str) -> str:
    return f"Host '{host}' is not trusted."


@pytest.mark.parametrize("path", ["/", "/healthz", "/books/", "/users/login"])
def test_a_request_for_an_untrusted_host_is_400(client, path):
    response = client.get(path, headers={"Host": "evil.example"})

    assert_envelope(response, 400, untrusted("evil.example"), "Bad Request")


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1:5000"])
def test_development_answers_its_own_machine(client, host):
    assert_envelope(client.get("/healthz", headers={"Host": host}), 200, "ok")


def test_a_forged_host_cannot_reach_the_links_of_a_book_page(client, auth):
    headers = auth.headers()
    assert client.post("/books/", data=book_form(), headers=headers).status_code == 201

    response = client.get("/books/", headers={**headers, "Host": "evil.example"})

    assert_envelope(response, 400, untrusted("evil.example"), "Bad Request")
    assert "Link" not in response.headers


class TestPublicUrl:
    @pytest.fixture
    def app_config(self):
        return {"PUBLIC_URL": PUBLIC + "/", "TRUSTED_HOSTS": "books.example.com, internal.lb"}

    def test_image_url_and_links_are_built_from_public_url_whatever_trusted_host_was_asked(self, client):
        email = "hosts@example.com"
        internal = {"Host": "internal.lb"}
        client.post("/users/", json={"name": "Ada Lovelace", "email": email, "password": PASSWORD}, headers=internal)
        login = client.post("/users/login", json={"email": email, "password": PASSWORD}, headers=internal)
        headers = {"Authorization": f"Bearer {login.get_json()['data']['token']}", "Host": "internal.lb:8000"}
        for title in ("One", "Two"):
            book = assert_envelope(
                client.post("/books/", data=book_form(title=title), headers=headers), 201, "Book created."
            )
            assert book["image_url"].startswith(PUBLIC + "/static/images/books/")

        response = client.get("/books/?per_page=1", headers=headers)

        assert_envelope(response, 200, "Books.")
        assert response.headers["Link"] == (
            f'<{PUBLIC}/books/?page=1&per_page=1>; rel="first", '
            f'<{PUBLIC}/books/?page=2&per_page=1>; rel="next", '
            f'<{PUBLIC}/books/?page=2&per_page=1>; rel="last"'
        )
        with client.get(response.get_json()["data"][0]["image_url"].removeprefix(PUBLIC), headers=headers) as cover:
            assert cover.status_code == 200

    def test_hosts_outside_the_list_are_400_even_the_default_ones(self, client):
        assert_envelope(
            client.get("/healthz", headers={"Host": "localhost"}), 400, untrusted("localhost"), "Bad Request"
        )


def build(tmp_path, **settings):
    return create_app(config_for_tests(tmp_path, MONGO_CLIENT=mongomock.MongoClient(tz_aware=True), **settings))


def test_production_trusts_public_urls_host_by_default(tmp_path):
    client = build(tmp_path, APP_ENV="production", PUBLIC_URL="https://books.example.com").test_client()

    assert_envelope(client.get("/", headers={"Host": "books.example.com"}), 200, "Book Library API")
    assert_envelope(client.get("/", headers={"Host": "localhost"}), 400, untrusted("localhost"), "Bad Request")


def test_a_leading_dot_trusts_every_subdomain(tmp_path):
    client = build(tmp_path, TRUSTED_HOSTS=".example.com").test_client()

    assert_envelope(client.get("/", headers={"Host": "eu.example.com"}), 200, "Book Library API")
    assert_envelope(client.get("/", headers={"Host": "example.org"}), 400, untrusted("example.org"), "Bad Request")
