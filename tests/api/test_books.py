"""Books over HTTP: create, validate, own, list, update and delete, on both database backends."""

from __future__ import annotations

import io
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import pytest
from PIL import Image

from helpers import (
    AN_INSTANT,
    BOOK_NOT_FOUND,
    DUPLICATE_TITLE,
    INVALID_FIELDS,
    NOT_A_STRING,
    REQUIRED,
    WRONG_METHOD,
    assert_envelope,
    book_form,
    image_bytes,
)

TINY_COVER = image_bytes("PNG", size=(8, 8))
BLANK_FILE = object()  # stands for Postman's blank file field, built afresh for each request
OTHER_ID = "5f0c9a1b2c3d4e5f6a7b8c9d"  # a well-formed ObjectId that no book has

TITLE_LENGTH = "Title must be 1 to 200 characters."
DESCRIPTION_LENGTH = "Description must be at most 2000 characters."
CATEGORY_UNKNOWN = (
    "Category must be one of: romance, poetry, politics, picture book, science, fantasy, horror, thriller."
)
UNREADABLE_COVER = "Cover image must be a JPEG, PNG, GIF or WebP image."
COVER_REQUIRED = "A cover image file is required."
NOTHING_TO_CHANGE = "Send at least one of title, description, category or cover_image."
FORM_ONLY = "Content-Type must be multipart/form-data with a cover_image file."
FORM_OR_JSON = "Content-Type must be multipart/form-data, application/x-www-form-urlencoded or application/json."


def user_id(client, headers):
    return assert_envelope(client.get("/users/", headers=headers), 200, "Current user.")["id"]


def book_url(book_or_id):
    return f"/books/{book_or_id['id'] if isinstance(book_or_id, dict) else book_or_id}"


def get_book(client, headers, book):
    return assert_envelope(client.get(book_url(book), headers=headers), 200, "Book.")


def listed(client, headers, query=""):
    response = client.get(f"/books/{query}", headers=headers)
    data = assert_envelope(response, 200, "Books.")
    return data, response.get_json()["meta"]


def fresh_files(form):
    """The form with each BLANK_FILE replaced by an empty, nameless file part."""
    return {key: (io.BytesIO(b""), "") if value is BLANK_FILE else value for key, value in form.items()}


def create_many(create_book, headers, count):
    return [create_book(headers, title=f"Book {n:03d}", cover=TINY_COVER) for n in range(count)]


def parse_time(value):
    assert isinstance(value, str)
    parsed = datetime.fromisoformat(value)
    assert parsed.utcoffset() == timedelta(0)
    return parsed


# --- create -----------------------------------------------------------------


def test_create_book_is_201_with_the_book(client, auth):
    headers = auth.headers()
    response = client.post("/books/", data=book_form(), headers=headers)
    book = assert_envelope(response, 201, "Book created.")
    assert set(book) == {
        "id",
        "title",
        "description",
        "category",
        "image_url",
        "user_id",
        "created_at",
        "updated_at",
    }
    assert book["title"] == "Dune"
    assert book["description"] == "Spice and sand."
    assert book["category"] == "science"
    assert book["user_id"] == user_id(client, headers)
    assert len(book["id"]) == 24


@pytest.mark.each_cover_storage
def test_create_book_image_url_is_absolute_and_serves_the_cover(client, auth, create_book):
    book = create_book(auth.headers(), cover=image_bytes("PNG", size=(300, 200)))
    url = urlsplit(book["image_url"])
    assert url.scheme == "http"
    assert url.netloc
    assert url.path.startswith("/static/images/books/")
    with client.get(book["image_url"]) as served:
        assert served.status_code == 200
        assert served.mimetype == "image/png"
        with Image.open(io.BytesIO(served.get_data())) as image:
            assert image.format == "PNG"


def test_create_book_timestamps_are_the_moment_of_creation_in_iso_utc(client, auth, create_book, clock):
    book = create_book(auth.headers())
    assert parse_time(book["created_at"]) == parse_time(book["updated_at"]) == AN_INSTANT


