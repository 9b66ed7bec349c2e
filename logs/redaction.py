"""Redaction of anything that looks like a token in log lines, for the app's loggers and gunicorn's.

A header line without its colon (`Authorization Bearer eyJ...`) reaches gunicorn's
error log whole; a token could also reach any other line through an exception's
message. Whatever looks like a bearer credential, a JWT (access tokens, MFA tickets),
one of our refresh tokens (`<24 hex digits>.<secret>`) or a personal access token (`blpat_...`,
whatever follows the prefix, so a mistyped or cut one too) becomes `[REDACTED]`.
"""

from __future__ import annotations

import logging
import re

REDACTED = "[REDACTED]"
_TOKENS = re.compile(
    r"(?P<scheme>\bbearer[\s:=]+)[^\s'\",;]+"  # whatever follows the word Bearer
    r"|\beyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.?[A-Za-z0-9_-]*"  # a JWT: base64url of '{"...'
    r"|\b[0-9a-fA-F]{24}(?:\.[0-9a-fA-F]{24})?\.[A-Za-z0-9_-]{16,}"  # a refresh token: ids . secret
    r"|\bblpat_[A-Za-z0-9]*",  # a personal access token (auth/access_tokens.py)
    re.IGNORECASE,
)


def redact(text: str) -> str:
    return _TOKENS.sub(lambda match: (match.group("scheme") or "") + REDACTED, text)


class RedactTokens(logging.Filter):
    """Rewrites a record's message (and its traceback text) before any handler formats it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, ()
        if record.exc_info and not record.exc_text:
            # Formatters reuse exc_text when it is set, so the traceback is redacted too.
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        return True


_FILTER = RedactTokens()


def install(*loggers: logging.Logger) -> None:
    """Put the filter on every handler of these loggers and of the root logger, and on the
    handler of last resort (a handler's filter also sees what propagates to it)."""
    handlers = [handler for logger in (*loggers, logging.getLogger()) for handler in logger.handlers]
    for handler in [*handlers, logging.lastResort]:
        if handler is not None and _FILTER not in handler.filters:
            handler.addFilter(_FILTER)
