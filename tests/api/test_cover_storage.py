"""Covers in either storage (a folder or GridFS): serving, the other storage still read and
cleaned, and `flask covers migrate` in both directions, re-run after interruptions."""

from __future__ import annotations

import io
import os
from urllib.parse import urlsplit

import gridfs
import pytest

from helpers import COVER_NOT_FOUND, PASSWORD, assert_envelope, book_form, image_bytes

COVERS = "/static/images/books/"
YEAR = 31536000


pytestmark = pytest.mark.each_cover_storage


def add_book(client, headers, title="Dune", fmt="PNG"):
    form = book_form(title=title, cover=image_bytes(fmt), filename=f"cover.{fmt.lower()}")
    return assert_envelope(client.post("/books/", data=form, headers=headers), 201, "Book created.")


def cover_name(book) -> str:
    return urlsplit(book["image_url"]).path.rsplit("/", 1)[-1]


def get(client, url, **headers):
    """(status, headers, body) of a GET, with the streamed response closed."""
    with client.get(url, headers=headers) as response:
        return response.status_code, response.headers, response.get_data()


def in_folder(app) -> set[str]:
    folder = app.config["UPLOAD_FOLDER"]
    return set(os.listdir(folder)) if os.path.isdir(folder) else set()


def in_gridfs(db) -> set[str]:
    return {doc["_id"] for doc in db["covers.files"].find({}, {"_id": 1})}


def other_than(storage: str) -> str:
    return "gridfs" if storage == "local" else "local"


def put_in_gridfs(db, name: str, data: bytes) -> None:
    """A cover written straight into the bucket, as an earlier, interrupted run left it."""
    gridfs.GridFSBucket(db, bucket_name="covers").upload_from_stream_with_id(name, name, io.BytesIO(data))


def migrate(app, to):
    result = app.test_cli_runner().invoke(args=["covers", "migrate", "--to", to])
    assert result.exit_code == 0, result.output
    return result.output


# --- serving ----------------------------------------------------------------------------


@pytest.mark.parametrize(("fmt", "mimetype"), [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("WEBP", "image/webp")])
def test_cover_is_served_with_its_content_type_an_etag_and_a_year_of_caching(client, auth, fmt, mimetype):
    book = add_book(client, auth.headers(), fmt=fmt)

    with client.get(book["image_url"]) as response:
        assert response.status_code == 200
        assert response.mimetype == mimetype
        assert response.is_streamed
        assert response.headers["ETag"]
        assert set(response.headers["Cache-Control"].split(", ")) == {"public", f"max-age={YEAR}", "immutable"}
        assert int(response.headers["Content-Length"]) == len(response.get_data()) > 0


def test_cover_with_a_matching_if_none_match_is_304_without_a_body(client, auth):
    book = add_book(client, auth.headers())
    _, headers, _ = get(client, book["image_url"])

    status, again, body = get(client, book["image_url"], **{"If-None-Match": headers["ETag"]})

    assert status == 304
    assert body == b""
    assert again["ETag"] == headers["ETag"]


def test_cover_with_another_etag_in_if_none_match_is_served_whole(client, auth):
    book = add_book(client, auth.headers())
    status, _, body = get(client, book["image_url"], **{"If-None-Match": '"0123456789abcdef"'})
    assert status == 200
    assert body[:8] == b"\x89PNG\r\n\x1a\n"


def test_cover_of_a_deleted_book_is_a_404_envelope(client, auth):
    headers = auth.headers()
    book = add_book(client, headers)
    assert client.delete(f"/books/{book['id']}", headers=headers).status_code == 204
    with client.get(book["image_url"]) as response:
        assert_envelope(response, 404, COVER_NOT_FOUND, "Not Found")


def test_unknown_cover_storage_refuses_to_start(make_app):
    with pytest.raises(RuntimeError, match="COVER_STORAGE must be one of local, gridfs, not 's3'"):
        make_app(COVER_STORAGE="s3")


# --- the storage not in use is still read and cleaned ------------------------------------


def test_covers_not_yet_migrated_are_served_and_removed_from_the_other_storage(
    client, auth, app, db, make_app, cover_storage
):
    headers = auth.headers()
    kept, deleted, replaced = (add_book(client, headers, title) for title in ("Kept", "Deleted", "Replaced"))
    other = make_app(COVER_STORAGE=other_than(cover_storage), UPLOAD_FOLDER=app.config["UPLOAD_FOLDER"])
    other_client = other.test_client()

    assert get(other_client, kept["image_url"])[0] == 200
    assert other_client.delete(f"/books/{deleted['id']}", headers=headers).status_code == 204
    form = {"cover_image": (io.BytesIO(image_bytes("GIF")), "new.gif")}
    updated = assert_envelope(
        other_client.put(f"/books/{replaced['id']}", data=form, headers=headers), 200, "Book updated."
    )

    for each in (client, other_client):
        assert get(each, deleted["image_url"])[0] == 404
        assert get(each, replaced["image_url"])[0] == 404
        assert get(each, updated["image_url"])[0] == 200
    assert in_folder(app) | in_gridfs(db) == {cover_name(kept), cover_name(updated)}