@pytest.mark.each_database
def test_create_book_owner_is_the_caller_even_if_form_sends_user_id(client, auth):
    headers, other = auth.headers(), auth.headers()
    form = book_form()
    form["user_id"] = user_id(client, other)
    book = assert_envelope(client.post("/books/", data=form, headers=headers), 201, "Book created.")
    assert book["user_id"] == user_id(client, headers)
    assert get_book(client, headers, book)["user_id"] == user_id(client, headers)
    assert_envelope(client.get(book_url(book), headers=other), 404, BOOK_NOT_FOUND, "Not Found")
    assert listed(client, other)[0] == []


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"title": "t" * 200}, {"title": "t" * 200}),
        ({"title": "  Dune  "}, {"title": "Dune"}),
        ({"description": "d" * 2000}, {"description": "d" * 2000}),
        ({"description": ""}, {"description": ""}),
        ({"description": None}, {"description": ""}),  # None: the field is not sent at all
        ({"category": "Picture Book"}, {"category": "picture book"}),
        ({"category": "  PICTURE   book "}, {"category": "picture book"}),
        ({"category": "HORROR"}, {"category": "horror"}),
    ],
    ids=[
        "title-200-chars",
        "title-padded",
        "description-2000-chars",
        "description-empty",
        "description-omitted",
        "category-mixed-case",
        "category-odd-spacing",
        "category-upper-case",
    ],
)
def test_create_book_accepts_valid_fields(client, auth, fields, expected):
    headers = auth.headers()
    form = book_form()
    for key, value in fields.items():
        if value is None:
            del form[key]
        else:
            form[key] = value
    book = assert_envelope(client.post("/books/", data=form, headers=headers), 201, "Book created.")
    for key, value in expected.items():
        assert book[key] == value
        assert get_book(client, headers, book)[key] == value


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"title": ""}, "title", TITLE_LENGTH),
        ({"title": "   "}, "title", TITLE_LENGTH),
        ({"title": "t" * 201}, "title", TITLE_LENGTH),
        ({"title": None}, "title", REQUIRED),
        ({"description": "d" * 2001}, "description", DESCRIPTION_LENGTH),
        ({"category": "cooking"}, "category", CATEGORY_UNKNOWN),
        ({"category": ""}, "category", CATEGORY_UNKNOWN),
        ({"category": "picturebook"}, "category", CATEGORY_UNKNOWN),
        ({"category": None}, "category", REQUIRED),
        ({"cover_image": None}, "cover_image", COVER_REQUIRED),
        ({"cover_image": BLANK_FILE}, "cover_image", COVER_REQUIRED),
        ({"cover_image": "not a file"}, "cover_image", COVER_REQUIRED),
    ],
    ids=[
        "title-empty",
        "title-whitespace",
        "title-201-chars",
        "title-missing",
        "description-2001-chars",
        "category-unknown",
        "category-empty",
        "category-unspaced",
        "category-missing",
        "cover-missing",
        "cover-blank-part",
        "cover-as-text-field",
    ],
)
def test_create_book_with_invalid_field_is_400(client, auth, fields, field, message):
    headers = auth.headers()
    form = book_form()
    for key, value in fields.items():
        if value is None:
            form.pop(key, None)
        else:
            form[key] = value
    response = client.post("/books/", data=fresh_files(form), headers=headers)
    assert_envelope(response, 400, INVALID_FIELDS, {field: message})
    assert listed(client, headers)[1]["total"] == 0


def test_create_book_reports_every_bad_field_at_once(client, auth):
    headers = auth.headers()
    form = {"title": " ", "description": "d" * 2001, "category": "cooking"}
    response = client.post("/books/", data=form, headers=headers)
    assert_envelope(
        response,
        400,
        INVALID_FIELDS,
        {
            "title": TITLE_LENGTH,
            "description": DESCRIPTION_LENGTH,
            "category": CATEGORY_UNKNOWN,
            "cover_image": COVER_REQUIRED,
        },
    )


@pytest.mark.parametrize(
    "request_kwargs",
    [
        {"json": {"title": "Dune", "category": "science", "description": "Spice."}},
        {"data": "title=Dune", "content_type": "text/plain"},
        {},
    ],
    ids=["json", "text-plain", "no-body"],
)
def test_create_book_without_a_form_is_415(client, auth, request_kwargs):
    headers = auth.headers()
    response = client.post("/books/", headers=headers, **request_kwargs)
    assert_envelope(response, 415, FORM_ONLY, "Unsupported Media Type")
    assert listed(client, headers)[1]["total"] == 0


