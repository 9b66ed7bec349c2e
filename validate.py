"""All input validation: request schemas and the mapping of their errors to field messages."""

from __future__ import annotations

import re
from typing import Annotated, Any, TypeVar

from email_validator import SPECIAL_USE_DOMAIN_NAMES, EmailNotValidError, validate_email
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    StrictInt,
    StrictStr,
    ValidationInfo,
    field_validator,
)
from pydantic import ValidationError as PydanticValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails
from spectree.model_adapter.pydantic_adapter import BaseFile as UploadedFile
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


def _email(value: str) -> str:
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


def _doc(description: str, **schema: JsonValue) -> FieldInfo:
    """Describe a field in the OpenAPI document; the validator functions do the checking."""
    field: FieldInfo = Field(description=description, json_schema_extra=schema or None)
    return field


Name = Annotated[
    StrictStr,
    AfterValidator(_name),
    _doc(
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
    AfterValidator(_email),
    _doc(
        "Unique, compared case-insensitively; a deliverable domain; at most 64 bytes (UTF-8) before the @.",
        format="email",
        pattern=EMAIL_PATTERN,
    ),
]
Password = Annotated[
    StrictStr,
    AfterValidator(_password),
    _doc(
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
    _doc(
        "Unique per user, ignoring case; not blank; no control characters.",
        minLength=1,
        maxLength=TITLE_MAX,
        pattern=TITLE_PATTERN,
    ),
]
Description = Annotated[
    StrictStr,
    AfterValidator(_description),
    _doc("Optional; tabs and line breaks are kept.", maxLength=DESCRIPTION_MAX, pattern=DESCRIPTION_PATTERN),
]
Category = Annotated[
    StrictStr,
    AfterValidator(_category),
    _doc("One of the eight categories (any case is accepted; stored in lower case).", enum=list(CATEGORIES)),
]


def _at_least_one_of(*names: str, files: tuple[str, ...] = ()) -> list[JsonValue]:
    """JSON Schema for "at least one of these fields, given as a string" (null counts as absent;
    an empty file part, as Postman sends for a file left blank, too). Inside allOf, so that
    importers still read the object's own properties."""
    fields: list[JsonValue] = [{"required": [name], "properties": {name: {"type": "string"}}} for name in names]
    files_: list[JsonValue] = [
        {"required": [name], "properties": {name: {"type": "string", "minLength": 1}}} for name in files
    ]
    return [{"anyOf": fields + files_}]


class _Schema(BaseModel):
    # Unknown fields (a client-sent user_id, say) are dropped, never stored.
    model_config = ConfigDict(extra="ignore")


def _not_guessable(password: str, *context: str) -> str:
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


class SignUp(_Schema):
    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "examples": [{"name": "Ada Lovelace", "email": "ada@example.com", "password": "Corr3ct horse battery!"}]
        },
    )
    name: Name
    email: Email
    password: Password

    @field_validator("password")
    @classmethod
    def _strong(cls, value: str, info: ValidationInfo) -> str:
        return _not_guessable(value, info.data.get("name", ""), info.data.get("email", ""))


def _login_email(value: str) -> str:
    # Never fails: any bad email/password pair gets the same 401, not a field error.
    try:
        return _email(value)
    except ValueError:
        return value.strip().lower()


class Login(_Schema):
    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={"examples": [{"email": "ada@example.com", "password": "Corr3ct horse battery!"}]},
    )
    email: Annotated[StrictStr, Field(max_length=320), AfterValidator(_login_email)]
    password: StrictStr = Field(max_length=PASSWORD_MAX * 4)


class UserUpdate(_Schema):
    model_config = ConfigDict(extra="ignore", json_schema_extra={"examples": [{"name": "Augusta Ada King"}]})
    name: Name


Code = Annotated[
    StrictStr,
    Field(
        description="The 6-digit code your authenticator app shows now (it changes every 30 seconds).",
        examples=["123456"],
    ),
]
RecoveryCode = Annotated[StrictStr, Field(max_length=64, description="One of your single-use recovery codes.")]


class MfaCode(_Schema):
    model_config = ConfigDict(extra="ignore", json_schema_extra={"examples": [{"code": "123456"}]})
    code: Code


