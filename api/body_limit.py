"""The request body as the server hands it over: 413 for a body over MAX_UPLOAD_BYTES, never
for one of exactly that size, and 400 for a chunked body the server cannot read.

Werkzeug's own limit (MAX_CONTENT_LENGTH) wraps a server-terminated stream (gunicorn's)
in a reader that raises as soon as a read finds the limit reached; parsers read once
more to find the end, so a body of exactly the limit got 413. Here the declared length
is checked against the limit, and a chunked body (no length) is cut off only when a
byte beyond the limit arrives.

A chunked body is decoded by the server as the app reads it, so a bad chunk size, a chunk
without its CRLF or a body cut short surfaces as the server's own exception (gunicorn's
InvalidChunkSize, ChunkMissingTerminator, NoMoreData; Werkzeug's OSError under `make dev`)
from whichever parser is reading: JSON, a form, a multipart upload. The wrapper turns any of
them into MalformedBody where the stream is read, so no view or parser needs to know them.
"""

from __future__ import annotations

import io
from typing import IO, TYPE_CHECKING

from flask import Flask, request
from werkzeug.exceptions import BadRequest, RequestEntityTooLarge


class MalformedBody(BadRequest):
    """A chunked request body the server could not read."""

    description = "The request body is malformed."


if TYPE_CHECKING:
    from _typeshed import WriteableBuffer  # what RawIOBase.readinto is given


class _CappedStream(io.RawIOBase):
    """Reads through to the server's stream; 413 once more than `limit` bytes came, 400 when the
    server cannot read the body."""

    def __init__(self, stream: IO[bytes], limit: int) -> None:
        self._stream, self._left = stream, limit

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer)
        # One byte more than is allowed: its arrival is what proves the body too large.
        try:
            data = self._stream.read(min(len(view), self._left + 1))
        except Exception:  # the server's parse errors have no common base: any failure to read is the body's
            raise MalformedBody() from None
        if len(data) > self._left:
            raise RequestEntityTooLarge()
        self._left -= len(data)
        view[: len(data)] = data
        return len(data)


def install(app: Flask) -> None:
    app.config["MAX_CONTENT_LENGTH"] = None  # checked here instead

    @app.before_request
    def _limit_body() -> None:
        limit = app.config["MAX_UPLOAD_BYTES"]
        if request.content_length is not None:
            if request.content_length > limit:
                raise RequestEntityTooLarge()
        elif request.environ.get("wsgi.input_terminated"):  # chunked: the server ends the stream
            capped = _CappedStream(request.environ["wsgi.input"], limit)
            request.environ["wsgi.input"] = io.BufferedReader(capped)