@pytest.mark.each_database
@pytest.mark.parametrize("duplicate", ["Dune", "dune", "  DUNE  ", "DuNe"])
def test_create_book_with_duplicate_title_is_409(client, auth, create_book, duplicate):
    headers = auth.headers()
    create_book(headers, title="Dune")
    response = client.post("/books/", data=book_form(title=duplicate), headers=headers)
    assert_envelope(response, 409, DUPLICATE_TITLE, "Conflict")
    assert listed(client, headers)[1]["total"] == 1


@pytest.mark.each_database
def test_create_book_with_title_differing_only_in_inner_spacing_is_409(client, auth, create_book):
    headers = auth.headers()
    create_book(headers, title="The Left Hand of Darkness")
    response = client.post("/books/", data=book_form(title="the  left hand\u00a0of darkness"), headers=headers)
    assert_envelope(response, 409, DUPLICATE_TITLE, "Conflict")


@pytest.mark.each_database
def test_same_title_for_another_user_is_allowed(client, auth, create_book):
    first, second = auth.headers(), auth.headers()
    create_book(first, title="Dune")
    book = create_book(second, title="Dune")
    assert book["user_id"] == user_id(client, second)
    assert listed(client, first)[1]["total"] == 1
    assert listed(client, second)[1]["total"] == 1


@pytest.mark.each_database
def test_title_is_free_again_after_the_book_is_deleted(client, auth, create_book):
    headers = auth.headers()
    book = create_book(headers, title="Dune")
    assert client.delete(book_url(book), headers=headers).status_code == 204
    create_book(headers, title="Dune")


# --- read, ownership and ids ---------------------------------------------------


def test_get_own_book_is_200(client, auth, create_book):
    headers = auth.headers()
    book = create_book(headers)
    assert get_book(client, headers, book) == book


@pytest.mark.each_database
def test_get_book_of_another_user_is_404(client, auth, create_book):
    owner, stranger = auth.headers(), auth.headers()
    book = create_book(owner)
    assert_envelope(client.get(book_url(book), headers=stranger), 404, BOOK_NOT_FOUND, "Not Found")


@pytest.mark.each_database
def test_update_book_of_another_user_is_404_and_book_unchanged(client, auth, create_book):
    owner, stranger = auth.headers(), auth.headers()
    book = create_book(owner)
    response = client.put(
        book_url(book), json={"title": "Stolen", "user_id": user_id(client, stranger)}, headers=stranger
    )
    assert_envelope(response, 404, BOOK_NOT_FOUND, "Not Found")
    assert get_book(client, owner, book) == book


@pytest.mark.each_database
def test_update_book_of_another_user_with_a_form_is_404_and_book_unchanged(client, auth, create_book):
    owner, stranger = auth.headers(), auth.headers()
    book = create_book(owner)
    response = client.put(
        book_url(book), data={"title": "Stolen"}, headers=stranger, content_type="application/x-www-form-urlencoded"
    )
    assert_envelope(response, 404, BOOK_NOT_FOUND, "Not Found")
    assert get_book(client, owner, book) == book


@pytest.mark.each_cover_storage
def test_delete_book_of_another_user_is_404_and_book_kept(client, auth, create_book):
    owner, stranger = auth.headers(), auth.headers()
    book = create_book(owner)
    assert_envelope(client.delete(book_url(book), headers=stranger), 404, BOOK_NOT_FOUND, "Not Found")
    assert get_book(client, owner, book) == book
    with client.get(book["image_url"]) as served:
        assert served.status_code == 200


