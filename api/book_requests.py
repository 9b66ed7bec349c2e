"""What requests about books carry: the fields, the list's query, the conditional-request headers
and the multipart forms (for the document). Each field follows the rules in validate.py."""

from __future__ import annotations

from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictStr,
)
from spectree.model_adapter.pydantic_adapter import BaseFile as UploadedFile

from validate import (
    CURSOR_MAX,
    PER_PAGE_DEFAULT,
    PER_PAGE_MAX,
    Category,
    Description,
    Schema,
    Title,
    at_least_one_of,
    load,
)


class BookCreate(Schema):
    title: Title
    description: Description = ""
    category: Category


BOOK_FIELDS = ("title", "description", "category")


class BookUpdate(Schema):
    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "examples": [{"title": "Dune Messiah", "category": "fantasy"}],
            "allOf": at_least_one_of(*BOOK_FIELDS),
        },
    )
    title: Title | None = None
    description: Description | None = None
    category: Category | None = None


class BookQuery(Schema):
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
            "allOf": at_least_one_of(*BOOK_FIELDS, files=("cover_image",)),
        }
    )

    cover_image: UploadedFile | None = Field(
        default=None, description="A new cover: JPEG, PNG, GIF or WebP; an empty part is no new cover."
    )
