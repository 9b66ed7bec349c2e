"""Cheap re-reads and safe concurrent edits: ETag and If-None-Match (304) on GET /books/<id>,
GET /books/ and GET /users/; If-Match (412) on PUT and DELETE /books/<id>."""

from __future__ import annotations

import io

import pytest

from helpers import BOOK_NOT_FOUND, assert_envelope, book_form, image_bytes

BOOK_CHANGED = "The book has changed since you read it (its ETag no longer matches); read it again."


@pytest.fixture
def headers(auth):
    return auth.headers()


@pytest.fixture
def book(client, headers):
    return assert_envelope(client.post("/books/", data=book_form(title="Dune"), headers=headers), 201, "Book created.")


def updated(response) -> dict:
    return assert_envelope(response, 200, "Book updated.")


def read(client, headers, book) -> dict:
    return assert_envelope(client.get(f"/books/{book['id']}", headers=headers), 200, "Book.")


def etag_of(client, headers, url):
    response = client.get(url, headers=headers)
    assert response.status_code == 200
    assert response.headers["ETag"].startswith('"')
    return response.headers["ETag"]


# --- ETag and If-None-Match ------------------------------------------------------------


@pytest.mark.parametrize("url", ["/books/{id}", "/books/", "/books/?limit=5", "/books/?page=1&per_page=5", "/users/"])
def test_get_with_the_current_etag_is_304_without_a_body(client, headers, book, url):
    url = url.format(id=book["id"])
    etag = etag_of(client, headers, url)

    response = client.get(url, headers={**headers, "If-None-Match": etag})

    assert response.status_code == 304
    assert response.data == b""
    assert response.headers["ETag"] == etag


@pytest.mark.parametrize("url", ["/books/{id}", "/books/", "/users/"])
def test_get_with_an_old_etag_is_200_with_the_new_state_and_etag(client, headers, book, url):
    url = url.format(id=book["id"])
    old = etag_of(client, headers, url)
    updated(client.put(f"/books/{book['id']}", json={"title": "Dune Messiah"}, headers=headers))
    assert_envelope(client.put("/users/", json={"name": "Grace Hopper"}, headers=headers), 200, "Account updated.")

    response = client.get(url, headers={**headers, "If-None-Match": old})

    assert response.status_code == 200
    assert response.headers["ETag"] != old
    assert response.get_json()["data"]


def test_etag_is_the_same_on_every_read_of_an_unchanged_state(client, headers, book):
    for url in (f"/books/{book['id']}", "/books/", "/users/"):
        assert etag_of(client, headers, url) == etag_of(client, headers, url)


@pytest.mark.each_database
def test_list_etag_changes_when_a_book_is_added_or_deleted(client, headers, book):
    before = etag_of(client, headers, "/books/?limit=10")
    other = assert_envelope(client.post("/books/", data=book_form(title="Emma"), headers=headers), 201, "Book created.")
    added = etag_of(client, headers, "/books/?limit=10")
    assert client.delete(f"/books/{other['id']}", headers=headers).status_code == 204
    assert len({before, added, etag_of(client, headers, "/books/?limit=10")}) == 2  # back to the first
    assert before != added


def test_another_users_book_is_404_whatever_the_etag(client, auth, headers, book):
    etag = etag_of(client, headers, f"/books/{book['id']}")
    response = client.get(f"/books/{book['id']}", headers={**auth.headers(), "If-None-Match": etag})
    assert_envelope(response, 404, BOOK_NOT_FOUND, "Not Found")


def test_if_none_match_star_is_304_for_an_existing_book(client, headers, book):
    response = client.get(f"/books/{book['id']}", headers={**headers, "If-None-Match": "*"})
    assert response.status_code == 304


# --- If-Match on PUT and DELETE -----------------------------------------------------------


def put(client, headers, book, if_match=None, **kwargs):
    extra = {"If-Match": if_match} if if_match is not None else {}
    return client.put(f"/books/{book['id']}", headers={**headers, **extra}, **kwargs)


def delete(client, headers, book, if_match=None):
    extra = {"If-Match": if_match} if if_match is not None else {}
    return client.delete(f"/books/{book['id']}", headers={**headers, **extra})


@pytest.mark.each_database
def test_put_with_the_current_etag_changes_the_book_and_returns_the_new_etag(client, headers, book):
    etag = etag_of(client, headers, f"/books/{book['id']}")

    response = put(client, headers, book, etag, json={"title": "Dune Messiah"})

    assert updated(response)["title"] == "Dune Messiah"
    assert response.headers["ETag"] not in ("", etag)
    assert response.headers["ETag"] == etag_of(client, headers, f"/books/{book['id']}")


@pytest.mark.each_database
def test_second_tab_editing_with_the_same_etag_gets_412_and_changes_nothing(client, headers, book):
    etag = etag_of(client, headers, f"/books/{book['id']}")
    updated(put(client, headers, book, etag, json={"title": "First tab"}))

    response = put(client, headers, book, etag, json={"title": "Second tab"})

    assert_envelope(response, 412, BOOK_CHANGED, "Precondition Failed")
    assert read(client, headers, book)["title"] == "First tab"