@pytest.mark.parametrize("method", ["get", "put", "delete"])
@pytest.mark.parametrize(
    "bad_id",
    ["abc", "123", "a" * 25, "z" * 24, "5f0c9a1b2c3d4e5f6a7b8c9", "5f0c9a1b2c3d4e5f6a7b8c9d0", "%00", "null"],
)
def test_malformed_book_id_is_the_same_json_404_as_a_missing_book(client, auth, method, bad_id):
    headers = auth.headers()
    kwargs = {"json": {"title": "New"}} if method == "put" else {}
    response = getattr(client, method)(f"/books/{bad_id}", headers=headers, **kwargs)
    assert_envelope(response, 404, BOOK_NOT_FOUND, "Not Found")


@pytest.mark.each_database
@pytest.mark.parametrize("method", ["get", "put", "delete"])
def test_nonexistent_book_id_is_404(client, auth, create_book, method):
    headers = auth.headers()
    create_book(headers)
    kwargs = {"json": {"title": "New"}} if method == "put" else {}
    response = getattr(client, method)(book_url(OTHER_ID), headers=headers, **kwargs)
    assert_envelope(response, 404, BOOK_NOT_FOUND, "Not Found")


def test_books_collection_answers_without_a_trailing_slash(client, auth):
    headers = auth.headers()
    book = assert_envelope(client.post("/books", data=book_form(), headers=headers), 201, "Book created.")
    data, meta = listed(client, headers)
    assert assert_envelope(client.get("/books", headers=headers), 200, "Books.") == data == [book]
    assert meta["total"] == 1


def test_wrong_method_on_a_book_is_405_with_allow_header(client, auth, create_book):
    headers = auth.headers()
    book = create_book(headers)
    response = client.patch(book_url(book), json={"title": "New"}, headers=headers)
    assert_envelope(response, 405, WRONG_METHOD, "Method Not Allowed")
    assert {"GET", "PUT", "DELETE"} <= set(response.allow)


# --- list ---------------------------------------------------------------------


@pytest.mark.each_database
def test_list_of_an_empty_library_is_empty(client, auth):
    data, meta = listed(client, auth.headers())
    assert data == []
    assert meta == {"paging": "page", "page": 1, "per_page": 20, "total": 0, "pages": 0}


@pytest.mark.each_database
def test_list_shows_only_own_books(client, auth, create_book):
    mine, theirs = auth.headers(), auth.headers()
    own = [create_book(mine, title="Dune"), create_book(mine, title="Emma")]
    create_book(theirs, title="Ulysses")
    data, meta = listed(client, mine)
    assert sorted(b["id"] for b in data) == sorted(b["id"] for b in own)
    assert {b["user_id"] for b in data} == {user_id(client, mine)}
    assert meta["total"] == 2


@pytest.mark.each_database
def test_list_is_newest_first(client, auth, create_book):
    headers = auth.headers()
    books = create_many(create_book, headers, 5)
    data, _ = listed(client, headers)
    assert [b["id"] for b in data] == [b["id"] for b in reversed(books)]
    assert data[0] == books[-1]


@pytest.mark.each_database
def test_list_order_is_by_creation_not_by_update(client, auth, create_book):
    headers = auth.headers()
    books = create_many(create_book, headers, 3)
    response = client.put(book_url(books[0]), json={"description": "edited"}, headers=headers)
    assert_envelope(response, 200, "Book updated.")
    data, _ = listed(client, headers)
    assert [b["id"] for b in data] == [b["id"] for b in reversed(books)]


@pytest.mark.each_database
def test_list_defaults_to_20_per_page_with_meta(client, auth, create_book):
    headers = auth.headers()
    books = create_many(create_book, headers, 21)
    data, meta = listed(client, headers)
    assert [b["id"] for b in data] == [b["id"] for b in reversed(books[1:])]
    assert meta == {"paging": "page", "page": 1, "per_page": 20, "total": 21, "pages": 2}


@pytest.mark.each_database
def test_list_page_2_holds_the_remaining_books(client, auth, create_book):
    headers = auth.headers()
    books = create_many(create_book, headers, 21)
    data, meta = listed(client, headers, "?page=2")
    assert [b["id"] for b in data] == [books[0]["id"]]
    assert meta == {"paging": "page", "page": 2, "per_page": 20, "total": 21, "pages": 2}


