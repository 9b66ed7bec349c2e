"""gunicorn settings used by `make run` (launcher.py) and in production.

Every value can be overridden from the environment or the command line.
"""

import multiprocessing
import os

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
# gunicorn's control socket defaults to one path in the home folder, which two servers
# on one machine (tests, benchmarks) would fight over; nothing here uses it.
control_socket_disable = True
