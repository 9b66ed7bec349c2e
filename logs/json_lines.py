"""Logging: one JSON object per line on standard error, and one line per request."""

from __future__ import annotations

import logging
import re
import time
import uuid

import orjson
from flask import Flask, Response, g, request

from logs import NAMESPACE, redaction


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line, so logs can be searched by field."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return redaction.redact(orjson.dumps(entry, default=str).decode())


JsonLogFormatter.converter = time.gmtime


def configure() -> None:
    """JSON lines on standard error for every logger of the app's namespace (once per process)."""
    logger = logging.getLogger(NAMESPACE)
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(JsonLogFormatter())
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    redaction.install()  # the root logger's handlers and the last resort


_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
request_log = logging.getLogger(f"{NAMESPACE}.requests")


def register_request_log(app: Flask) -> None:
    """An X-Request-ID on every response and one JSON log line per request.

    The line holds method, path (never the query string), status, duration, user id
    and request id: no headers, bodies, tokens or passwords.
    """

    @app.before_request
    def _start() -> None:
        incoming = request.headers.get("X-Request-ID", "")
        g.request_id = incoming if _REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex
        g.started = time.perf_counter()

    @app.after_request
    def _finish(response: Response) -> Response:
        request_id = g.get("request_id") or uuid.uuid4().hex
        response.headers["X-Request-ID"] = request_id
        if app.config["REQUEST_LOG"]:
            user_id = g.get("user_id")
            request_log.info(
                "request",
                extra={
                    "fields": {
                        "method": request.method,
                        "path": request.path,
                        "status": response.status_code,
                        "duration_ms": round((time.perf_counter() - g.get("started", time.perf_counter())) * 1000, 2),
                        "user_id": str(user_id) if user_id else None,
                        "request_id": request_id,
                        "ip": request.remote_addr,
                    }
                },
            )
        return response
