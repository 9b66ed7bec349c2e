"""What requests about the account carry: sign-up, login, the second factor, passwords, the
address, passkeys, personal access tokens, refresh and the audit log's query. Each field follows
the rules in validate.py."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    ValidationInfo,
    field_validator,
)

from validate import (
    CURSOR_MAX,
    PASSWORD_MAX,
    PER_PAGE_MAX,
    TITLE_PATTERN,
    TOKEN_DAYS_DEFAULT,
    TOKEN_DAYS_MAX,
    TOKEN_NAME_MAX,
    TOKEN_SCOPES,
    UNSAFE_TEXT,
    Email,
    Name,
    Password,
    Schema,
    at_least_one_of,
    described,
    normalised_email,
    not_guessable,
)


class SignUp(Schema):
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
        return not_guessable(value, info.data.get("name", ""), info.data.get("email", ""))


def _login_email(value: str) -> str:
    # Never fails: any bad email/password pair gets the same 401, not a field error.
    try:
        return normalised_email(value)
    except ValueError:
        return value.strip().lower()


class Login(Schema):
    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={"examples": [{"email": "ada@example.com", "password": "Corr3ct horse battery!"}]},
    )
    email: Annotated[StrictStr, Field(max_length=320), AfterValidator(_login_email)]
    password: StrictStr = Field(max_length=PASSWORD_MAX * 4)


class UserUpdate(Schema):
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


class MfaCode(Schema):
    model_config = ConfigDict(extra="ignore", json_schema_extra={"examples": [{"code": "123456"}]})
    code: Code


class MfaFactor(Schema):
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


class MfaStart(Schema):
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
            "allOf": at_least_one_of("code", "recovery_code"),
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
        return not_guessable(value, *(info.context or {}).get("user_inputs", ()))


class PasswordForgot(Schema):
    model_config = ConfigDict(extra="ignore", json_schema_extra={"examples": [{"email": "ada@example.com"}]})
    email: Email


class LinkToken(Schema):
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
        return not_guessable(value, *(info.context or {}).get("user_inputs", ()))


class EmailChange(MfaFactor):
    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={"examples": [{"email": "ada@example.org", "password": "Corr3ct horse battery!"}]},
    )
    email: Email
    password: StrictStr = Field(max_length=PASSWORD_MAX * 4)


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
        described("What the token is for; not blank.", minLength=1, maxLength=TOKEN_NAME_MAX, pattern=TITLE_PATTERN),
    ]
    scopes: Annotated[
        list[Annotated[StrictStr, described("A scope.", enum=list(TOKEN_SCOPES))]],
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


class RefreshRequest(Schema):
    model_config = ConfigDict(
        extra="ignore", json_schema_extra={"examples": [{"refresh_token": "6b0b18e273eb5f140deb98db.secret"}]}
    )
    # Generous, so a wrong kind of token is answered 401 by the check, not 400 here.
    refresh_token: StrictStr = Field(min_length=1, max_length=4096)


FAILED_LOGINS = ("exclude", "include", "only")
# An events cursor (api.cursors.encode_event) for the last millisecond of 9999: before it, every event.


def _failed_logins(value: str) -> str:
    if value not in FAILED_LOGINS:
        raise ValueError("Must be one of: " + ", ".join(FAILED_LOGINS) + ".")
    return value


class EventsQuery(Schema):
    limit: int = Field(default=50, ge=1, le=PER_PAGE_MAX, description="Events per page, newest first.")
    before: StrictStr | None = Field(
        default=None,
        min_length=1,
        max_length=CURSOR_MAX,
        description="`meta.next_before` of the previous page; leave out for the newest events.",
    )
    failed_logins: Annotated[
        StrictStr,
        AfterValidator(_failed_logins),
        described(
            "Wrong passwords and lock-outs at /users/login, which anyone who types the address can cause: "
            "left out (`exclude`, the default, so that they never push the account's own events off a page), "
            "listed with the rest (`include`), or listed alone (`only`).",
            enum=list(FAILED_LOGINS),
        ),
    ] = "exclude"
