"""gunicorn settings used by `make run` (launcher.py) and in production.

Every value can be overridden from the environment or the command line.
"""

import json
import multiprocessing
import os

import gunicorn.http.wsgi
from gunicorn import util
from gunicorn.glogging import Logger
from gunicorn.workers.ggevent import GeventWorker


class ClosingGeventWorker(GeventWorker):
    """gunicorn's gevent worker, closing a connection after its last answer the way the sync worker
    does: write side first, then what the client still sends is read and dropped (at most 64 KiB,
    2 s). gevent's worker closes at once, and a body left unread (a 413, a malformed chunk) makes the
    kernel reset the connection, so the client may lose the answer it was sent."""

    def handle_request(self, listener_name, req, sock, addr):
        try:
            keep_alive = super().handle_request(listener_name, req, sock, addr)
        except StopIteration:  # the answer said Connection: close
            util.close_graceful(sock)
            raise
        if getattr(req.body, "failed", False):  # the body could not be read: no next request on it
            util.close_graceful(sock)
            raise StopIteration()
        return keep_alive


# gevent workers: a connection waiting on a slow client (headers or body trickling in) or on the
# database holds a greenlet, not a process, so a few hundred slow connections from one client cannot
# take every worker (a sync worker is held for as long as its client takes). A request's headers
# must arrive within `keepalive` seconds. PyMongo and the mail sender's thread cooperate once gevent
# has patched the worker, which happens before the app is loaded. Argon2 and Pillow run in C without
# yielding: processes still give the parallelism on those, two per core, and a worker decodes one
# cover at a time, so the per-cover memory budget still bounds a worker.
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count() * 2))
worker_class = ClosingGeventWorker
timeout = int(os.environ.get("GUNICORN_TIMEOUT", 30))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", 30))
keepalive = 5
# The app writes one JSON line per request (with user and request ids), so gunicorn's
# own access log is off unless asked for.
accesslog = os.environ.get("GUNICORN_ACCESS_LOG") or None
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
# The name shown for the processes in ps and top.
proc_name = "book-library"
# Every response's Server header names the server software unless told otherwise;
# gunicorn has no setting for it, and reads this module global for each response.
gunicorn.http.wsgi.SERVER = "book-library"


# What gunicorn's own refusals say (a request it cannot parse never reaches the app). They keep
# the API's JSON envelope, as the document describes them, instead of gunicorn's HTML page.
SERVER_REFUSALS = {
    400: "The request is malformed.",
    403: "The request is forbidden.",
    414: "The request line is too long.",
    417: "The expectation cannot be met.",
    431: "The request's header fields are too large.",
    500: "An unexpected error occurred.",
    501: "The transfer coding is not supported.",
}


def write_json_error(sock, status_int, reason, mesg):
    """gunicorn's util.write_error, in the envelope; `mesg` may quote the request, so it is left out."""
    body = json.dumps({"message": SERVER_REFUSALS.get(status_int, reason + "."), "data": None, "error": reason})
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
        f"X-Content-Type-Options: nosniff\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    util.write_nonblock(sock, (head + body).encode("latin1"))


# Read by gunicorn's workers at each refusal, like SERVER above.
util.write_error = write_json_error


class RedactingLogger(Logger):
    """gunicorn's own logger, with anything that looks like a token redacted from every
    line it writes (its error log quotes a malformed header line whole)."""

    def setup(self, cfg):
        super().setup(cfg)
        # Imported here: by now gunicorn has put its working folder (the project's) on sys.path.
        from logs import redaction

        redaction.install(self.error_log, self.access_log)


# A logger class rather than logconfig_dict: the dictionary would replace gunicorn's
# handlers and switch its access log on; this keeps errorlog and accesslog as set above.
logger_class = RedactingLogger
# gunicorn's control socket defaults to one path in the home folder, which two servers
# on one machine (tests, benchmarks) would fight over; nothing here uses it.
control_socket_disable = True
