"""Cursor pages of GET /books/: ?limit=N&after=<cursor>, stable while books come and go,
refused when tampered with or used by another user, and bounded reads proven with explain()."""

from __future__ import annotations

import base64
from urllib.parse import parse_qs, urlsplit

import pytest
from bson import ObjectId

from api import cursors
from helpers import INVALID_FIELDS, assert_envelope, book_form, image_bytes
from models import Books

TINY = image_bytes("PNG", size=(4, 4))
BAD_CURSOR = "This cursor is not valid for your list; start again without it."

# Pages are queries: each runs on both databases.
pytestmark = pytest.mark.each_database


def add(client, headers, title, category="science"):
    form = book_form(title=title, category=category, cover=TINY)
    return assert_envelope(client.post("/books/", data=form, headers=headers), 201, "Book created.")


def add_many(client, headers, count, prefix="Book"):
    return [add(client, headers, f"{prefix} {n:03d}") for n in range(count)]


def page(client, headers, query):
    response = client.get(f"/books/?{query}", headers=headers)
    assert_envelope(response, 200, "Books.")
    body = response.get_json()
    return body["data"], body["meta"], response


def walk(client, headers, limit, category=None, between_pages=None):
    """Every cursor page from the first, following next_cursor; the titles in order."""
    extra = f"&category={category}" if category else ""
    data, meta, _ = page(client, headers, f"limit={limit}{extra}")
    titles, pages = [book["title"] for book in data], 1
    while meta["next_cursor"]:
        if between_pages:
            between_pages(pages)
        data, meta, _ = page(client, headers, f"limit={limit}&after={meta['next_cursor']}{extra}")
        titles += [book["title"] for book in data]
        pages += 1
    return titles, pages


def newest_first(books):
    return [book["title"] for book in reversed(books)]


def test_cursor_pages_return_every_book_once_newest_first(client, auth):
    headers = auth.headers()
    books = add_many(client, headers, 7)

    titles, pages = walk(client, headers, limit=3)

    assert titles == newest_first(books)
    assert pages == 3


def test_cursor_pages_follow_the_same_order_as_numbered_pages(client, auth):
    headers = auth.headers()
    add_many(client, headers, 5)
    numbered = [book["title"] for book in page(client, headers, "page=1&per_page=100")[0]]
    assert walk(client, headers, limit=2)[0] == numbered


def test_cursor_page_meta_and_link_header(client, auth):
    headers = auth.headers()
    add_many(client, headers, 3)

    data, meta, response = page(client, headers, "limit=2&category=science")

    assert len(data) == 2
    assert set(meta) == {"paging", "limit", "next_cursor"}
    assert meta["limit"] == 2 and meta["next_cursor"]
    assert "X-Total-Count" not in response.headers
    link, rel = response.headers["Link"].split("; ")
    assert rel == 'rel="next"'
    url = urlsplit(link.strip("<>"))
    assert (url.scheme, url.netloc, url.path) == ("http", "localhost", "/books/")
    assert parse_qs(url.query) == {"limit": ["2"], "after": [meta["next_cursor"]], "category": ["science"]}


def test_last_cursor_page_has_no_next_cursor_and_no_link(client, auth):
    headers = auth.headers()
    add_many(client, headers, 2)

    data, meta, response = page(client, headers, "limit=2")

    assert len(data) == 2
    assert meta == {"paging": "cursor", "limit": 2, "next_cursor": None}
    assert "Link" not in response.headers


def test_cursor_pages_of_an_empty_library(client, auth):
    data, meta, _ = page(client, auth.headers(), "limit=5")
    assert (data, meta) == ([], {"paging": "cursor", "limit": 5, "next_cursor": None})


def test_limit_alone_defaults_the_page_size_and_after_alone_too(client, auth):
    headers = auth.headers()
    add_many(client, headers, 22)
    data, meta, _ = page(client, headers, "limit=20")
    assert len(data) == 20
    rest, _, _ = page(client, headers, f"after={meta['next_cursor']}")
    assert [book["title"] for book in rest] == ["Book 001", "Book 000"]


def test_cursor_pages_by_category(client, auth):
    headers = auth.headers()
    for n in range(9):
        add(client, headers, f"Mixed {n}", "poetry" if n % 3 == 0 else "science")

    titles, _ = walk(client, headers, limit=2, category="poetry")

    assert titles == ["Mixed 6", "Mixed 3", "Mixed 0"]


def test_a_listing_started_before_changes_returns_every_book_that_existed_throughout_once(client, auth):
    headers = auth.headers()
    books = add_many(client, headers, 10)
    seen_first = newest_first(books)[:3]
    doomed = [books[1], books[8]]  # one not yet listed, one already listed

    def change(pages_done):
        if pages_done == 1:
            add(client, headers, "Added during the walk")
            for book in doomed:
                assert client.delete(f"/books/{book['id']}", headers=headers).status_code == 204

    titles, _ = walk(client, headers, limit=3, between_pages=change)

    throughout = [title for title in newest_first(books) if title != "Book 001"]
    assert titles[:3] == seen_first
    assert [title for title in titles if title != "Book 008"] == [t for t in throughout if t != "Book 008"]
    assert len(titles) == len(set(titles))
    assert "Added during the walk" not in titles


def test_pages_skip_long_runs_of_deleted_books(client, auth):
    headers = auth.headers()
    books = add_many(client, headers, 30)
    for book in books[2:27]:
        assert client.delete(f"/books/{book['id']}", headers=headers).status_code == 204

    titles, _ = walk(client, headers, limit=2)

    assert titles == newest_first(books[:2] + books[27:])


# --- refused cursors --------------------------------------------------------------------