@pytest.mark.each_database
def test_list_pages_with_a_custom_per_page_cover_every_book_once(client, auth, create_book):
    headers = auth.headers()
    books = create_many(create_book, headers, 7)
    seen = []
    for page in (1, 2, 3):
        data, meta = listed(client, headers, f"?page={page}&per_page=3")
        assert meta == {"paging": "page", "page": page, "per_page": 3, "total": 7, "pages": 3}
        seen += [b["id"] for b in data]
    assert seen == [b["id"] for b in reversed(books)]


@pytest.mark.each_database
def test_list_per_page_100_is_allowed(client, auth, create_book):
    headers = auth.headers()
    books = create_many(create_book, headers, 21)
    data, meta = listed(client, headers, "?per_page=100")
    assert len(data) == 21
    assert meta == {"paging": "page", "page": 1, "per_page": 100, "total": len(books), "pages": 1}


@pytest.mark.each_database
def test_list_page_past_the_end_is_empty(client, auth, create_book):
    headers = auth.headers()
    create_book(headers)
    data, meta = listed(client, headers, "?page=3")
    assert data == []
    assert meta == {"paging": "page", "page": 3, "per_page": 20, "total": 1, "pages": 1}


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ("?per_page=101", "per_page", "Must be at most 100."),
        ("?per_page=0", "per_page", "Must be at least 1."),
        ("?per_page=-1", "per_page", "Must be at least 1."),
        ("?per_page=abc", "per_page", "Must be a whole number."),
        ("?per_page=2.5", "per_page", "Must be a whole number."),
        ("?page=0", "page", "Must be at least 1."),
        ("?page=-3", "page", "Must be at least 1."),
        ("?page=abc", "page", "Must be a whole number."),
        ("?page=", "page", "Must be a whole number."),
        ("?page=99999999999999999999", "page", "Must be at most 1000000."),
        ("?category=cooking", "category", CATEGORY_UNKNOWN),
    ],
)
def test_list_with_invalid_query_is_400(client, auth, query, field, message):
    response = client.get(f"/books/{query}", headers=auth.headers())
    assert_envelope(response, 400, INVALID_FIELDS, {field: message})


def test_list_with_several_invalid_parameters_names_each(client, auth):
    response = client.get("/books/?page=0&per_page=101&category=cooking", headers=auth.headers())
    expected = {"page": "Must be at least 1.", "per_page": "Must be at most 100.", "category": CATEGORY_UNKNOWN}
    assert_envelope(response, 400, INVALID_FIELDS, expected)


@pytest.mark.each_database
@pytest.mark.parametrize("category", ["science", "SCIENCE", "Science"])
def test_list_with_a_category_in_any_case_shows_only_that_category(client, auth, create_book, category):
    headers = auth.headers()
    science = [create_book(headers, title=f"Science {n}", category="science", cover=TINY_COVER) for n in range(3)]
    create_book(headers, title="Romance", category="romance", cover=TINY_COVER)
    data, meta = listed(client, headers, f"?category={category}&per_page=2")
    assert [b["id"] for b in data] == [science[2]["id"], science[1]["id"]]
    assert meta == {"paging": "page", "page": 1, "per_page": 2, "total": 3, "pages": 2}


@pytest.mark.each_database
def test_list_with_a_two_word_category_shows_only_that_category(client, auth, create_book):
    headers = auth.headers()
    picture = create_book(headers, title="Gruffalo", category="picture book")
    create_book(headers, title="Dune", category="science")
    data, meta = listed(client, headers, "?category=Picture%20Book")
    assert [b["id"] for b in data] == [picture["id"]]
    assert meta["total"] == 1


# --- update -------------------------------------------------------------------


def test_update_book_with_json_changes_the_fields_and_keeps_id_cover_and_owner(client, auth, create_book):
    headers = auth.headers()
    book = create_book(headers)
    changes = {"title": "Dune Messiah", "description": "The sequel.", "category": "Fantasy"}
    updated = assert_envelope(client.put(book_url(book), json=changes, headers=headers), 200, "Book updated.")
    assert (updated["title"], updated["description"], updated["category"]) == (
        "Dune Messiah",
        "The sequel.",
        "fantasy",
    )
    assert (updated["id"], updated["image_url"], updated["user_id"]) == (
        book["id"],
        book["image_url"],
        book["user_id"],
    )
    assert get_book(client, headers, book) == updated