@pytest.mark.each_cover_storage
def test_stale_put_with_a_new_cover_is_412_and_keeps_the_old_cover(client, headers, book):
    etag = etag_of(client, headers, f"/books/{book['id']}")
    updated(put(client, headers, book, json={"description": "Changed elsewhere."}))
    form = {"cover_image": (io.BytesIO(image_bytes("GIF")), "new.gif")}

    assert_envelope(put(client, headers, book, etag, data=form), 412, BOOK_CHANGED, "Precondition Failed")

    current = read(client, headers, book)
    assert current["image_url"] == book["image_url"]
    with client.get(book["image_url"]) as cover:
        assert cover.status_code == 200


def test_put_and_delete_without_if_match_behave_as_before(client, headers, book):
    etag = etag_of(client, headers, f"/books/{book['id']}")
    updated(put(client, headers, book, json={"title": "Changed"}))
    updated(put(client, headers, book, json={"title": "Changed again"}))
    assert delete(client, headers, book).status_code == 204
    assert_envelope(delete(client, headers, book, etag), 404, BOOK_NOT_FOUND, "Not Found")


@pytest.mark.each_database
def test_delete_with_a_stale_etag_is_412_and_the_book_stays(client, headers, book):
    etag = etag_of(client, headers, f"/books/{book['id']}")
    updated(put(client, headers, book, json={"category": "fantasy"}))

    assert_envelope(delete(client, headers, book, etag), 412, BOOK_CHANGED, "Precondition Failed")
    assert read(client, headers, book)["category"] == "fantasy"


@pytest.mark.each_database
def test_delete_with_the_current_etag_deletes_the_book(client, headers, book):
    etag = etag_of(client, headers, f"/books/{book['id']}")
    assert delete(client, headers, book, etag).status_code == 204
    assert_envelope(client.get(f"/books/{book['id']}", headers=headers), 404, BOOK_NOT_FOUND, "Not Found")


@pytest.mark.parametrize(
    "if_match",
    [
        pytest.param("*", id="any-state"),
        pytest.param('"nope", {current}', id="one-of-several"),
    ],
)
def test_if_match_lists_and_star_match_the_current_state(client, headers, book, if_match):
    current = etag_of(client, headers, f"/books/{book['id']}")
    assert updated(put(client, headers, book, if_match.format(current=current), json={"title": "Matched"}))


@pytest.mark.parametrize(
    "if_match",
    [
        pytest.param('"0123456789abcdef"', id="another-tag"),
        pytest.param("W/{current}", id="weak-form-of-the-current-tag"),
        pytest.param("not quoted", id="unquoted"),
    ],
)
def test_if_match_that_does_not_name_the_current_state_is_412(client, headers, book, if_match):
    current = etag_of(client, headers, f"/books/{book['id']}")
    response = put(client, headers, book, if_match.format(current=current), json={"title": "Nope"})
    assert_envelope(response, 412, BOOK_CHANGED, "Precondition Failed")


def test_if_match_on_another_users_book_is_404(client, auth, headers, book):
    etag = etag_of(client, headers, f"/books/{book['id']}")
    stranger = auth.headers()
    assert_envelope(put(client, stranger, book, etag, json={"title": "Mine"}), 404, BOOK_NOT_FOUND, "Not Found")
    assert_envelope(delete(client, stranger, book, etag), 404, BOOK_NOT_FOUND, "Not Found")


@pytest.mark.each_database
def test_book_from_before_versions_is_matched_by_its_etag(client, headers, book, db):
    db.books.update_many({}, {"$unset": {"version": ""}})
    etag = etag_of(client, headers, f"/books/{book['id']}")

    updated(put(client, headers, book, etag, json={"title": "Versioned now"}))

    assert_envelope(put(client, headers, book, etag, json={"title": "Stale"}), 412, BOOK_CHANGED, "Precondition Failed")


# --- the contract says so -----------------------------------------------------------------


def test_openapi_documents_etags_conditional_gets_and_if_match(client):
    paths = client.get("/openapi.json").get_json()["paths"]

    for path in ("/books/{book_id}", "/books/", "/users/"):
        operation = paths[path]["get"]
        assert "If-None-Match" in {p["name"] for p in operation["parameters"] if p["in"] == "header"}
        assert "304" in operation["responses"]
        assert "ETag" in operation["responses"]["200"]["headers"]
    for method in ("put", "delete"):
        operation = paths["/books/{book_id}"][method]
        assert "If-Match" in {p["name"] for p in operation["parameters"] if p["in"] == "header"}
        assert "Precondition Failed" in operation["responses"]["412"]["description"]
    assert "ETag" in paths["/books/{book_id}"]["put"]["responses"]["200"]["headers"]
    list_parameters = set()
    for parameter in paths["/books/"]["get"]["parameters"]:
        schema = parameter["schema"]
        if parameter["in"] == "query" and parameter.get("explode") and schema.get("type") == "object":
            # page and per_page, or limit and after: one exploded object, one group at a time
            list_parameters |= {name for branch in schema["anyOf"] for name in branch["properties"]}
        elif parameter["in"] == "query":
            list_parameters.add(parameter["name"])
    assert {"page", "per_page", "limit", "after", "category"} <= list_parameters
