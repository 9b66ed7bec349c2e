"""Numbered pages of GET /books/: exact totals from the owner's record (no count), one window
of list positions per page however deep, consistent under concurrent writes, and the record
repairing itself after a write that was cut short."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from pymongo import MongoClient, monitoring

from database.client import state as database_state
from helpers import AuthActions, assert_envelope, book_form, image_bytes
from models import User

TINY = image_bytes("PNG", size=(4, 4))
SETTLED = timedelta(minutes=6)  # longer than workflows.book_list.SETTLED

# Pages, totals and their repair are queries and concurrent writes: each test runs on both databases.
pytestmark = pytest.mark.each_database


def add(client, headers, title):
    form = book_form(title=title, cover=TINY)
    return assert_envelope(client.post("/books/", data=form, headers=headers), 201, "Book created.")


def listing(client, headers, page=1, per_page=20):
    response = client.get(f"/books/?page={page}&per_page={per_page}", headers=headers)
    assert_envelope(response, 200, "Books.")
    body = response.get_json()
    return [book["title"] for book in body["data"]], body["meta"]


def every_page(client, headers, per_page):
    titles, meta = listing(client, headers, 1, per_page)
    for number in range(2, meta["pages"] + 1):
        titles += listing(client, headers, number, per_page)[0]
    return titles, meta["total"]


def test_totals_are_exact_after_creates_deletes_and_a_refused_duplicate(client, auth):
    headers = auth.headers()
    books = [add(client, headers, f"Book {n:02d}") for n in range(12)]
    for book in books[1:10:3]:
        assert client.delete(f"/books/{book['id']}", headers=headers).status_code == 204
    duplicate = client.post("/books/", data=book_form(title="Book 05", cover=TINY), headers=headers)
    assert duplicate.status_code == 409
    add(client, headers, "Book 12")

    titles, total = every_page(client, headers, per_page=4)

    live = [book["title"] for book in books if book not in books[1:10:3]] + ["Book 12"]
    assert titles == live[::-1]
    assert total == 10
    response = client.get("/books/?per_page=4", headers=headers)
    assert response.headers["X-Total-Count"] == "10"


def test_a_deep_page_is_the_same_slice_as_the_whole_list(client, auth):
    headers = auth.headers()
    books = [add(client, headers, f"Book {n:02d}") for n in range(40)]
    gone = {n for n in range(40) if n % 7 == 3 or n in (38, 39, 0)}
    for n in gone:
        client.delete(f"/books/{books[n]['id']}", headers=headers)
    newest_first = [book["title"] for n, book in enumerate(books) if n not in gone][::-1]

    for number in (1, 2, 5, 6, 7):
        titles, meta = listing(client, headers, number, per_page=5)
        assert titles == newest_first[(number - 1) * 5 : number * 5], number
        assert meta["total"] == len(newest_first) == 32
    assert listing(client, headers, 7, per_page=5)[0] == newest_first[30:]
    assert listing(client, headers, 8, per_page=5)[0] == []


def test_a_delete_cut_short_is_marked_by_the_next_page_read(client, auth, db, clock):
    headers = auth.headers()
    books = [add(client, headers, f"Book {n}") for n in range(6)]
    # The book is gone but its position never marked: the process died between the two writes.
    db.books.delete_one({"title": "Book 2"})
    assert listing(client, headers)[1]["total"] == 6

    clock.shift(SETTLED)
    titles, meta = listing(client, headers)  # finds position 3 empty below settled books, marks it
    assert titles == ["Book 5", "Book 4", "Book 3", "Book 1", "Book 0"]
    assert listing(client, headers)[1]["total"] == 5
    assert len(books) == 6


def test_a_position_taken_by_a_create_cut_short_is_marked_once_newer_books_settle(client, auth, db, app, clock):
    headers = auth.headers()
    add(client, headers, "Before")
    user_id = db.users.find_one({})["_id"]
    with app.app_context():
        User.next_book_position(user_id)  # the position taken, then the process died
    add(client, headers, "After")
    # Too recent to tell from a create still on its way: not marked yet.
    assert listing(client, headers)[1]["total"] == 3
    assert listing(client, headers)[1]["total"] == 3

    clock.shift(SETTLED)
    assert listing(client, headers)[0] == ["After", "Before"]
    assert listing(client, headers)[1]["total"] == 2


def test_a_mark_on_a_position_that_holds_a_book_is_removed(client, auth, db):
    headers = auth.headers()
    for n in range(4):
        add(client, headers, f"Book {n}")
    db.users.update_one({}, {"$addToSet": {"book_gaps": 2}})
    assert listing(client, headers)[1]["total"] == 3

    assert listing(client, headers)[0] == ["Book 3", "Book 2", "Book 1", "Book 0"]
    assert listing(client, headers)[1]["total"] == 4


def test_the_repair_command_checks_every_account(client, auth, db, app):
    headers = auth.headers()
    for n in range(5):
        add(client, headers, f"Book {n}")
    db.books.delete_one({"title": "Book 4"})  # the newest: no newer book will ever settle it
    db.users.update_one({}, {"$addToSet": {"book_gaps": 1}})

    result = app.test_cli_runner().invoke(args=["repair-book-lists"])

    assert result.exit_code == 0, result.output
    assert "Checked the book lists of 1 accounts." in result.output
    titles, meta = listing(client, headers)
    assert titles == ["Book 3", "Book 2", "Book 1", "Book 0"]
    assert meta["total"] == 4


def test_an_account_from_before_gaps_were_recorded_is_checked_on_its_first_list(client, auth, db):
    headers = auth.headers()
    books = [add(client, headers, f"Book {n}") for n in range(5)]
    client.delete(f"/books/{books[1]['id']}", headers=headers)
    db.users.update_many({}, {"$unset": {"book_gaps": ""}})
    db.books.delete_one({"title": "Book 3"})  # deleted by a version that recorded no gaps

    assert listing(client, headers, per_page=2) == (
        ["Book 4", "Book 2"],
        {"paging": "page", "page": 1, "per_page": 2, "total": 3, "pages": 2},
    )


def test_an_account_from_before_positions_is_numbered_on_its_first_list(client, auth, db):
    headers = auth.headers()
    for n in range(5):
        add(client, headers, f"Book {n}")
    db.books.update_many({}, {"$unset": {"seq": ""}})
    db.users.update_many({}, {"$unset": {"book_seq": "", "book_gaps": ""}})

    assert listing(client, headers, page=2, per_page=2) == (
        ["Book 2", "Book 1"],
        {"paging": "page", "page": 2, "per_page": 2, "total": 5, "pages": 3},
    )


def test_a_category_page_of_an_account_from_before_positions_is_in_list_order(client, auth, db):
    headers = auth.headers()
    for n in range(4):
        add(client, headers, f"Book {n}")
    db.books.update_many({"title": {"$in": ["Book 1", "Book 3"]}}, {"$unset": {"seq": ""}})
    db.users.update_many({}, {"$unset": {"book_seq": "", "book_gaps": ""}})

    response = client.get("/books/?category=science&per_page=10", headers=headers)

    assert [book["title"] for book in response.get_json()["data"]] == ["Book 3", "Book 2", "Book 1", "Book 0"]


# --- on the embedded server: what a page asks the database, and concurrent writes ------------


class BookReads(monitoring.CommandListener):
    """The commands sent about books, as the server received them."""

    def __init__(self):
        self.commands = []

    def started(self, event):
        if event.command.get(event.command_name) == "books":
            self.commands.append((event.command_name, event.command))

    def succeeded(self, event):
        pass

    def failed(self, event):
        pass


@pytest.fixture
def watched(backend, request, app_factory, db_name):
    if backend != "secantus":
        pytest.skip("the commands are watched on the real MongoDB-protocol server")
    reads = BookReads()
    client = MongoClient(request.getfixturevalue("secantus_uri"), event_listeners=[reads], tz_aware=True)
    application = app_factory(MONGO_CLIENT=client)
    yield application, reads
    client.close()


@pytest.mark.parametrize("number", [1, 7])
def test_a_page_reads_one_window_of_positions_and_counts_nothing(watched, number):
    application, reads = watched
    client = application.test_client()
    headers = AuthActions(client).headers()
    for n in range(40):
        add(client, headers, f"Book {n:02d}")
    reads.commands.clear()

    titles, meta = listing(client, headers, number, per_page=5)

    assert titles == [f"Book {n:02d}" for n in range(39 - (number - 1) * 5, 34 - (number - 1) * 5, -1)]
    assert meta["total"] == 40
    assert [name for name, _ in reads.commands] == ["find"]
    query = reads.commands[0][1]
    assert "skip" not in query
    positions = query["filter"]["seq"]
    assert positions["$lt"] - positions["$gte"] == 5  # one page of positions


def test_pages_stay_consistent_while_books_come_and_go(watched):
    application, _ = watched
    client = application.test_client()
    headers = AuthActions(client).headers()
    seeded = [add(client, headers, f"Seed {n:02d}") for n in range(30)]
    stored, deleting = {}, {}  # book id -> when its create answered / its delete was sent
    stop = threading.Event()

    def create():
        writer, n = application.test_client(), 0
        while not stop.is_set():
            book = add(writer, headers, f"New {n:03d}")
            stored[book["id"]] = time.monotonic()
            n += 1

    def delete():
        writer = application.test_client()
        for book in seeded[::2]:
            deleting[book["id"]] = time.monotonic()
            assert writer.delete(f"/books/{book['id']}", headers=headers).status_code == 204

    threads = [threading.Thread(target=create), threading.Thread(target=delete)]
    for thread in threads:
        thread.start()
    reads = []
    try:
        for _ in range(10):
            for number in (1, 2, 3):
                started = time.monotonic()
                data = client.get(f"/books/?page={number}&per_page=6", headers=headers).get_json()["data"]
                reads.append((started, time.monotonic(), [book["id"] for book in data]))
    finally:
        stop.set()
        for thread in threads:
            thread.join()

    books = database_state(application).db.books.find({}, {"seq": 1})
    position = {book["id"]: n + 1 for n, book in enumerate(seeded)} | {str(b["_id"]): b["seq"] for b in books}
    born = dict.fromkeys((book["id"] for book in seeded), 0.0) | stored
    for started, ended, ids in reads:
        shown = [position[book_id] for book_id in ids]
        assert len(set(ids)) == len(ids)  # no book twice
        assert shown == sorted(shown, reverse=True)  # newest first
        lived_through = [
            book_id
            for book_id, seq in position.items()
            if born.get(book_id, ended) < started
            and deleting.get(book_id, ended) >= ended
            and shown
            and shown[-1] < seq < shown[0]
        ]
        assert set(lived_through) <= set(ids)  # none skipped between the first and the last shown
    assert listing(client, headers, 1, 6)[1]["total"] == 30 - len(deleting) + len(stored)
