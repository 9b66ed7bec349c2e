"""Books: the caller's library, a page at a time, each book with a cover thumbnail;
and the route that serves the thumbnails."""

from __future__ import annotations

import time

import click
from flask import Blueprint, current_app, request, send_from_directory
from pymongo.errors import DuplicateKeyError
from werkzeug.exceptions import Conflict, NotFound, UnsupportedMediaType

import save_image
import validate
from api_docs import documented
from auth_middleware import token_required
from models import BookBusy, Books
from responses import FORM_TYPES, envelope, external_url, form_or_json
from throttling import rate_limit

# Covers get random names that are never reused, so caches may keep them for a year.
COVER_MAX_AGE = 365 * 86400
DUPLICATE_TITLE = "You already have a book with this title."
BOOK_NOT_FOUND = "Book not found."

books = Blueprint("books", __name__)
# cli_group=None: its command is `flask prune-covers`, not `flask covers prune-covers`.
covers = Blueprint("covers", __name__, cli_group=None)


def _book_json(book: dict) -> dict:
    url = external_url("covers.cover", name=book["image"])
    return Books.to_json(book, url)


def _cover_from_request():
    """The uploaded cover, opened and checked from its header only, or None when none was sent."""
    upload = request.files.get("cover_image")
    # Postman sends an empty part when the file field is left blank: treat it as absent.
    if upload is None or upload.stream.read(1) == b"":
        return None
    upload.stream.seek(0)
    config = current_app.config
    return save_image.open_cover(upload.stream, config["MAX_IMAGE_PIXELS"], config["MAX_IMAGE_DECODE_BYTES"])


def _book_input(load_fields, data, cover_required: bool):
    """Validate the fields and the cover's header together, so every bad field is reported
    at once; nothing is decoded yet."""
    errors, fields, cover = {}, {}, None
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


def _thumbnail(cover, user_id):
    """Decode the cover (the expensive step, last): counted against the user's upload limit."""
    if cover is None:
        return None
    rate_limit("covers", COVER_UPLOAD_RATE_LIMIT=user_id)
    try:
        return save_image.thumbnail(cover)
    except save_image.ImageRejected as exc:
        raise validate.InvalidInput({"cover_image": str(exc)}) from None


def _own_book(book_id, user_id) -> dict:
    """The caller's book or 404: another user's book looks exactly like a missing one."""
    book = Books.get(book_id, user_id)
    if book is None:
        raise NotFound(BOOK_NOT_FOUND)
    return book


@books.post("/")
@documented(
    tags=["books"],
    ok=(201, validate.Envelope[validate.BookOut]),
    form=validate.BookCreateForm,
    auth=True,
    errors=(400, 409, 413, 415),
)
@token_required
def create_book(current_user):
    """Add a book with its cover to the caller's library."""
    if request.mimetype not in FORM_TYPES:
        raise UnsupportedMediaType("Content-Type must be multipart/form-data with a cover_image file.")
    fields, cover = _book_input(validate.load_book_create, request.form.to_dict(), cover_required=True)
    thumb = _thumbnail(cover, current_user["_id"])
    folder = current_app.config["UPLOAD_FOLDER"]
    with save_image.stored(thumb, folder) as image:
        try:
            book = Books.create(current_user["_id"], fields, image)
        except DuplicateKeyError:
            raise Conflict(DUPLICATE_TITLE) from None
    return envelope("Book created.", _book_json(book), 201)


@books.get("/")
@documented(tags=["books"], ok=(200, validate.BookPage), query=validate.BookQuery, auth=True, errors=(400,))
@token_required
def list_books(current_user):
    """The caller's books, newest first, a page at a time."""
    query = validate.load(validate.BookQuery, request.args.to_dict())
    items, total = Books.list(current_user["_id"], query.page, query.per_page, query.category)
    pages = (total + query.per_page - 1) // query.per_page
    meta_info = {"page": query.page, "per_page": query.per_page, "total": total, "pages": pages}
    response, status = envelope("Books.", [_book_json(book) for book in items], meta=meta_info)
    response.headers["X-Total-Count"] = str(total)
    links = _page_links(query, pages)
    if links:
        response.headers["Link"] = links
    return response, status


def _page_links(query, pages: int) -> str:
    """RFC 8288 links to the first, previous, next and last pages."""

    def url(page: int) -> str:
        args = {"page": page, "per_page": query.per_page}
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
@documented(tags=["books"], ok=(200, validate.Envelope[validate.BookOut]), auth=True, errors=(404,))
@token_required
def get_book(current_user, book_id):
    """One of the caller's books."""
    return envelope("Book.", _book_json(_own_book(book_id, current_user["_id"])))


@books.put("/<objectid:book_id>")
@documented(
    tags=["books"],
    ok=(200, validate.Envelope[validate.BookOut]),
    json=validate.BookUpdate,
    form=validate.BookUpdateForm,
    auth=True,
    errors=(400, 404, 409, 413, 415),
)
@token_required
def update_book(current_user, book_id):
    """Change a book's fields and, with multipart, its cover."""
    user_id = current_user["_id"]
    fields, cover = _book_input(validate.load_book_update, form_or_json(), cover_required=False)
    if not fields and cover is None:
        raise validate.InvalidInput({"body": "Send at least one of title, description, category or cover_image."})
    _own_book(book_id, user_id)  # 404 before the cover is decoded
    thumb = _thumbnail(cover, user_id)
    folder = current_app.config["UPLOAD_FOLDER"]
    with save_image.stored(thumb, folder) as image:
        if image is not None:
            fields["image"] = image
        try:
            replaced, book = Books.update(book_id, user_id, fields)
        except DuplicateKeyError:
            raise Conflict(DUPLICATE_TITLE) from None
        except BookBusy:
            raise Conflict("The book's cover is being changed by another request; try again.") from None
        if book is None:  # deleted between the read and the write
            raise NotFound(BOOK_NOT_FOUND)
    if image is not None:
        # The file this very update replaced: concurrent updates each remove their own
        # predecessor, so the one left referenced is the one left on disk.
        save_image.remove(replaced["image"], folder)
    return envelope("Book updated.", _book_json(book))


@books.delete("/<objectid:book_id>")
@documented(tags=["books"], ok=(204, None), auth=True, errors=(404,))
@token_required
def delete_book(current_user, book_id):
    """Delete a book and its cover."""
    book = Books.delete(book_id, current_user["_id"])
    if book is None:
        raise NotFound(BOOK_NOT_FOUND)
    save_image.remove(book["image"], current_app.config["UPLOAD_FOLDER"])
    return "", 204


@covers.get("/static/images/books/<name>")
def cover(name: str):
    """Serve a stored thumbnail."""
    response = send_from_directory(current_app.config["UPLOAD_FOLDER"], name, max_age=COVER_MAX_AGE)
    response.cache_control.immutable = True
    response.cache_control.public = True
    return response


@covers.cli.command("prune-covers")
@click.option(
    "--grace-minutes",
    default=60,
    show_default=True,
    type=click.IntRange(min=0),
    help="Keep unreferenced files younger than this: uploads still in flight.",
)
def prune_covers(grace_minutes: int):
    """Delete cover files that no book references (left by failed or interrupted writes)."""
    referenced = Books.image_names()
    folder = current_app.config["UPLOAD_FOLDER"]
    removed = save_image.prune(folder, referenced, older_than=time.time() - grace_minutes * 60)
    for name in removed:
        click.echo(f"removed {name}")
    click.echo(f"{len(removed)} unreferenced cover file(s) removed; {len(referenced)} referenced.")
