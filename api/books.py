"""/books/: the caller's library, a page at a time, each book with a cover thumbnail."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from bson import ObjectId
from flask import Blueprint, Response, current_app, g, request
from PIL.Image import Image
from pymongo.errors import DuplicateKeyError
from werkzeug.exceptions import Conflict, NotFound, PreconditionFailed, UnsupportedMediaType

import save_image
import validate
from api import book_requests, cursors
from api.openapi import documented
from api.responses import (
    FORM_OR_JSON_REQUIRED,
    FORM_TYPES,
    Reply,
    conditional,
    envelope,
    external_url,
    form_or_json,
    query_args,
)
from api.schemas import BookOut, BookPage, Envelope
from auth.throttling import rate_limit
from auth_middleware import token_required
from covers.storage import covers, stored
from database.documents import Document
from models import BookBusy, Books
from workflows import book_list
from workflows.accounts import newest_book_position

DUPLICATE_TITLE = "You already have a book with this title."
BOOK_NOT_FOUND = "Book not found."
MULTIPART_REQUIRED = "Content-Type must be multipart/form-data with a cover_image file."
BOOK_CHANGED = "The book has changed since you read it (its ETag no longer matches); read it again."
BOOK_EXISTS = "The book exists, and If-None-Match asked for a change only if it did not; nothing was changed."
BAD_CURSOR = "This cursor is not valid for your list; start again without it."
MIXED_PAGING = "Use page and per_page, or limit and after, not both."

books = Blueprint("books", __name__)


def _book_json(book: Document) -> dict[str, Any]:
    return BookOut.of(book, external_url("covers.cover", name=book["image"]))


# The names covers.storage gives covers: safe in a URL path as they are.
_PLAIN_COVER_NAME = re.compile(r"[0-9a-f]+\.[a-z]+")


def _books_json(page: list[Document]) -> list[dict[str, Any]]:
    """A page of books; the cover URLs share one prefix, built once rather than by the URL map
    for each book (the largest part of a page's own time in the profile, bench/README.md)."""
    prefix = external_url("covers.cover", name="x")[:-1]
    return [
        BookOut.of(book, prefix + book["image"]) if _PLAIN_COVER_NAME.fullmatch(book["image"]) else _book_json(book)
        for book in page
    ]


def _cover_from_request() -> Image | None:
    """The uploaded cover, opened and checked from its header only, or None when none was sent."""
    upload = request.files.get("cover_image")
    # Postman sends an empty part when the file field is left blank: treat it as absent.
    if upload is None or upload.stream.read(1) == b"":
        return None
    upload.stream.seek(0)
    # Counted before the header is read, which a hostile file makes costly too (issue 17);
    # g.user_id is the caller's, set by token_required.
    rate_limit("covers", COVER_UPLOAD_RATE_LIMIT=g.user_id)
    config = current_app.config
    return save_image.open_cover(upload.stream, config["MAX_IMAGE_PIXELS"], config["MAX_IMAGE_DECODE_BYTES"])


def _book_input(
    load_fields: Callable[[dict[str, Any]], dict[str, Any]], data: dict[str, Any], cover_required: bool
) -> tuple[dict[str, Any], Image | None]:
    """Validate the fields and the cover's header together, so every bad field is reported
    at once; nothing is decoded yet."""
    errors: dict[str, str] = {}
    fields: dict[str, Any] = {}
    cover = None
    try:
        fields = load_fields(data)
    except validate.InvalidInput as exc:
        errors.update(exc.errors)
    try:
        cover = _cover_from_request()
    except save_image.ImageRejected as exc:
        errors["cover_image"] = str(exc)
    else:
        if cover is None and cover_required:
            errors["cover_image"] = "A cover image file is required."
    if errors:
        raise validate.InvalidInput(errors)
    return fields, cover


def _thumbnail(cover: Image | None) -> tuple[bytes, str] | None:
    """Decode the cover (the expensive step, last)."""
    if cover is None:
        return None
    try:
        return save_image.thumbnail(cover)
    except save_image.ImageRejected as exc:
        raise validate.InvalidInput({"cover_image": str(exc)}) from None


def _own_book(book_id: ObjectId | None, user_id: ObjectId) -> Document:
    """The caller's book or 404: another user's book, or a malformed id, looks exactly like a missing one."""
    book = Books.get(book_id, user_id) if book_id else None
    if book is None:
        raise NotFound(BOOK_NOT_FOUND)
    return book


def _book_etag(book: Document) -> str:
    """Every change counts the book's version up, so id and version name one state of it."""
    return f"{book['_id']}.v{Books.version(book)}"


def _pinned_version(book: Document) -> int | None:
    """The version an If-Match header pins a change to (None without the header);
    412 when the book is no longer in the state the client read."""
    if "If-Match" not in request.headers:
        return None
    # A header that names no tag at all (malformed) matches nothing, rather than being ignored.
    if not (request.if_match.star_tag or request.if_match.contains(_book_etag(book))):
        raise PreconditionFailed(BOOK_CHANGED)
    return Books.version(book)


def _preconditions(book: Document) -> int | None:
    """If-Match, then If-None-Match (RFC 9110, section 13.2.2): the version a change is pinned
    to, if any. `If-None-Match: *` (or the book's ETag) on a change asks for it only where no
    such book exists: here it does, so 412."""
    version = _pinned_version(book)
    if "If-None-Match" in request.headers:
        if request.if_none_match.star_tag or request.if_none_match.contains_weak(_book_etag(book)):
            raise PreconditionFailed(BOOK_EXISTS)
    return version


def _vanished_or_changed(book_id: ObjectId | None, user_id: ObjectId) -> NotFound | PreconditionFailed:
    """Why a conditional write matched nothing: the book is gone (404) or has moved on (412)."""
    if Books.get(book_id, user_id) is None:
        return NotFound(BOOK_NOT_FOUND)
    return PreconditionFailed(BOOK_CHANGED)


@books.post("/")
@documented(
    tags=["books"],
    ok=(201, Envelope[BookOut]),
    form=book_requests.BookCreateForm,
    auth=True,
    errors=(400, 409, 429),
    messages={409: DUPLICATE_TITLE, 415: MULTIPART_REQUIRED},
)
@token_required(scopes=["books:write"])
def create_book(current_user: Document) -> Reply:
    """Add a book with its cover to the caller's library."""
    if request.mimetype not in FORM_TYPES:
        raise UnsupportedMediaType(MULTIPART_REQUIRED)
    fields, cover = _book_input(book_requests.load_book_create, request.form.to_dict(), cover_required=True)
    thumb = _thumbnail(cover)
    with stored(thumb) as image:
        try:
            book = book_list.add_book(current_user["_id"], fields, image)
        except DuplicateKeyError:
            raise Conflict(DUPLICATE_TITLE) from None
    return envelope("Book created.", _book_json(book), 201)


@books.get("/")
@documented(
    tags=["books"],
    ok=(200, BookPage),
    query=book_requests.BookQuery,
    auth=True,
    errors=(304, 400),
    headers=book_requests.IfNoneMatch,
)
@token_required(scopes=["books:read"])
def list_books(current_user: Document) -> Response:
    """The caller's books, newest first: by page number (with totals), or by cursor
    (`limit`, then `after=meta.next_cursor`), whose pages cost the same however deep."""
    query = validate.load(book_requests.BookQuery, query_args(book_requests.BookQuery))
    by_cursor = query.model_fields_set & {"limit", "after"}
    if by_cursor and query.model_fields_set & {"page", "per_page"}:
        raise validate.InvalidInput({"page": MIXED_PAGING})
    reply = _cursor_page(current_user, query) if by_cursor else _numbered_page(current_user, query)
    return conditional(reply)


def _numbered_page(user: Document, query: book_requests.BookQuery) -> Reply:
    if query.category is None:
        items, total = book_list.numbered_page(user, query.page, query.per_page)
    else:
        items, total = book_list.category_page(user, query.page, query.per_page, query.category)
    pages = (total + query.per_page - 1) // query.per_page
    meta_info = {"paging": "page", "page": query.page, "per_page": query.per_page, "total": total, "pages": pages}
    response, status = envelope("Books.", _books_json(items), meta=meta_info)
    response.headers["X-Total-Count"] = str(total)
    links = _page_links(query, pages)
    if links:
        response.headers["Link"] = links
    return response, status


def _cursor_page(user: Document, query: book_requests.BookQuery) -> Reply:
    user_id, limit = user["_id"], query.limit or validate.PER_PAGE_DEFAULT
    if query.after is None:
        # The account's newest position is on its record, which token_required just read.
        below = newest_book_position(user) + 1
    else:
        try:
            below = cursors.decode(user_id, query.after)
        except cursors.BadCursor:
            raise validate.InvalidInput({"after": BAD_CURSOR}) from None
    items, last = Books.after(user_id, below, limit, query.category)
    next_cursor = cursors.encode(user_id, last) if last is not None else None
    meta_info = {"paging": "cursor", "limit": limit, "next_cursor": next_cursor}
    response, status = envelope("Books.", _books_json(items), meta=meta_info)
    if next_cursor:
        args = {"limit": limit, "after": next_cursor}
        if query.category is not None:
            args["category"] = query.category
        response.headers["Link"] = f'<{external_url("books.list_books", **args)}>; rel="next"'
    return response, status


def _page_links(query: book_requests.BookQuery, pages: int) -> str:
    """RFC 8288 links to the first, previous, next and last pages."""

    def url(page: int) -> str:
        args: dict[str, int | str] = {"page": page, "per_page": query.per_page}
        if query.category is not None:
            args["category"] = query.category
        return external_url("books.list_books", **args)

    if not pages:
        return ""
    links = [f'<{url(1)}>; rel="first"']
    if query.page > 1:
        links.append(f'<{url(min(query.page - 1, pages))}>; rel="prev"')
    if query.page < pages:
        links.append(f'<{url(query.page + 1)}>; rel="next"')
    links.append(f'<{url(pages)}>; rel="last"')
    return ", ".join(links)


@books.get("/<objectid:book_id>")
@documented(
    tags=["books"],
    ok=(200, Envelope[BookOut]),
    auth=True,
    errors=(304, 404),
    headers=book_requests.IfNoneMatch,
    messages={404: BOOK_NOT_FOUND},
)
@token_required(scopes=["books:read"])
def get_book(current_user: Document, book_id: ObjectId | None) -> Response:
    """One of the caller's books; its ETag goes back in If-Match to change it safely."""
    book = _own_book(book_id, current_user["_id"])
    return conditional(envelope("Book.", _book_json(book)), _book_etag(book))


@books.put("/<objectid:book_id>")
@documented(
    tags=["books"],
    ok=(200, Envelope[BookOut]),
    json=book_requests.BookUpdate,
    form=book_requests.BookUpdateForm,
    auth=True,
    errors=(400, 404, 409, 412, 429),
    headers=book_requests.ChangeConditions,
    messages={404: BOOK_NOT_FOUND, 409: DUPLICATE_TITLE, 412: BOOK_CHANGED, 415: FORM_OR_JSON_REQUIRED},
)
@token_required(scopes=["books:write"])
def update_book(current_user: Document, book_id: ObjectId | None) -> Reply:
    """Change a book's fields and, with multipart, its cover. With If-Match, only if the
    book is still as the client read it."""
    fields, cover = _book_input(book_requests.load_book_update, form_or_json(), cover_required=False)
    if not fields and cover is None:
        raise validate.InvalidInput({"body": "Send at least one of title, description, category or cover_image."})
    user_id = current_user["_id"]
    read = _own_book(book_id, user_id)
    version = _preconditions(read)  # 404 (or 412) before the cover is decoded
    thumb = _thumbnail(cover)
    with stored(thumb) as image:
        if image is not None:
            fields["image"] = image
        try:
            replaced, book = Books.update(read["_id"], user_id, fields, version)
        except DuplicateKeyError:
            raise Conflict(DUPLICATE_TITLE) from None
        except BookBusy:
            raise Conflict("The book is being changed by other requests; try again.") from None
        if replaced is None or book is None:  # (both) deleted or changed between the read and the write
            raise _vanished_or_changed(book_id, user_id)
    if image is not None:
        # The cover this very update replaced: concurrent updates each remove their own
        # predecessor, so the one left stored is the one the book names.
        covers().remove(replaced["image"])
    response, status = envelope("Book updated.", _book_json(book))
    response.set_etag(_book_etag(book))
    return response, status


@books.delete("/<objectid:book_id>")
@documented(
    tags=["books"],
    ok=(204, None),
    auth=True,
    errors=(404, 412),
    headers=book_requests.ChangeConditions,
    messages={404: BOOK_NOT_FOUND, 412: BOOK_CHANGED},
)
@token_required(scopes=["books:write"])
def delete_book(current_user: Document, book_id: ObjectId | None) -> tuple[str, int]:
    """Delete a book and its cover. With If-Match, only if the book is still as the client read it."""
    user_id = current_user["_id"]
    conditional_delete = "If-Match" in request.headers or "If-None-Match" in request.headers
    version = _preconditions(_own_book(book_id, user_id)) if conditional_delete else None
    book = book_list.delete_book(book_id, user_id, version) if book_id else None
    if book is None:
        raise _vanished_or_changed(book_id, user_id) if version is not None else NotFound(BOOK_NOT_FOUND)
    covers().remove(book["image"])
    return "", 204