def test_update_book_with_an_urlencoded_form_changes_only_the_sent_field(client, auth, create_book):
    headers = auth.headers()
    book = create_book(headers)
    response = client.put(
        book_url(book),
        data={"description": "Edited & re-read."},
        headers=headers,
        content_type="application/x-www-form-urlencoded",
    )
    updated = assert_envelope(response, 200, "Book updated.")
    assert updated["description"] == "Edited & re-read."
    assert (updated["title"], updated["category"]) == (book["title"], book["category"])
    assert get_book(client, headers, book) == updated


@pytest.mark.each_cover_storage
def test_update_book_with_multipart_fields_and_no_file_keeps_the_cover(client, auth, create_book):
    headers = auth.headers()
    book = create_book(headers)
    response = client.put(
        book_url(book),
        data={"title": "Children of Dune", "category": "thriller"},
        headers=headers,
        content_type="multipart/form-data",
    )
    updated = assert_envelope(response, 200, "Book updated.")
    assert (updated["title"], updated["category"], updated["description"]) == (
        "Children of Dune",
        "thriller",
        book["description"],
    )
    assert updated["image_url"] == book["image_url"]


@pytest.mark.each_cover_storage
def test_update_book_with_multipart_fields_and_a_new_cover_replaces_both(client, auth, create_book):
    headers = auth.headers()
    book = create_book(headers, cover=image_bytes("PNG"))
    form = {"title": "Heretics of Dune", "cover_image": (io.BytesIO(image_bytes("JPEG")), "new.jpg")}
    updated = assert_envelope(client.put(book_url(book), data=form, headers=headers), 200, "Book updated.")
    assert updated["title"] == "Heretics of Dune"
    assert updated["image_url"] != book["image_url"]
    assert updated["image_url"].endswith(".jpg")
    with client.get(updated["image_url"]) as served:
        assert served.status_code == 200
        assert served.mimetype == "image/jpeg"
    assert get_book(client, headers, book) == updated


@pytest.mark.each_cover_storage
def test_update_book_with_only_a_new_cover_keeps_the_fields(client, auth, create_book):
    headers = auth.headers()
    book = create_book(headers)
    form = {"cover_image": (io.BytesIO(image_bytes("GIF")), "new.gif")}
    updated = assert_envelope(client.put(book_url(book), data=form, headers=headers), 200, "Book updated.")
    assert updated["image_url"] != book["image_url"]
    assert {k: updated[k] for k in ("title", "description", "category")} == {
        k: book[k] for k in ("title", "description", "category")
    }


@pytest.mark.parametrize(
    "request_kwargs",
    [
        {"json": {}},
        {"json": {"author": "Frank Herbert"}},
        {"json": {"user_id": OTHER_ID}},
        {"json": {"title": None}},
        {"data": {"author": "Frank Herbert"}, "content_type": "application/x-www-form-urlencoded"},
        {"data": {"author": "Frank Herbert"}, "content_type": "multipart/form-data"},
        {"data": {"cover_image": BLANK_FILE}, "content_type": "multipart/form-data"},
    ],
    ids=[
        "json-empty",
        "json-unknown",
        "json-user-id",
        "json-null-title",
        "urlencoded-unknown",
        "multipart-unknown",
        "multipart-blank-file",
    ],
)
def test_update_book_without_known_fields_is_400(client, auth, create_book, request_kwargs):
    headers = auth.headers()
    book = create_book(headers)
    if "data" in request_kwargs:
        request_kwargs = dict(request_kwargs, data=fresh_files(request_kwargs["data"]))
    response = client.put(book_url(book), headers=headers, **request_kwargs)
    assert_envelope(response, 400, INVALID_FIELDS, {"body": NOTHING_TO_CHANGE})
    assert get_book(client, headers, book) == book


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"title": ""}, "title", TITLE_LENGTH),
        ({"title": "   "}, "title", TITLE_LENGTH),
        ({"title": "t" * 201}, "title", TITLE_LENGTH),
        ({"title": 42}, "title", NOT_A_STRING),
        ({"description": "d" * 2001}, "description", DESCRIPTION_LENGTH),
        ({"description": ["a"]}, "description", NOT_A_STRING),
        ({"category": "cooking"}, "category", CATEGORY_UNKNOWN),
        ({"category": ""}, "category", CATEGORY_UNKNOWN),
    ],
)
def test_update_book_with_invalid_field_is_400_and_book_unchanged(client, auth, create_book, changes, field, message):
    headers = auth.headers()
    book = create_book(headers)
    response = client.put(book_url(book), json=changes, headers=headers)
    assert_envelope(response, 400, INVALID_FIELDS, {field: message})
    assert get_book(client, headers, book) == book