def test_disabling_an_account_removes_all_its_covers_from_both_storages(client, auth, app, db, make_app, cover_storage):
    headers, other_headers = auth.headers(), auth.headers()
    older = add_book(client, headers, "Older")
    migrate(app, other_than(cover_storage))  # one cover in the storage not in use
    newer = add_book(client, headers, "Newer")
    kept = add_book(client, other_headers, "Someone else's")

    assert client.delete("/users/", json={"password": PASSWORD}, headers=headers).status_code == 204

    for book in (older, newer):
        assert get(client, book["image_url"])[0] == 404
    assert get(client, kept["image_url"])[0] == 200
    assert in_folder(app) | in_gridfs(db) == {cover_name(kept)}
    assert set(db["covers.chunks"].distinct("files_id")) <= {cover_name(kept)}


# --- flask covers migrate -----------------------------------------------------------------


def test_migrate_moves_every_cover_and_the_other_storage_serves_them(client, auth, app, db, make_app, cover_storage):
    to = other_than(cover_storage)
    headers = auth.headers()
    books = [add_book(client, headers, f"Book {n}", fmt) for n, fmt in enumerate(("PNG", "JPEG", "GIF"))]
    before = {book["id"]: get(client, book["image_url"])[2] for book in books}

    output = migrate(app, to)

    assert f"Covers now in {to}: 3 moved, 0 already there (source copy removed), 0 deleted meanwhile." in output
    names = {cover_name(book) for book in books}
    assert (in_gridfs(db), in_folder(app)) == ((names, set()) if to == "gridfs" else (set(), names))
    moved = make_app(COVER_STORAGE=to, UPLOAD_FOLDER=app.config["UPLOAD_FOLDER"]).test_client()
    for book in books:
        status, served, body = get(moved, book["image_url"])
        assert (status, body) == (200, before[book["id"]])
        assert served["Content-Type"].startswith("image/")


def test_migrate_tells_to_switch_the_setting_when_moving_away_from_it(app, cover_storage):
    to = other_than(cover_storage)
    assert f"Set COVER_STORAGE={to} so that new covers go there too." in migrate(app, to)
    assert "Set COVER_STORAGE" not in migrate(app, cover_storage)


def test_migrate_run_again_has_nothing_to_do(client, auth, app, cover_storage):
    add_book(client, auth.headers())
    to = other_than(cover_storage)
    migrate(app, to)
    assert "0 moved, 0 already there (source copy removed), 0 deleted meanwhile." in migrate(app, to)


class TestMigrateToGridFSAfterAnInterruption:
    """Half-done states an interrupted `migrate --to gridfs` can leave, arranged directly."""

    @pytest.fixture
    def cover_storage(self):
        return "local"

    def test_copied_but_not_deleted_is_only_deleted_at_the_source(self, client, auth, app, db):
        book = add_book(client, auth.headers())
        name = cover_name(book)
        data = get(client, book["image_url"])[2]
        put_in_gridfs(db, name, data)  # copied, the source not yet deleted

        assert "0 moved, 1 already there" in migrate(app, "gridfs")

        assert (in_folder(app), in_gridfs(db)) == (set(), {name})

    def test_a_copy_that_does_not_match_is_written_again(self, client, auth, app, db):
        book = add_book(client, auth.headers())
        name = cover_name(book)
        data = get(client, book["image_url"])[2]
        put_in_gridfs(db, name, data[: len(data) // 2])

        assert "1 moved, 0 already there" in migrate(app, "gridfs")

        assert in_gridfs(db) == {name}
        assert get(client, book["image_url"])[2] == data

    def test_an_upload_cut_off_midway_is_replaced_by_the_whole_cover(self, client, auth, app, db):
        add_book(client, auth.headers(), "Earlier")  # GridFS makes its indexes on a first upload
        migrate(app, "gridfs")
        book = add_book(client, auth.headers(), "Later")
        name = cover_name(book)
        data = get(client, book["image_url"])[2]
        # An interrupted GridFS upload leaves chunks and no file document.
        db["covers.chunks"].insert_one({"files_id": name, "n": 0, "data": data[:10]})

        assert "1 moved, 0 already there" in migrate(app, "gridfs")

        assert get(client, book["image_url"])[2] == data
        assert db["covers.chunks"].count_documents({"files_id": name}) == 1

    def test_hidden_temporaries_are_not_migrated_or_served(self, client, auth, app, db):
        add_book(client, auth.headers())
        with open(os.path.join(app.config["UPLOAD_FOLDER"], ".upload-abc"), "wb") as handle:
            handle.write(b"half a file")

        assert "1 moved" in migrate(app, "gridfs")
        assert ".upload-abc" not in in_gridfs(db)
        assert get(client, COVERS + ".upload-abc")[0] == 404
