"""gunicorn settings used by `make run` (launcher.py) and in production.

Every value can be overridden from the environment or the command line.
"""

import multiprocessing
import os

import gunicorn.http.wsgi
from gunicorn.glogging import Logger

# Sync workers: each request does blocking PyMongo I/O and Pillow work; processes
# give real parallelism on both. Two per core keeps a core busy while its peer waits on the database.
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count() * 2))
worker_class = "sync"
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
