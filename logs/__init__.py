"""Logging: one JSON object per line (json_lines.py) for every logger under `book_library`,
the app's one namespace (a module logs through `logging.getLogger(f"book_library.{__name__}")`),
and the redaction of anything that looks like a token (redaction.py), which gunicorn's
loggers use too. Imports nothing of the project's but itself."""

NAMESPACE = "book_library"
