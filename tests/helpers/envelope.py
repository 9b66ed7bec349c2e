"""The JSON envelope: the messages the tests expect and the one check of a reply."""

from __future__ import annotations

ENVELOPE_KEYS = {"message", "data", "error"}
INVALID_FIELDS = "The request has invalid fields."
SESSION_ENDED = "Session has ended or the account is disabled."
TOKEN_MISSING = "Authentication token is missing."
TOKEN_EXPIRED = "Token has expired."
WRONG_CREDENTIALS = "Invalid email or password."
REFRESH_INVALID = "Refresh token is invalid or expired."
REFRESH_REUSED = "Refresh token was already used; the session has been ended."
RATE_LIMITED = "Too many requests; try again later."
LOCKED = "Too many failed logins; try again later."
JSON_ONLY = "Content-Type must be application/json."
BOOK_NOT_FOUND = "Book not found."
COVER_NOT_FOUND = "Cover not found."
DUPLICATE_TITLE = "You already have a book with this title."
# werkzeug's own descriptions, for the URLs and methods no route answers.
NO_SUCH_URL = (
    "The requested URL was not found on the server. If you entered the URL manually please check your "
    "spelling and try again."
)
WRONG_METHOD = "The method is not allowed for the requested URL."
TOO_LARGE = "The data value transmitted exceeds the capacity limit."


class Fragment(str):
    """An expected message given as a part of it, where the app builds the message from data (the
    problems a password has, the warning of the password-strength library): it matches any message
    that contains it. Every other expected message must match exactly."""


# Field messages many modules check. The strength check adds the password library's own
# warning to the Fragments.
REQUIRED = "This field is required."
NOT_A_STRING = "Must be a string."
COMMON = Fragment("Password is not allowed: it is a common or breached password")
GUESSABLE = Fragment("Password is not allowed: it is too easy to guess")
NOT_ALLOWED = Fragment("Password is not allowed: ")


def _matches(actual, expected) -> bool:
    if isinstance(expected, Fragment):
        return isinstance(actual, str) and expected in actual
    return actual == expected


def assert_envelope(response, status: int, message: str, error=None):
    """The one check of a JSON reply (from the test client or a real server): the status, the content
    type, the envelope's keys in order, and the message. A failure (status 400 and up) also has exactly
    the given error (a name, or for a 400 each field's message) and no data. Returns the data."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json", response.mimetype
    body = response.get_json()
    assert list(body)[:3] == ["message", "data", "error"], body
    assert _matches(body["message"], message), (body["message"], message)
    if status < 400:
        assert error is None, "a success has no error to expect"
        assert body["error"] is None, body
        return body["data"]
    assert set(body) == ENVELOPE_KEYS, body
    assert body["data"] is None, body
    if isinstance(error, dict):
        assert isinstance(body["error"], dict) and set(body["error"]) == set(error), body["error"]
        for field, expected in error.items():
            assert _matches(body["error"][field], expected), (field, body["error"][field], expected)
    else:
        assert error is not None, "a failure's error name must be stated"
        assert body["error"] == error, body
    return body["data"]


def assert_429(response, message: str = RATE_LIMITED) -> int:
    """429 in the JSON envelope with an integer Retry-After of at least a second; returns it."""
    assert_envelope(response, 429, message, "Too Many Requests")
    retry_after = response.headers.get("Retry-After", "")
    assert retry_after.isdigit(), response.headers
    assert int(retry_after) >= 1
    return int(retry_after)
