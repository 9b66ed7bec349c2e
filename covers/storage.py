"""Where cover thumbnails live: files in a folder (`local`) or a GridFS bucket in the app's
database (`gridfs`), chosen by COVER_STORAGE.

Both keep a cover under its random name (`<32 hex>.<ext>`), which is never reused, so the
URL, the ETag and a year of caching work the same whichever storage holds it. The storage
not in use is still read and cleaned: a cover that `flask covers migrate` has not moved yet
is served from where it is, and replacing or deleting it removes it there too.
"""

from __future__ import annotations

import io
import os
import secrets
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import gridfs
from flask import Flask, Response, current_app, request, send_from_directory
from pymongo.database import Database
from werkzeug.exceptions import NotFound
from werkzeug.security import safe_join
from werkzeug.wsgi import wrap_file

from database.client import state as database_state

KINDS = ("local", "gridfs")
BUCKET = "covers"  # collections covers.files and covers.chunks
MAX_AGE = 365 * 86400
CONTENT_TYPES = {"jpg": "image/jpeg", "png": "image/png", "gif": "image/gif", "webp": "image/webp"}
# Covers removed per pair of deletes when an account goes.
REMOVE_BATCH = 1000
# Serving reads this much of a GridFS cover at a time: a thumbnail is one chunk or two.
READ_BLOCK = 64 * 1024


def content_type(name: str) -> str:
    return CONTENT_TYPES.get(name.rpartition(".")[2], "application/octet-stream")


def new_name(extension: str) -> str:
    return f"{secrets.token_hex(16)}.{extension}"


def _servable(name: str) -> bool:
    # Hidden names are a local upload's temporaries; a separator never names a cover.
    return bool(name) and not name.startswith(".") and "/" not in name and "\\" not in name


