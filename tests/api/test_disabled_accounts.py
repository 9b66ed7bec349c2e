"""A disabled account: its covers stop being served at once; it and its books are purged later."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest

from helpers import AN_INSTANT, COVER_NOT_FOUND, PASSWORD, assert_envelope, book_form

# The purge is a TTL index: each test runs on both databases.
pytestmark = pytest.mark.each_database


def disable(client, headers):
    return client.delete("/users/", json={"password": PASSWORD}, headers=headers)


def cover_file(book) -> str:
    return book["image_url"].rsplit("/", 1)[1]


def add_books(create_book, headers, *titles):
    return [create_book(headers, title=title) for title in titles]


def test_disabling_an_account_removes_its_cover_files_at_once(client, app, auth, create_book):
    leaving, staying = auth.headers(), auth.headers()
    gone = add_books(create_book, leaving, "Dune", "Emma")
    kept = add_books(create_book, staying, "Dune")

    assert disable(client, leaving).status_code == 204

    for book in gone:
        with client.get(book["image_url"]) as response:
            assert_envelope(response, 404, COVER_NOT_FOUND, "Not Found")
    with client.get(kept[0]["image_url"]) as response:
        assert response.status_code == 200
    assert sorted(os.listdir(app.config["UPLOAD_FOLDER"])) == [cover_file(kept[0])]


def test_a_disabled_account_and_its_books_are_due_for_purge_after_thirty_days(client, db, auth, create_book, clock):
    email = auth.signup()
    headers = auth.headers(email)
    add_books(create_book, headers, "Dune", "Emma")
    other = auth.headers()
    add_books(create_book, other, "Dune")

    assert disable(client, headers).status_code == 204

    user = db.users.find_one({"email": email})
    due = AN_INSTANT + timedelta(days=30)
    assert user["purge_at"] == due
    assert [book["purge_at"] for book in db.books.find({"user_id": user["_id"]})] == [due, due]
    assert db.books.count_documents({"purge_at": {"$exists": True}}) == 2  # the other user's book is not
    assert db.users.count_documents({"purge_at": {"$exists": True}}) == 1


@pytest.mark.parametrize("collection", ["users", "books"])
def test_the_purge_is_a_ttl_index_on_purge_at(db, client, collection):
    client.get("/users/")  # the first request to a database route makes sure of the indexes

    index = db[collection].index_information()["purge"]

    assert index["key"] == [("purge_at", 1)]
    assert index["expireAfterSeconds"] == 0


class TestPurgeDays:
    @pytest.fixture
    def app_config(self):
        return {"ACCOUNT_PURGE_DAYS": 7}

    def test_the_delay_is_configurable(self, client, db, auth, clock):
        email = auth.signup()
        headers = auth.headers(email)
        assert client.post("/books/", data=book_form(), headers=headers).status_code == 201

        assert disable(client, headers).status_code == 204

        assert db.users.find_one({"email": email})["purge_at"] == AN_INSTANT + timedelta(days=7)