def flip(cursor: str, index: int) -> str:
    raw = bytearray(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    raw[index] ^= 1
    return base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")


@pytest.fixture
def first_cursor(client, auth):
    headers = auth.headers()
    add_many(client, headers, 3)
    return headers, page(client, headers, "limit=1")[1]["next_cursor"]


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda cursor: flip(cursor, 5), id="position-changed"),
        pytest.param(lambda cursor: flip(cursor, 0), id="version-changed"),
        pytest.param(lambda cursor: flip(cursor, -1), id="signature-changed"),
        pytest.param(lambda cursor: cursor[:-4], id="cut-short"),
        pytest.param(lambda cursor: cursor + "AAAA", id="extended"),
        pytest.param(lambda cursor: "not a cursor!", id="not-base64"),
        pytest.param(lambda cursor: "é", id="not-ascii"),
        pytest.param(lambda cursor: "AAAA", id="too-short"),
    ],
)
def test_tampered_cursor_is_400(client, first_cursor, tamper):
    headers, cursor = first_cursor
    response = client.get("/books/", query_string={"limit": 1, "after": tamper(cursor)}, headers=headers)
    assert_envelope(response, 400, INVALID_FIELDS, {"after": BAD_CURSOR})


def test_another_users_cursor_is_400(client, auth, first_cursor):
    _, cursor = first_cursor
    stranger = auth.headers()
    add_many(client, stranger, 3)
    assert_envelope(
        client.get(f"/books/?limit=1&after={cursor}", headers=stranger), 400, INVALID_FIELDS, {"after": BAD_CURSOR}
    )


def test_cursor_made_with_another_secret_key_is_400(client, first_cursor, make_app):
    headers, cursor = first_cursor
    other = make_app(SECRET_KEY="another-secret-key-that-is-long-enough-for-hs256")
    with other.app_context():
        user_id = ObjectId(client.get("/users/", headers=headers).get_json()["data"]["id"])
        forged = cursors.encode(user_id, 3)
    assert_envelope(
        client.get(f"/books/?limit=1&after={forged}", headers=headers), 400, INVALID_FIELDS, {"after": BAD_CURSOR}
    )


@pytest.mark.parametrize(
    ("query", "errors"),
    [
        ("limit=0", {"limit": "Must be at least 1."}),
        ("limit=101", {"limit": "Must be at most 100."}),
        ("limit=ten", {"limit": "Must be a whole number."}),
        ("after=", {"after": "Must not be empty."}),
        ("after=" + "A" * 101, {"after": "Must be at most 100 characters."}),
        ("limit=5&page=2", {"page": "Use page and per_page, or limit and after, not both."}),
        ("per_page=5&after=abc", {"page": "Use page and per_page, or limit and after, not both."}),
    ],
)
def test_bad_cursor_parameters_are_400(client, auth, query, errors):
    assert_envelope(client.get(f"/books/?{query}", headers=auth.headers()), 400, INVALID_FIELDS, errors)


# --- books from before positions existed -----------------------------------------------------


def test_books_from_before_positions_are_numbered_and_listed(client, auth, db):
    headers = auth.headers()
    books = add_many(client, headers, 4)
    # As an older version stored them: no list position, no version, no counter on the user.
    db.books.update_many({}, {"$unset": {"seq": "", "version": ""}})
    db.users.update_many({}, {"$unset": {"book_seq": ""}})

    titles, _ = walk(client, headers, limit=3)
    assert titles == newest_first(books)

    newer = add(client, headers, "After the upgrade")
    assert walk(client, headers, limit=3)[0] == ["After the upgrade", *newest_first(books)]
    assert client.get(f"/books/{newer['id']}", headers=headers).status_code == 200


def test_a_new_book_of_an_account_from_before_positions_is_numbered_after_the_old_ones(client, auth, db):
    headers = auth.headers()
    books = add_many(client, headers, 3)
    db.books.update_many({}, {"$unset": {"seq": ""}})
    db.users.update_many({}, {"$unset": {"book_seq": ""}})

    add(client, headers, "After the upgrade")

    assert walk(client, headers, limit=2)[0] == ["After the upgrade", *newest_first(books)]


# --- bounded reads, proven by the embedded server's own query plans ----------------------------


@pytest.fixture
def library(client, auth, backend):
    if backend != "secantus":
        pytest.skip("explain() plans come from the real MongoDB-protocol server")
    headers = auth.headers()
    add_many(client, headers, 60)
    user = client.get("/users/", headers=headers).get_json()["data"]
    return headers, ObjectId(user["id"])


def keys_examined(app, user_id, below, limit):
    """totalKeysExamined and the plan of the first read a cursor page makes."""
    with app.app_context():
        window = Books.window(user_id, below, limit + 1, limit=limit + 1)
        explained = window.explain()
    stages, plan = [], explained["queryPlanner"]["winningPlan"]
    while plan:
        stages.append((plan.get("stage"), plan.get("indexName")))
        plan = plan.get("inputStage")
    return explained["executionStats"]["totalKeysExamined"], stages


@pytest.mark.parametrize("depth", [0, 50], ids=["first-page", "deep-page"])
def test_a_cursor_page_reads_the_page_not_the_library(app, client, library, depth):
    headers, user_id = library
    limit = 5
    meta = page(client, headers, f"limit={depth}")[1] if depth else None
    with app.app_context():
        below = cursors.decode(user_id, meta["next_cursor"]) if depth else 61

    examined, stages = keys_examined(app, user_id, below, limit)

    assert examined <= limit + 1
    assert ("IXSCAN", "user_positions") in stages
    assert "COLLSCAN" not in [stage for stage, _ in stages]
    data, _, _ = page(client, headers, f"limit={limit}" + (f"&after={meta['next_cursor']}" if depth else ""))
    assert [book["title"] for book in data] == [f"Book {n:03d}" for n in range(59 - depth, 54 - depth, -1)]
