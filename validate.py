"""Input validation: `load()`, the rules each field follows (names, addresses, passwords, titles,
categories...) and the base of every request schema; the schemas themselves live beside their
views (api/account_requests.py, api/book_requests.py)."""

from __future__ import annotations

import re
from typing import Annotated, Any, TypeVar

from email_validator import SPECIAL_USE_DOMAIN_NAMES, EmailNotValidError, validate_email
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    StrictStr,
)
from pydantic import ValidationError as PydanticValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails
from zxcvbn import zxcvbn

CATEGORIES = (
    "romance",
    "poetry",
    "politics",
    "picture book",
    "science",
    "fantasy",
    "horror",
    "thriller",
)
PASSWORD_MIN, PASSWORD_MAX = 8, 128
NAME_MIN_WORDS, NAME_MAX_WORDS, NAME_MAX_CHARS = 2, 30, 300
TITLE_MAX, DESCRIPTION_MAX = 200, 2000
# RFC 5321's longest path less its angle brackets, and its longest local part (in bytes).
EMAIL_MAX, LOCAL_PART_MAX_BYTES = 254, 64
PER_PAGE_DEFAULT, PER_PAGE_MAX = 20, 100
RECOVERY_CODES = 10
# Personal access tokens (auth/access_tokens.py): what each scope opens, and their lifetime in days.
TOKEN_SCOPES = {
    "books:read": "List and read your books (GET /books/...).",
    "books:write": "Add, change and delete your books (POST, PUT, DELETE /books/...).",
    "account:read": "Read your account (GET /users/).",
}
TOKEN_DAYS_DEFAULT, TOKEN_DAYS_MAX = 30, 365
TOKEN_NAME_MAX = 100
CURSOR_MAX = 100
# zxcvbn scores 0-4; below 2 means under a million guesses: a common or breached
# password, or one a little away from it ("P@ssw0rd1!").
MIN_PASSWORD_SCORE = 2
# zxcvbn's time grows with length and, steeply, with the number of distinct
# look-alike symbols ("@", "|", "1", "$"...), so only a prefix is scored (as its
# documentation advises): bench/strength_check.py shows the worst case of this length.
STRENGTH_CHECKED_CHARS = 14


class InvalidInput(Exception):
    """Raised with a mapping of field name to message; the app answers 400 with `message`."""

    def __init__(self, errors: dict[str, str], message: str = "The request has invalid fields."):
        super().__init__("invalid input")
        self.errors = errors
        self.message = message


# Rules the OpenAPI document states as patterns are checked here with the same patterns, so
# that the document and the server cannot disagree. \s and \S are Unicode-aware in both, and
# agree once the characters below are out.
#
# Refused in names and titles: C0 and C1 controls (DEL too), the bidirectional embeddings,
# overrides and isolates, which reorder the text around them, and U+FEFF, which JavaScript's \s
# counts as a space and Python's does not. Descriptions keep tab and line breaks.
UNSAFE = r"\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ufeff"
UNSAFE_IN_DESCRIPTIONS = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069"


def _none_of(characters: str) -> str:
    # A lookahead over [\s\S] ("any character" in both engines, line breaks included).
    return rf"^(?![\s\S]*[{characters}])"


NAME_PATTERN = _none_of(UNSAFE) + rf"\s*\S+(?:\s+\S+){{{NAME_MIN_WORDS - 1},{NAME_MAX_WORDS - 1}}}\s*$"
TITLE_PATTERN = _none_of(UNSAFE) + r"\s*\S"
DESCRIPTION_PATTERN = _none_of(UNSAFE_IN_DESCRIPTIONS)
UNSAFE_TEXT = "must not contain control or text-direction characters"
# A password needs one of each, in any script ("special": anything but a letter or digit).
# JSON Schema's regular expressions have no portable Unicode classes, so the document states
# this rule in words.
PASSWORD_CLASSES = {
    "an upper-case letter": str.isupper,
    "a lower-case letter": str.islower,
    "a digit": str.isdigit,
    "a special character": lambda c: not c.isalnum(),
}