class MfaFactor(_Schema):
    """A current code, or a recovery code, where the second factor is asked for."""

    model_config = ConfigDict(extra="ignore", json_schema_extra={"examples": [{"code": "123456"}]})

    code: Code | None = None
    recovery_code: RecoveryCode | None = None


class MfaDisable(MfaFactor):
    model_config = ConfigDict(
        extra="ignore", json_schema_extra={"examples": [{"password": "Corr3ct horse battery!", "code": "123456"}]}
    )
    password: StrictStr = Field(max_length=PASSWORD_MAX * 4)


# The password of a sensitive action, sent with the request itself (step-up).
CurrentPassword = Annotated[
    StrictStr,
    Field(max_length=PASSWORD_MAX * 4, description="The account's password: an access token alone is not enough."),
]


class MfaStart(_Schema):
    model_config = ConfigDict(extra="ignore", json_schema_extra={"examples": [{"password": "Corr3ct horse battery!"}]})
    password: CurrentPassword


class AccountDisable(MfaFactor):
    """The password, and with two-factor on a `code` or `recovery_code` as well."""

    model_config = ConfigDict(
        extra="ignore", json_schema_extra={"examples": [{"password": "Corr3ct horse battery!", "code": "123456"}]}
    )
    password: CurrentPassword


class MfaLogin(MfaFactor):
    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "examples": [{"mfa_ticket": "eyJhbGciOiJIUzI1NiIs...", "code": "123456"}],
            # The code, or a recovery code: at least one of them.
            "allOf": _at_least_one_of("code", "recovery_code"),
        },
    )
    mfa_ticket: StrictStr = Field(max_length=4096)


class PasswordChange(MfaFactor):
    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "examples": [{"current_password": "Corr3ct horse battery!", "new_password": "Tr0ubadour & 3 horses!"}]
        },
    )
    current_password: StrictStr = Field(max_length=PASSWORD_MAX * 4)
    new_password: Password

    @field_validator("new_password")
    @classmethod
    def _strong(cls, value: str, info: ValidationInfo) -> str:
        if value == info.data.get("current_password"):
            raise ValueError("New password must differ from the current one.")
        # The caller passes the account's name and email, checked as at sign-up.
        return _not_guessable(value, *(info.context or {}).get("user_inputs", ()))


class PasswordForgot(_Schema):
    model_config = ConfigDict(extra="ignore", json_schema_extra={"examples": [{"email": "ada@example.com"}]})
    email: Email


class LinkToken(_Schema):
    """The token of a mailed link: what follows `#token=` in it."""

    model_config = ConfigDict(
        extra="ignore", json_schema_extra={"examples": [{"token": "q3RkVtG2Yf0xq1Zs7n3C9pWm5bJ8hL4dA6uE2kT0vXw"}]}
    )
    token: StrictStr = Field(min_length=1, max_length=128, description="The value after `#token=` in the mailed link.")


class PasswordReset(LinkToken):
    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "examples": [
                {"token": "q3RkVtG2Yf0xq1Zs7n3C9pWm5bJ8hL4dA6uE2kT0vXw", "new_password": "Tr0ubadour & 3 horses!"}
            ]
        },
    )
    new_password: Password

    @field_validator("new_password")
    @classmethod
    def _strong(cls, value: str, info: ValidationInfo) -> str:
        # The caller passes the account's name and email, checked as at sign-up.
        return _not_guessable(value, *(info.context or {}).get("user_inputs", ()))


class EmailChange(MfaFactor):
    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={"examples": [{"email": "ada@example.org", "password": "Corr3ct horse battery!"}]},
    )
    email: Email
    password: StrictStr = Field(max_length=PASSWORD_MAX * 4)


PASSKEY_NAME_MAX = 64
PasskeyName = Annotated[
    StrictStr,
    Field(min_length=1, max_length=PASSKEY_NAME_MAX, description="Your name for the passkey, to tell it apart."),
]
Credential = Annotated[
    dict[str, JsonValue],
    Field(description="What the browser's navigator.credentials answered, in its JSON form (toJSON())."),
]