def test_update_book_reports_every_bad_field_at_once(client, auth, create_book):
    headers = auth.headers()
    book = create_book(headers)
    changes = {"title": "", "description": "d" * 2001, "category": "cooking"}
    response = client.put(book_url(book), json=changes, headers=headers)
    expected = {"title": TITLE_LENGTH, "description": DESCRIPTION_LENGTH, "category": CATEGORY_UNKNOWN}
    assert_envelope(response, 400, INVALID_FIELDS, expected)


def test_update_book_with_bad_fields_and_a_bad_cover_lists_them_all(client, auth, create_book):
    headers = auth.headers()
    book = create_book(headers)
    form = {"title": "", "category": "cooking", "cover_image": (io.BytesIO(b"not an image"), "new.png")}
    response = client.put(book_url(book), data=form, headers=headers)
    expected = {"title": TITLE_LENGTH, "category": CATEGORY_UNKNOWN, "cover_image": UNREADABLE_COVER}
    assert_envelope(response, 400, INVALID_FIELDS, expected)
    assert get_book(client, headers, book) == book


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"title": "t" * 200}, {"title": "t" * 200}),
        ({"description": "d" * 2000}, {"description": "d" * 2000}),
        ({"description": ""}, {"description": ""}),
        ({"category": "Picture Book"}, {"category": "picture book"}),
    ],
    ids=["title-200-chars", "description-2000-chars", "description-cleared", "category-mixed-case"],
)
def test_update_book_accepts_valid_fields(client, auth, create_book, changes, expected):
    headers = auth.headers()
    book = create_book(headers)
    response = client.put(book_url(book), json=changes, headers=headers)
    updated = assert_envelope(response, 200, "Book updated.")
    assert {k: updated[k] for k in expected} == expected
    assert get_book(client, headers, book) == updated


@pytest.mark.parametrize(
    "request_kwargs",
    [{"data": '{"title": "New"}', "content_type": "text/plain"}, {}],
    ids=["text-plain", "no-body"],
)
def test_update_book_with_unsupported_content_type_is_415(client, auth, create_book, request_kwargs):
    headers = auth.headers()
    book = create_book(headers)
    response = client.put(book_url(book), headers=headers, **request_kwargs)
    assert_envelope(response, 415, FORM_OR_JSON, "Unsupported Media Type")
    assert get_book(client, headers, book) == book


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('{"title": ', "Request body is not valid JSON."),
        ("[]", "Request body must be a JSON object."),
        ('"Dune"', "Request body must be a JSON object."),
        ("null", "Request body must be a JSON object."),
    ],
    ids=["broken", "array", "string", "null"],
)
def test_update_book_with_malformed_json_is_400(client, auth, create_book, body, message):
    headers = auth.headers()
    book = create_book(headers)
    response = client.put(book_url(book), data=body, content_type="application/json", headers=headers)
    assert_envelope(response, 400, INVALID_FIELDS, {"body": message})
    assert get_book(client, headers, book) == book


@pytest.mark.each_database
@pytest.mark.parametrize("other_title", ["Emma", "emma", "  EMMA "])
def test_update_title_to_another_own_title_is_409_and_book_unchanged(client, auth, create_book, other_title):
    headers = auth.headers()
    book = create_book(headers, title="Dune")
    create_book(headers, title="Emma")
    response = client.put(book_url(book), json={"title": other_title}, headers=headers)
    assert_envelope(response, 409, DUPLICATE_TITLE, "Conflict")
    assert get_book(client, headers, book) == book