def _name(value: str) -> str:
    if len(value) <= NAME_MAX_CHARS and re.search(f"[{UNSAFE}]", value):
        raise ValueError(f"Name {UNSAFE_TEXT}.")
    if len(value) > NAME_MAX_CHARS or not re.match(NAME_PATTERN, value):
        raise ValueError(
            f"Name must be {NAME_MIN_WORDS} to {NAME_MAX_WORDS} words and at most {NAME_MAX_CHARS} characters."
        )
    return " ".join(value.split())


def normalised_email(value: str) -> str:
    try:
        checked = validate_email(value.strip(), check_deliverability=False)
    except EmailNotValidError:
        raise ValueError("Email address is not valid.") from None
    # SMTP's limits count bytes (RFC 5321, RFC 6531), the checker characters: an address over
    # them in UTF-8 would be accepted here and refused by mail servers.
    ascii_form = f"{checked.local_part}@{checked.ascii_domain}".encode()
    if len(checked.local_part.encode()) > LOCAL_PART_MAX_BYTES or len(ascii_form) > EMAIL_MAX:
        raise ValueError(f"Email address is too long: at most {LOCAL_PART_MAX_BYTES} bytes before the @.")
    # Stored and compared in one case-folded form, so the unique index sees duplicates.
    return checked.normalized.lower()


def _password(value: str) -> str:
    problems = [] if PASSWORD_MIN <= len(value) <= PASSWORD_MAX else [f"{PASSWORD_MIN} to {PASSWORD_MAX} characters"]
    problems += [name for name, test in PASSWORD_CLASSES.items() if not any(map(test, value))]
    if problems:
        raise ValueError("Password must have " + ", ".join(problems) + ".")
    return value


def _title(value: str) -> str:
    # Measured as sent, as the document's maxLength measures it; stored without the outer spaces.
    if len(value) > TITLE_MAX or not value.strip():
        raise ValueError(f"Title must be 1 to {TITLE_MAX} characters.")
    if not re.match(TITLE_PATTERN, value):
        raise ValueError(f"Title {UNSAFE_TEXT}.")
    return value.strip()


def _description(value: str) -> str:
    if len(value) > DESCRIPTION_MAX:
        raise ValueError(f"Description must be at most {DESCRIPTION_MAX} characters.")
    if not re.match(DESCRIPTION_PATTERN, value):
        raise ValueError(f"Description {UNSAFE_TEXT} (tabs and line breaks are fine).")
    return value.strip()


def _category(value: str) -> str:
    value = " ".join(value.split()).lower()
    if value not in CATEGORIES:
        raise ValueError("Category must be one of: " + ", ".join(CATEGORIES) + ".")
    return value


def described(description: str, **schema: JsonValue) -> FieldInfo:
    """Describe a field in the OpenAPI document; the validator functions do the checking."""
    field: FieldInfo = Field(description=description, json_schema_extra=schema or None)
    return field


Name = Annotated[
    StrictStr,
    AfterValidator(_name),
    described(
        f"{NAME_MIN_WORDS} to {NAME_MAX_WORDS} words; no control characters.",
        maxLength=NAME_MAX_CHARS,
        pattern=NAME_PATTERN,
    ),
]


def _any_case(word: str) -> str:
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else re.escape(c) for c in word)


