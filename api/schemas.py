"""What the API answers: one shape per resource, used both to build the answer (`Shape.of(doc)`)
and to document it in /openapi.json. Requests are validated by validate.py."""

from __future__ import annotations

from typing import Any, Generic, Literal, TypeVar

from bson import ObjectId
from pydantic import BaseModel, ConfigDict, Field

from auth.passkeys import authenticator_name
from database.documents import Document, isoformat
from models import mfa_enabled
from validate import CATEGORIES, CURSOR_MAX, PER_PAGE_MAX, RECOVERY_CODES

T = TypeVar("T")


class Envelope(BaseModel, Generic[T]):
    """Every successful JSON response."""

    message: str
    data: T
    error: None = None


class ErrorEnvelope(BaseModel):
    """Every failed response: `error` names the failure (each status shows its own example)."""

    message: str
    data: None = None
    error: str


class InvalidInputEnvelope(BaseModel):
    """400 for invalid input: `error` maps each bad field to its message."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "message": "The request has invalid fields.",
                    "data": None,
                    "error": {
                        "title": "Title must be 1 to 200 characters.",
                        "cover_image": "A cover image file is required.",
                    },
                }
            ]
        }
    )
    message: str
    data: None = None
    error: dict[str, str]


class UserOut(BaseModel):
    id: str
    name: str
    email: str
    email_verified: bool = Field(description="Whether the owner of the address has proved it with a mailed link.")
    mfa_enabled: bool
    created_at: str
    updated_at: str

    @classmethod
    def of(cls, user: Document) -> dict[str, Any]:
        return cls(
            id=str(user["_id"]),
            name=user["name"],
            email=user["email"],
            email_verified=bool(user.get("email_verified")),
            mfa_enabled=mfa_enabled(user),
            created_at=isoformat(user["created_at"]),
            updated_at=isoformat(user["updated_at"]),
        ).model_dump()


class Accepted(BaseModel):
    """202: the request is taken; what follows comes by mail."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"message": "Check your email to finish signing up.", "data": None, "error": None}]
        }
    )
    message: str
    data: None = None
    error: None = None


class TokensOut(BaseModel):
    token: str = Field(description="Access token (JWT), sent as `Authorization: Bearer <token>`.")
    token_type: str = "Bearer"
    expires_in: int = Field(
        description="Seconds until the access token expires: 15 minutes, or less when the session ends sooner."
    )
    refresh_token: str | None = Field(
        default=None, description="Absent when the refresh token travels in a cookie (REFRESH_TOKEN_COOKIE)."
    )
    csrf_token: str | None = Field(
        default=None,
        description=(
            "Only when the refresh token travels in a cookie: send it as X-CSRF-Token to refresh. "
            "The same value as the csrf_token cookie, which a page on another origin cannot read."
        ),
    )


class LoginOut(UserOut, TokensOut):
    """Logged in. `mfa_required` tells it from MfaChallengeOut, the other answer to a password."""

    mfa_required: Literal[False] = False


class MfaChallengeOut(BaseModel):
    """A correct password for an account with a second factor: finish at POST /users/login/mfa."""

    mfa_required: Literal[True] = True
    mfa_ticket: str
    expires_in: int


class MfaEnrollmentOut(BaseModel):
    secret: str = Field(description="Shown only now; type it into an app that cannot scan.")
    otpauth_uri: str
    qr_code: str = Field(description="PNG data URL of otpauth_uri, for a phone to scan.")


class RecoveryCodesOut(BaseModel):
    recovery_codes: list[str] = Field(
        description="Shown only now; each works once.", min_length=RECOVERY_CODES, max_length=RECOVERY_CODES
    )


class PasskeyOptionsOut(BaseModel):
    options: dict[str, Any] = Field(
        description=(
            "The publicKey options for navigator.credentials.create() (registration) or .get() (login), "
            "in their JSON form: binary values are base64url strings. Answer within expires_in seconds, once."
        )
    )
    expires_in: int


class PasskeyOut(BaseModel):
    id: str
    name: str
    authenticator: str | None = Field(description="Where the passkey lives, when the authenticator says so.")
    backed_up: bool = Field(description="Whether the passkey is synced (it survives losing the device).")
    created_at: str
    last_used_at: str | None

    @classmethod
    def of(cls, passkey: Document) -> dict[str, Any]:
        last_used = passkey.get("last_used_at")
        return cls(
            id=str(passkey["_id"]),
            name=passkey["name"],
            authenticator=authenticator_name(passkey.get("aaguid")),
            backed_up=bool(passkey.get("backed_up")),
            created_at=isoformat(passkey["created_at"]),
            last_used_at=isoformat(last_used) if last_used else None,
        ).model_dump()


