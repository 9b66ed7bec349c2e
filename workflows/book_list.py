"""An account's list of books: adding and deleting books with their list positions, and
numbered pages and totals read from the owner's record rather than counted.

Each book holds a list position (`seq`, from the owner's counter `book_seq`, never reused);
the owner's record also lists the positions that hold no book (`book_gaps`: deleted books,
creates that failed). So the record alone says how many books there are (positions minus
gaps) and which positions page N covers: a numbered page reads one window of positions,
as a cursor page does, however deep it is.

A position and its gap are two writes. Whatever happens between them (a crash, or simply
the moment before the second) leaves a position that holds no book and is not marked; the
order of the writes makes it never the other way round, except after a repair (below).
A numbered page checks the positions it reads against the marks and repairs both ways:
it marks a position that holds no book once a newer book is older than any request lives
(so no create can still be on its way there), and unmarks a position that holds a book.
Both writes are set operations, idempotent with the request's own. `flask repair-book-lists`
does the same for every account at once (after a crash).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from bson import ObjectId
from pymongo.errors import DuplicateKeyError

from database.documents import Document, utcnow
from models import Books, User
from workflows.accounts import next_book_position, number_books

# A position taken this long before a newer book was stored can no longer be on its way:
# far longer than a request lives (gunicorn stops a worker after 30 s).
SETTLED = timedelta(minutes=5)


def add_book(user_id: ObjectId, fields: dict[str, Any], image: str | None) -> Document:
    """Store a book at a new position; DuplicateKeyError propagates, its position marked as a gap."""
    position = next_book_position(user_id)
    try:
        return Books.create(user_id, fields, image, position)
    except DuplicateKeyError:
        User.mark_book_gaps(user_id, [position])
        raise


def delete_book(book_id: ObjectId, user_id: ObjectId, version: int | None = None) -> Document | None:
    """Delete the book (at `version`, if given) and mark its position; None when nothing matched."""
    book = Books.delete(book_id, user_id, version)
    if book is not None and "seq" in book:
        User.mark_book_gaps(user_id, [int(book["seq"])])
    return book


def book_list(user: Document) -> tuple[int, list[int]]:
    """(newest position, gaps newest first) of the account as its record says; an account from
    before positions, or before gaps were recorded, is numbered and checked once."""
    if "book_seq" not in user or "book_gaps" not in user:
        number_books(user["_id"])
        top = repair(user["_id"])
        return top, _gaps_below(top, User.find_by_id(user["_id"]) or {})
    top = int(user["book_seq"])
    return top, _gaps_below(top, user)


def _gaps_below(top: int, user: Document) -> list[int]:
    return sorted({int(position) for position in user.get("book_gaps", ()) if 0 < position <= top}, reverse=True)


def nth_position(top: int, gaps: list[int], n: int) -> int:
    """The position of the n-th book (1 the newest) counting down from `top`, skipping the
    gaps (newest first); below 1 when there are fewer books."""
    position = top - n + 1
    for gap in gaps:
        if gap < position:
            break
        position -= 1  # a gap at or above the candidate pushes it one down
    return position


def numbered_page(user: Document, page: int, per_page: int) -> tuple[list[Document], int]:
    """Page `page` of the account's books, newest first, and their total: one window of
    positions, found from the record, so the first page costs a cursor page and a deep page
    no more."""
    top, gaps = book_list(user)
    total = top - len(gaps)
    offset = (page - 1) * per_page
    if offset >= total:
        return [], total
    high = nth_position(top, gaps, offset + 1)
    low = max(nth_position(top, gaps, offset + per_page), 1)
    found = list(Books.window(user["_id"], high + 1, high - low + 1))
    if len(found) < per_page and low > 1:
        # Positions not marked yet (a delete or create on its way, or interrupted): fill the page.
        more, _ = Books.after(user["_id"], low, per_page - len(found))
        found += more
    _check_marks(user["_id"], found, range(low, high + 1), set(gaps))
    return found[:per_page], total


def category_page(user: Document, page: int, per_page: int, category: str) -> tuple[list[Document], int]:
    """Page `page` of the account's books in one category, by skip and limit, and their count:
    positions hold no category, so this one still costs its offset (bench/README.md)."""
    book_list(user)  # numbers an account from before positions first, so the order is the list's
    return Books.numbered_page(user["_id"], page, per_page, category)


def _check_marks(user_id: ObjectId, books: list[Document], positions: Iterable[int], gaps: set[int]) -> None:
    """Repair the marks of the positions read: unmark those that hold a book, mark those that
    hold none once a newer book among those read is settled (see SETTLED)."""
    held = {int(book["seq"]): book for book in books}
    settled_since = utcnow() - SETTLED
    settled_below = max((seq for seq, book in held.items() if book["created_at"] <= settled_since), default=0)
    wrong = [position for position in held if position in gaps]
    missing = [p for p in positions if p not in held and p not in gaps and p < settled_below]
    if wrong:
        User.unmark_book_gaps(user_id, wrong)
    if missing:
        User.mark_book_gaps(user_id, missing)


def repair(user_id: ObjectId) -> int:
    """Check every position of one account against its books: mark each that holds no book,
    unmark each that holds one. Returns the newest position."""
    user = User.find_by_id(user_id)
    if user is None:
        return 0
    top = int(user.get("book_seq", 0))
    held = {int(book["seq"]) for book in Books.positions(user_id) if "seq" in book}
    gaps = {int(position) for position in user.get("book_gaps", ())}
    User.mark_book_gaps(user_id, sorted(set(range(1, top + 1)) - held))  # creates the list if missing
    wrong = sorted(gaps & held)
    if wrong:
        User.unmark_book_gaps(user_id, wrong)
    return top


def repair_all() -> int:
    """repair() for every account; returns how many."""
    accounts = 0
    for user_id in User.ids():
        repair(user_id)
        accounts += 1
    return accounts