@pytest.mark.each_database
def test_update_title_to_a_title_of_another_user_is_allowed(client, auth, create_book):
    headers, other = auth.headers(), auth.headers()
    book = create_book(headers, title="Dune")
    create_book(other, title="Emma")
    response = client.put(book_url(book), json={"title": "Emma"}, headers=headers)
    assert assert_envelope(response, 200, "Book updated.")["title"] == "Emma"


@pytest.mark.each_database
def test_update_title_to_its_own_title_in_another_case_is_allowed(client, auth, create_book):
    headers = auth.headers()
    book = create_book(headers, title="Dune")
    response = client.put(book_url(book), json={"title": "DUNE"}, headers=headers)
    updated = assert_envelope(response, 200, "Book updated.")
    assert updated["title"] == "DUNE"
    response = client.post("/books/", data=book_form(title="dune"), headers=headers)
    assert_envelope(response, 409, DUPLICATE_TITLE, "Conflict")


@pytest.mark.each_database
def test_update_of_the_title_frees_the_old_title(client, auth, create_book):
    headers = auth.headers()
    book = create_book(headers, title="Dune")
    assert_envelope(client.put(book_url(book), json={"title": "Emma"}, headers=headers), 200, "Book updated.")
    create_book(headers, title="Dune")
    response = client.post("/books/", data=book_form(title="emma"), headers=headers)
    assert_envelope(response, 409, DUPLICATE_TITLE, "Conflict")


@pytest.mark.each_database
@pytest.mark.parametrize("as_form", [False, True], ids=["json", "form"])
def test_update_book_ignores_user_id(client, auth, create_book, as_form):
    headers, other = auth.headers(), auth.headers()
    book = create_book(headers)
    changes = {"title": "Moved?", "user_id": user_id(client, other)}
    if as_form:
        response = client.put(
            book_url(book), data=changes, headers=headers, content_type="application/x-www-form-urlencoded"
        )
    else:
        response = client.put(book_url(book), json=changes, headers=headers)
    updated = assert_envelope(response, 200, "Book updated.")
    assert updated["user_id"] == user_id(client, headers)
    assert get_book(client, headers, book)["title"] == "Moved?"
    assert_envelope(client.get(book_url(book), headers=other), 404, BOOK_NOT_FOUND, "Not Found")
    assert listed(client, other)[0] == []


def test_update_book_minutes_later_moves_updated_at_and_keeps_created_at(client, auth, create_book, clock):
    headers = auth.headers()
    book = create_book(headers)
    clock.shift(timedelta(minutes=10))
    response = client.put(book_url(book), json={"description": "Edited."}, headers=headers)
    updated = assert_envelope(response, 200, "Book updated.")
    assert updated["created_at"] == book["created_at"]
    assert parse_time(updated["updated_at"]) == AN_INSTANT + timedelta(minutes=10)
    assert get_book(client, headers, book)["updated_at"] == updated["updated_at"]


# --- delete -------------------------------------------------------------------


@pytest.mark.each_database
def test_delete_book_is_204_then_get_is_404(client, auth, create_book):
    headers = auth.headers()
    book = create_book(headers)
    response = client.delete(book_url(book), headers=headers)
    assert response.status_code == 204
    assert response.get_data() == b""
    assert_envelope(client.get(book_url(book), headers=headers), 404, BOOK_NOT_FOUND, "Not Found")
    assert listed(client, headers)[1]["total"] == 0


@pytest.mark.each_database
def test_delete_book_twice_is_404(client, auth, create_book):
    headers = auth.headers()
    book = create_book(headers)
    assert client.delete(book_url(book), headers=headers).status_code == 204
    assert_envelope(client.delete(book_url(book), headers=headers), 404, BOOK_NOT_FOUND, "Not Found")


@pytest.mark.each_database
def test_delete_book_leaves_the_other_books(client, auth, create_book):
    headers = auth.headers()
    books = create_many(create_book, headers, 3)
    assert client.delete(book_url(books[1]), headers=headers).status_code == 204
    data, meta = listed(client, headers)
    assert [b["id"] for b in data] == [books[2]["id"], books[0]["id"]]
    assert meta["total"] == 2