class BookOut(BaseModel):
    id: str
    title: str
    description: str
    category: str = Field(json_schema_extra={"enum": list(CATEGORIES)})
    image_url: str = Field(description="Absolute URL of the 150x150 cover thumbnail.")
    user_id: str
    created_at: str
    updated_at: str

    @classmethod
    def of(cls, book: Document, image_url: str) -> dict[str, Any]:
        return cls(
            id=str(book["_id"]),
            title=book["title"],
            description=book.get("description", ""),
            category=book["category"],
            image_url=image_url,
            user_id=str(book["user_id"]),
            created_at=isoformat(book["created_at"]),
            updated_at=isoformat(book["updated_at"]),
        ).model_dump()


class PageMeta(BaseModel):
    paging: Literal["page"] = Field(default="page", description="Which way this list was paged: by page number.")
    page: int
    per_page: int
    total: int
    pages: int


class CursorMeta(BaseModel):
    paging: Literal["cursor"] = Field(default="cursor", description="Which way this list was paged: by cursor.")
    limit: int
    next_cursor: str | None = Field(description="Send as `after` for the next page; null on the last page.")


class BookPage(Envelope[list[BookOut]]):
    data: list[BookOut] = Field(max_length=max(PER_PAGE_MAX, CURSOR_MAX))
    meta: PageMeta | CursorMeta = Field(discriminator="paging")


class SessionOut(BaseModel):
    id: str
    created_at: str
    last_used_at: str
    expires_at: str
    ip: str | None
    user_agent: str | None
    current: bool

    @classmethod
    def of(cls, session: Document, current_sid: ObjectId | None) -> dict[str, Any]:
        return cls(
            id=str(session["_id"]),
            created_at=isoformat(session["created_at"]),
            last_used_at=isoformat(session["last_used_at"]),
            expires_at=isoformat(session["expires_at"]),
            ip=session.get("ip"),
            user_agent=session.get("user_agent"),
            current=session["_id"] == current_sid,
        ).model_dump()


class AccessTokenOut(BaseModel):
    """A personal access token as its owner sees it after its creation: never the secret."""

    id: str = Field(description="Names the token in URLs (DELETE /users/tokens/{token_id}); not the secret.")
    name: str
    scopes: list[str]
    prefix: str = Field(description="The secret's first characters, to tell tokens apart.")
    created_at: str
    expires_at: str
    expires_soon: bool = Field(description="True when the token expires within 7 days.")
    last_used_at: str | None = Field(description="Recorded at most once a minute.")
    last_used_ip: str | None

    @classmethod
    def of(cls, token: Document, expires_soon: bool) -> dict[str, Any]:
        last_used = token.get("last_used_at")
        return cls(
            id=str(token["_id"]),
            name=token["name"],
            scopes=token["scopes"],
            prefix=token["prefix"],
            created_at=isoformat(token["created_at"]),
            expires_at=isoformat(token["expires_at"]),
            expires_soon=expires_soon,
            last_used_at=isoformat(last_used) if last_used else None,
            last_used_ip=token.get("last_used_ip"),
        ).model_dump()


class AccessTokenCreatedOut(AccessTokenOut):
    token: str = Field(
        description="The secret, shown only now: send it as `Authorization: Bearer <token>`. It starts with "
        "`blpat_`; only its hash is stored."
    )


class EventOut(BaseModel):
    type: str
    at: str
    ip: str | None
    user_agent: str | None
    detail: dict  # type: ignore[type-arg]  # as it is in the document: any object

    @classmethod
    def of(cls, event: Document) -> dict[str, Any]:
        return cls(
            type=event["type"],
            at=isoformat(event["at"]),
            ip=event.get("ip"),
            user_agent=event.get("user_agent"),
            detail=event.get("detail", {}),
        ).model_dump()


class EventPageMeta(BaseModel):
    limit: int
    failed_logins: str = Field(description="Which failed logins the page lists, as asked (`exclude` by default).")
    next_before: str | None = Field(description="Send as `before` for the next, older page; null on the last page.")


class EventList(Envelope[list[EventOut]]):
    data: list[EventOut] = Field(max_length=PER_PAGE_MAX)
    meta: EventPageMeta


class Banner(BaseModel):
    name: str
    docs: str = Field(description="Interactive documentation (Swagger UI).")
    openapi: str = Field(description="The OpenAPI 3.1 document: import it into Postman or a code generator.")
    refresh_token_cookie: bool = Field(
        description="True when refresh tokens travel in an HttpOnly cookie (REFRESH_TOKEN_COOKIE), not in bodies."
    )


class Health(BaseModel):
    database: str