# The address checker refuses what no mail can reach: a domain without a dot, or under a
# special-use name (.test, .local, ...). The pattern says so; the format says the rest.
EMAIL_PATTERN = (
    r"^[^@]+@(?!(?:[^@]*\.)?(?:" + "|".join(map(_any_case, SPECIAL_USE_DOMAIN_NAMES)) + r")\.?$)[^@]+\.[^@.]+$"
)
Email = Annotated[
    StrictStr,
    # Checked before the address checker, whose cost grows with the length (seconds for megabytes).
    Field(max_length=EMAIL_MAX),
    AfterValidator(normalised_email),
    described(
        "Unique, compared case-insensitively; a deliverable domain; at most 64 bytes (UTF-8) before the @.",
        format="email",
        pattern=EMAIL_PATTERN,
    ),
]
Password = Annotated[
    StrictStr,
    AfterValidator(_password),
    described(
        f"{PASSWORD_MIN} to {PASSWORD_MAX} characters with an upper-case letter, a lower-case letter, a digit "
        "and a special character (anything but a letter or digit), in any script. Common, breached or easily "
        "guessed passwords are refused too (400; the first 14 characters are checked). Neither rule can be "
        "written in JSON Schema: a password this schema allows may still be refused.",
        minLength=PASSWORD_MIN,
        maxLength=PASSWORD_MAX,
    ),
]
Title = Annotated[
    StrictStr,
    AfterValidator(_title),
    described(
        "Unique per user, ignoring case; not blank; no control characters.",
        minLength=1,
        maxLength=TITLE_MAX,
        pattern=TITLE_PATTERN,
    ),
]
Description = Annotated[
    StrictStr,
    AfterValidator(_description),
    described("Optional; tabs and line breaks are kept.", maxLength=DESCRIPTION_MAX, pattern=DESCRIPTION_PATTERN),
]
Category = Annotated[
    StrictStr,
    AfterValidator(_category),
    described("One of the eight categories (any case is accepted; stored in lower case).", enum=list(CATEGORIES)),
]


def at_least_one_of(*names: str, files: tuple[str, ...] = ()) -> list[JsonValue]:
    """JSON Schema for "at least one of these fields, given as a string" (null counts as absent;
    an empty file part, as Postman sends for a file left blank, too). Inside allOf, so that
    importers still read the object's own properties."""
    fields: list[JsonValue] = [{"required": [name], "properties": {name: {"type": "string"}}} for name in names]
    files_: list[JsonValue] = [
        {"required": [name], "properties": {name: {"type": "string", "minLength": 1}}} for name in files
    ]
    return [{"anyOf": fields + files_}]


class Schema(BaseModel):
    # Unknown fields (a client-sent user_id, say) are dropped, never stored.
    model_config = ConfigDict(extra="ignore")


def not_guessable(password: str, *context: str) -> str:
    """Refuse passwords found in, or a little away from, zxcvbn's lists of common and
    breached passwords, words and names, or built from the user's own name or email."""
    # Note: zxcvbn keeps user_inputs in module state; the app's sync workers run one request at a time.
    inputs = [part for text in context for part in text.split()]
    checked = password[:STRENGTH_CHECKED_CHARS]
    result = zxcvbn(checked, user_inputs=inputs, max_length=STRENGTH_CHECKED_CHARS)
    if result["score"] >= MIN_PASSWORD_SCORE:
        return password
    common = any(match.get("dictionary_name") == "passwords" for match in result["sequence"])
    subject = "it is" if checked == password else f"its first {STRENGTH_CHECKED_CHARS} characters are"
    reason = f"{subject} a common or breached password" if common else f"{subject} too easy to guess"
    warning = result["feedback"].get("warning")
    raise ValueError(f"Password is not allowed: {reason}" + (f" ({warning.rstrip('.')})." if warning else "."))


_MESSAGES = {
    "missing": "This field is required.",
    "string_type": "Must be a string.",
    "list_type": "Must be a list.",
    "int_parsing": "Must be a whole number.",
    "int_type": "Must be a whole number.",
    "greater_than_equal": "Must be at least {ge}.",
    "less_than_equal": "Must be at most {le}.",
    "string_too_long": "Must be at most {max_length} characters.",
    "string_too_short": "Must not be empty.",
    "dict_type": "Must be a JSON object.",
}


def _message(error: ErrorDetails) -> str:
    ctx = error.get("ctx") or {}
    if error["type"] == "value_error":
        return str(ctx.get("error", error["msg"]))
    template = _MESSAGES.get(error["type"])
    return template.format(**ctx) if template else error["msg"]


S = TypeVar("S", bound=BaseModel)


def load(schema: type[S], data: object, context: dict[str, Any] | None = None) -> S:
    """Validate a mapping against a schema, or raise InvalidInput with one message per field."""
    if not isinstance(data, dict):
        raise InvalidInput({"body": "Request body must be a JSON object."})
    try:
        return schema.model_validate(data, context=context)
    except PydanticValidationError as exc:
        errors: dict[str, str] = {}
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else "body"
            errors.setdefault(field, _message(error))
        raise InvalidInput(errors) from None
