"""The first thing to run: the app answers, and a book goes in and comes back out."""

import pytest

from helpers import assert_envelope


def test_banner_answers_200_in_the_envelope(client):
    assert assert_envelope(client.get("/"), 200, "Book Library API")["name"] == "book-library"


@pytest.mark.each_cover_storage
def test_a_created_book_is_listed_and_its_cover_served(client, auth, create_book):
    headers = auth.headers()
    book = create_book(headers)
    listed = assert_envelope(client.get("/books/", headers=headers), 200, "Books.")
    assert [b["id"] for b in listed] == [book["id"]]
    with client.get(book["image_url"]) as image:
        assert image.status_code == 200