class PasskeyConfirm(_Schema):
    """The sensitive-action check before a new passkey: the password, or an assertion of an
    existing passkey (answering options from POST /users/login/passkey/options)."""

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "examples": [{"password": "Corr3ct horse battery!"}],
            # One of them, not null.
            "allOf": [
                {
                    "anyOf": [
                        {"required": ["password"], "properties": {"password": {"type": "string"}}},
                        {"required": ["passkey"], "properties": {"passkey": {"type": "object"}}},
                    ]
                }
            ],
        },
    )
    password: CurrentPassword | None = None
    passkey: Credential | None = None


class PasskeyRegistration(_Schema):
    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={"examples": [{"credential": {"id": "...", "rawId": "...", "type": "public-key"}}]},
    )
    credential: Credential
    name: PasskeyName | None = None


class PasskeyLogin(_Schema):
    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={"examples": [{"credential": {"id": "...", "rawId": "...", "type": "public-key"}}]},
    )
    credential: Credential


class PasskeyRename(_Schema):
    model_config = ConfigDict(extra="ignore", json_schema_extra={"examples": [{"name": "Work laptop"}]})
    name: PasskeyName


def _whole_float(value: object) -> object:
    """30.0 is an integer to JSON Schema, as it is here; "30" and true are not."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _token_name(value: str) -> str:
    # As a title: it is shown in mails and pages, so no control or text-direction characters.
    if len(value) > TOKEN_NAME_MAX or not value.strip():
        raise ValueError(f"Name must be 1 to {TOKEN_NAME_MAX} characters.")
    if not re.match(TITLE_PATTERN, value):
        raise ValueError(f"Name {UNSAFE_TEXT}.")
    return value.strip()


def _scopes(value: list[str]) -> list[str]:
    unknown = [scope for scope in value if scope not in TOKEN_SCOPES]
    if unknown or not value:
        raise ValueError("Give one or more scopes, each one of: " + ", ".join(TOKEN_SCOPES) + ".")
    return list(dict.fromkeys(value))  # each once, in the order given


class AccessTokenCreate(MfaFactor):
    """A personal access token's name, scopes and lifetime, and the step-up: the password and,
    with two-factor on, a `code` or `recovery_code`."""

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "examples": [
                {
                    "name": "nightly backup script",
                    "scopes": ["books:read"],
                    "expires_in_days": 30,
                    "password": "Corr3ct horse battery!",
                }
            ]
        },
    )
    name: Annotated[
        StrictStr,
        AfterValidator(_token_name),
        _doc("What the token is for; not blank.", minLength=1, maxLength=TOKEN_NAME_MAX, pattern=TITLE_PATTERN),
    ]
    scopes: Annotated[
        list[Annotated[StrictStr, _doc("A scope.", enum=list(TOKEN_SCOPES))]],
        AfterValidator(_scopes),
        Field(
            min_length=1,
            description="What the token may do: " + "; ".join(f"`{k}`: {v}" for k, v in TOKEN_SCOPES.items()),
        ),
    ]
    expires_in_days: Annotated[StrictInt, BeforeValidator(_whole_float)] = Field(
        default=TOKEN_DAYS_DEFAULT,
        ge=1,
        le=TOKEN_DAYS_MAX,
        description=f"Days until the token stops working ({TOKEN_DAYS_DEFAULT} by default, at most {TOKEN_DAYS_MAX}).",
    )
    password: CurrentPassword


class RefreshRequest(_Schema):
    model_config = ConfigDict(
        extra="ignore", json_schema_extra={"examples": [{"refresh_token": "6b0b18e273eb5f140deb98db.secret"}]}
    )
    # Generous, so a wrong kind of token is answered 401 by the check, not 400 here.
    refresh_token: StrictStr = Field(min_length=1, max_length=4096)


FAILED_LOGINS = ("exclude", "include", "only")
# An events cursor (api.cursors.encode_event) for the last millisecond of 9999: before it, every event.
EVENTS_FROM_NEWEST = "AADmd9If2_________________8"


def _failed_logins(value: str) -> str:
    if value not in FAILED_LOGINS:
        raise ValueError("Must be one of: " + ", ".join(FAILED_LOGINS) + ".")
    return value


class EventsQuery(_Schema):
    limit: int = Field(default=50, ge=1, le=PER_PAGE_MAX, description="Events per page, newest first.")
    before: StrictStr | None = Field(
        default=None,
        min_length=1,
        max_length=CURSOR_MAX,
        description="`meta.next_before` of the previous page; leave out for the newest events.",
        # Documented as the cursor of the end of time, which leaving it out means: an importer
        # then sends a cursor that works (the first page), never a placeholder.
        json_schema_extra={"default": EVENTS_FROM_NEWEST},
    )
    failed_logins: Annotated[
        StrictStr,
        AfterValidator(_failed_logins),
        _doc(
            "Wrong passwords and lock-outs at /users/login, which anyone who types the address can cause: "
            "left out (`exclude`, the default, so that they never push the account's own events off a page), "
            "listed with the rest (`include`), or listed alone (`only`).",
            enum=list(FAILED_LOGINS),
        ),
    ] = "exclude"


class BookCreate(_Schema):
    title: Title
    description: Description = ""
    category: Category


BOOK_FIELDS = ("title", "description", "category")


class BookUpdate(_Schema):
    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "examples": [{"title": "Dune Messiah", "category": "fantasy"}],
            "allOf": _at_least_one_of(*BOOK_FIELDS),
        },
    )
    title: Title | None = None
    description: Description | None = None
    category: Category | None = None


class BookQuery(_Schema):
    """Two ways to page, one at a time: a mix of them is refused (400)."""

    page: int = Field(
        default=1,
        ge=1,
        le=1_000_000,
        description="Page-number mode: the page (with totals). Not with limit or after: a mix is refused (400).",
    )
    per_page: int = Field(
        default=PER_PAGE_DEFAULT,
        ge=1,
        le=PER_PAGE_MAX,
        description="Page-number mode: books per page. Not with limit or after: a mix is refused (400).",
    )
    category: Category | None = None
    limit: int | None = Field(
        default=None,
        ge=1,
        le=PER_PAGE_MAX,
        description=(
            f"Cursor mode: books per page ({PER_PAGE_DEFAULT} when left out). "
            "Not with page or per_page: a mix is refused (400)."
        ),
    )
    after: StrictStr | None = Field(
        default=None,
        min_length=1,
        max_length=CURSOR_MAX,
        description=(
            "Cursor mode: `meta.next_cursor` of the previous page; leave out for the first page. "
            "Not with page or per_page: a mix is refused (400)."
        ),
    )


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


def load_book_create(data: object) -> dict[str, Any]:
    return load(BookCreate, data).model_dump()


def load_book_update(data: object) -> dict[str, Any]:
    """Only the fields the client sent."""
    return load(BookUpdate, data).model_dump(exclude_none=True)


# --- Conditional-request headers, for the document -----------------------------------


class IfNoneMatch(BaseModel):
    """Conditional GET."""

    if_none_match: str | None = Field(
        default=None,
        alias="If-None-Match",
        description="The ETag of an earlier response: 304 with no body while it still matches.",
    )


class IfMatch(BaseModel):
    """Conditional change."""

    if_match: str | None = Field(
        default=None,
        alias="If-Match",
        description="The book's ETag as you read it: 412, and no change, if it has changed since. `*`: any state.",
        examples=["*"],  # what an importer fills in must not refuse every change
    )


class ChangeConditions(IfMatch):
    """Conditional change: If-Match, and If-None-Match as RFC 9110 defines it for a change."""

    if_none_match: str | None = Field(
        default=None,
        alias="If-None-Match",
        description="`*` (or the book's current ETag): 412, and no change, because the book exists.",
    )


class BookCreateForm(BookCreate):
    """POST /books/ as multipart/form-data."""

    model_config = ConfigDict(
        # The file's example is its name: importers then offer a file field for it.
        json_schema_extra={
            "examples": [
                {"title": "Dune", "description": "Spice and sand.", "category": "science", "cover_image": "cover.png"}
            ]
        }
    )
    cover_image: UploadedFile = Field(
        description="JPEG, PNG, GIF or WebP; at most MAX_UPLOAD_BYTES.", json_schema_extra={"minLength": 1}
    )


class BookUpdateForm(BookUpdate):
    """PUT /books/<id> as a form: any of the fields, and a new cover with multipart."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"description": "The sequel.", "cover_image": "cover.png"}],
            "allOf": _at_least_one_of(*BOOK_FIELDS, files=("cover_image",)),
        }
    )

    cover_image: UploadedFile | None = Field(
        default=None, description="A new cover: JPEG, PNG, GIF or WebP; an empty part is no new cover."
    )
