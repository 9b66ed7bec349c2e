"""What the passkey requests carry: the step-up before a new passkey, the browser's answers
(registration and login), and a passkey's new name."""

from __future__ import annotations

from typing import Annotated

from pydantic import ConfigDict, Field, JsonValue, StrictStr

from api.account_requests import CurrentPassword
from validate import Schema

PASSKEY_NAME_MAX = 64
PasskeyName = Annotated[
    StrictStr,
    Field(min_length=1, max_length=PASSKEY_NAME_MAX, description="Your name for the passkey, to tell it apart."),
]
Credential = Annotated[
    dict[str, JsonValue],
    Field(description="What the browser's navigator.credentials answered, in its JSON form (toJSON())."),
]


class PasskeyConfirm(Schema):
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


class PasskeyRegistration(Schema):
    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={"examples": [{"credential": {"id": "...", "rawId": "...", "type": "public-key"}}]},
    )
    credential: Credential
    name: PasskeyName | None = None


class PasskeyLogin(Schema):
    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={"examples": [{"credential": {"id": "...", "rawId": "...", "type": "public-key"}}]},
    )
    credential: Credential


class PasskeyRename(Schema):
    model_config = ConfigDict(extra="ignore", json_schema_extra={"examples": [{"name": "Work laptop"}]})
    name: PasskeyName