class LocalCovers:
    """Files in one folder, written under a temporary name and renamed into place."""

    kind = "local"

    def __init__(self, folder: str):
        self.folder = folder

    def _path(self, name: str) -> str | None:
        return safe_join(self.folder, name) if _servable(name) else None

    def store(self, data: bytes, name: str) -> None:
        os.makedirs(self.folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.chmod(tmp, 0o644)
            os.replace(tmp, os.path.join(self.folder, name))
        except BaseException:
            _unlink(tmp)
            raise

    def remove(self, name: str) -> None:
        path = self._path(name)
        if path:
            _unlink(path)

    def remove_many(self, names: list[str]) -> None:
        for name in names:
            self.remove(name)

    def exists(self, name: str) -> bool:
        path = self._path(name)
        return path is not None and os.path.isfile(path)

    def read(self, name: str) -> bytes | None:
        path = self._path(name)
        if path is None:
            return None
        try:
            with open(path, "rb") as handle:
                return handle.read()
        except OSError:
            return None

    def names(self) -> Iterator[str]:
        try:
            entries = sorted(os.listdir(self.folder))
        except FileNotFoundError:
            return
        for name in entries:
            if _servable(name) and os.path.isfile(os.path.join(self.folder, name)):
                yield name

    def written_before(self, when: float | None) -> Iterator[str]:
        """Covers, and upload temporaries left by a killed worker, last written before `when`
        (a Unix time; None: whenever)."""
        try:
            entries = list(os.scandir(self.folder))
        except FileNotFoundError:
            return
        for entry in entries:
            wanted = _servable(entry.name) or entry.name.startswith(".upload-")
            if wanted and entry.is_file(follow_symlinks=False) and (when is None or entry.stat().st_mtime < when):
                yield entry.name

    def discard(self, name: str) -> None:
        """Remove a name that written_before listed (temporaries included)."""
        _unlink(os.path.join(self.folder, os.path.basename(name)))

    def response(self, name: str) -> Response | None:
        """The cover as a file response (ETag, 304 and ranges by Werkzeug), or None."""
        if not self.exists(name):
            return None
        return send_from_directory(self.folder, name, etag=etag(name), max_age=MAX_AGE)


class GridFSCovers:
    """A GridFS bucket in the app's database. A cover's file id is its name, so storing
    it twice, or again after an interrupted attempt, can never leave two copies."""

    kind = "gridfs"

    def __init__(self, db: Database[dict[str, Any]]) -> None:
        self.bucket = gridfs.GridFSBucket(db, bucket_name=BUCKET)
        self.files = db[f"{BUCKET}.files"]
        self.chunks = db[f"{BUCKET}.chunks"]

    def store(self, data: bytes, name: str) -> None:
        try:
            self.bucket.upload_from_stream_with_id(
                name, name, io.BytesIO(data), metadata={"contentType": content_type(name)}
            )
        except BaseException:
            self.remove(name)  # chunks written before the failure
            raise

    def remove(self, name: str) -> None:
        try:
            self.bucket.delete(name)  # deletes stray chunks too, with or without the file
        except gridfs.errors.NoFile:
            pass

    def remove_many(self, names: list[str]) -> None:
        """Two deletes for any number of covers (files first: a cover without its file is gone)."""
        for start in range(0, len(names), REMOVE_BATCH):
            batch = names[start : start + REMOVE_BATCH]
            self.files.delete_many({"_id": {"$in": batch}})
            self.chunks.delete_many({"files_id": {"$in": batch}})

    def exists(self, name: str) -> bool:
        return self.files.find_one({"_id": name}, {"_id": 1}) is not None

    def read(self, name: str) -> bytes | None:
        try:
            with self.bucket.open_download_stream(name) as grid_out:
                return grid_out.read()
        except gridfs.errors.NoFile:
            return None

    def names(self) -> Iterator[str]:
        for doc in self.files.find({}, {"_id": 1}).sort("_id", 1):
            if isinstance(doc["_id"], str):
                yield doc["_id"]

    def written_before(self, when: float | None) -> Iterator[str]:
        """Covers uploaded before `when` (a Unix time; None: whenever)."""
        uploaded = {} if when is None else {"uploadDate": {"$lt": datetime.fromtimestamp(when, UTC)}}
        for doc in self.files.find(uploaded, {"_id": 1}):
            if isinstance(doc["_id"], str):
                yield doc["_id"]

    def discard(self, name: str) -> None:
        self.remove(name)

    def response(self, name: str) -> Response | None:
        """The cover streamed from the database a block at a time, or None."""
        try:
            grid_out = self.bucket.open_download_stream(name)  # reads the file document only
        except gridfs.errors.NoFile:
            return None
        mimetype = (grid_out.metadata or {}).get("contentType") or content_type(name)
        response = current_app.response_class(
            wrap_file(request.environ, grid_out, READ_BLOCK), mimetype=mimetype, direct_passthrough=True
        )
        response.content_length = grid_out.length
        response.last_modified = grid_out.upload_date
        response.set_etag(etag(name))
        response.cache_control.max_age = MAX_AGE
        response.cache_control.public = True
        response.make_conditional(request)  # in place (it returns the same response, typed as Werkzeug's)
        return response


def etag(name: str) -> str:
    """A cover's content never changes under its name: the name is its entity tag."""
    return name


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


Storage = LocalCovers | GridFSCovers


class Covers:
    """The storage in use, and the other one, still read and cleaned."""

    def __init__(self, primary: Storage, other: Storage) -> None:
        self.primary, self.other = primary, other

    def store(self, data: bytes, extension: str) -> str:
        name = new_name(extension)
        self.primary.store(data, name)
        return name

    def remove(self, name: str | None) -> None:
        if name:
            self.primary.remove(name)
            self.other.remove(name)

    def remove_many(self, names: list[str]) -> None:
        self.primary.remove_many(names)
        self.other.remove_many(names)

    def prune(self, referenced: set[str], older_than: float | None) -> list[str]:
        """Remove, from both storages, the covers no book references that were written before
        `older_than` (a Unix time; None: all of them); return their names."""
        removed = []
        for storage in (self.primary, self.other):
            for name in list(storage.written_before(older_than)):
                if name not in referenced:
                    storage.discard(name)
                    removed.append(name)
        return sorted(removed)

    def response(self, name: str) -> Response:
        response = self.primary.response(name) or self.other.response(name)
        if response is None:
            raise NotFound("Cover not found.")
        response.cache_control.immutable = True
        return response


EXTENSION = "book_library.covers"


def init_app(app: Flask) -> None:
    """The configured storage, kept in app.extensions."""
    kind = app.config["COVER_STORAGE"]
    if kind not in KINDS:
        raise RuntimeError(f"COVER_STORAGE must be one of {', '.join(KINDS)}, not {kind!r}.")
    local, db = LocalCovers(app.config["UPLOAD_FOLDER"]), database_state(app).db
    # With no database configured there is no GridFS; the routes that need the database answer 503.
    storages = {"local": local, "gridfs": GridFSCovers(db) if db is not None else local}
    app.extensions[EXTENSION] = Covers(storages[kind], storages["gridfs" if kind == "local" else "local"])


def covers() -> Covers:
    result: Covers = current_app.extensions[EXTENSION]
    return result


def store(data: bytes, extension: str) -> str:
    """Keep a thumbnail under a fresh random name; return the name."""
    return covers().store(data, extension)


def remove(name: str | None) -> None:
    """Remove a cover from whichever storage holds it."""
    covers().remove(name)


def remove_many(names: list[str]) -> None:
    """Remove covers from whichever storage holds them (an account's, when it is disabled)."""
    covers().remove_many(names)


@contextmanager
def stored(thumbnail: tuple[bytes, str] | None) -> Iterator[str | None]:
    """Store the thumbnail (if any) for the block; remove it again if the block fails,
    so a failed request leaves no cover behind in either storage."""
    name = store(*thumbnail) if thumbnail is not None else None
    try:
        yield name
    except BaseException:
        remove(name)
        raise


def response(name: str) -> Response:
    """The cover's HTTP response with a year of public caching; 404 when no storage has it."""
    return covers().response(name)
