"""The OpenAPI 3.1 document, generated from the schemas the views check requests with
(validate.py) and answer with (api/schemas.py); docs.py serves it."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, ParamSpec, TypedDict, TypeVar

from pydantic import BaseModel
from spectree import Response as SpecResponse
from spectree import SecurityScheme, SecuritySchemeData, SpecTree
from spectree.models import SecureType
from werkzeug.exceptions import RequestEntityTooLarge, default_exceptions
from werkzeug.http import HTTP_STATUS_CODES

from api.schemas import ErrorEnvelope, InvalidInputEnvelope
from auth_middleware import SESSION_ONLY, required_scopes, scope_refusal
from database.documents import OBJECT_ID_HEX_LENGTH
from validate import TOKEN_SCOPES

BEARER = (
    "The `token` of a login (a JWT, 15 minutes), or a personal access token (`blpat_...`, from "
    "POST /users/tokens) for scripts. Each operation's security requirement lists the scopes a "
    "personal access token needs for it; an empty list means a login's token only. Scopes: "
    + "; ".join(f"`{name}`: {text.rstrip('.')}" for name, text in TOKEN_SCOPES.items())
    + '. A token without the scope gets 403 with `WWW-Authenticate: Bearer error="insufficient_scope"`.'
)

api = SpecTree(
    "flask",
    title="Book Library API",
    version="1.0.0",
    description=(
        "A personal book library: sign up, log in for a JWT, manage your books and their covers. "
        "Every JSON response is an envelope `{message, data, error}`."
    ),
    mode="strict",  # only the routes described here
    annotations=False,
    validation_error_status=400,
    validation_error_model=InvalidInputEnvelope,
    # Component names must match ^[A-Za-z0-9._-]+$: Envelope[UserOut] becomes Envelope_UserOut_.
    naming_strategy=lambda model: re.sub(r"[^A-Za-z0-9._-]", "_", model.__name__),
    nested_naming_strategy=lambda parent, child: child,
    security_schemes=[
        SecurityScheme(
            name="bearerAuth",
            data=SecuritySchemeData(type=SecureType.HTTP, scheme="bearer", bearer_format="JWT", description=BEARER),
        )
    ],
)

# Failures every operation can meet besides its own: the server in front (gunicorn) answers
# 414 and 431 itself, in the same envelope (gunicorn.conf.py); the app answers 500, and 503
# while the database is away (database=True).
SERVER_ERRORS = {
    414: ("The request line is too long.", "URI Too Long"),
    431: ("The request's header fields are too large.", "Request Header Fields Too Large"),
}
BODY_ERRORS = (413, 415)
ERROR_ENVELOPE = "#/components/schemas/ErrorEnvelope"
# What each failure says, unless the operation says it more precisely (documented(messages=...)).
ERROR_MESSAGES = {
    401: "Token has expired.",
    404: "Not found.",
    413: RequestEntityTooLarge.description,
    415: "Content-Type must be application/json.",
    429: "Too many requests; try again later.",
    500: "An unexpected error occurred.",
    503: "The database is unavailable; try again shortly.",
}
INVALID_FIELDS = "The request has invalid fields."
IMAGE_TYPES = "image/jpeg, image/png, image/gif, image/webp"  # the covers save_image accepts
P = ParamSpec("P")
R = TypeVar("R")
Schema = type[BaseModel]
# A part of the document (an operation, a schema, a parameter), as spectree builds it.
Part = dict[str, Any]


class _Notes(TypedDict, total=False):
    messages: dict[int, str]
    optional_body: bool
    token_note: str  # what a personal access token needs, in words


# What each operation says beyond its schemas (example messages, an optional body), by operationId.
_NOTES: dict[str, _Notes] = {}


# Answers without a body.
BODILESS = (304,)


def documented(
    *,
    tags: list[str],
    ok: tuple[int, Schema | None],
    json: Schema | None = None,
    form: Schema | None = None,
    query: Schema | None = None,
    headers: Schema | None = None,
    auth: bool = False,
    errors: Iterable[int] = (),
    messages: Mapping[int, str] | None = None,
    operation_id: str | None = None,
    optional_body: bool = False,
    database: bool = True,
    also: Sequence[tuple[int, Schema | None]] = (),
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Describe a route in the OpenAPI document from the same schemas validate.py checks
    requests with. Validation itself stays in the views (our envelope, our messages).
    `messages` gives a status its own example; the operationId is the view's name in camelCase.
    `optional_body`: the JSON body may be left out; `database=False`: no 503, the route needs none;
    `also`: other successful answers, as (status, schema) pairs."""
    # With a bearer token comes 401 (no valid token) and 403 (a personal access token without the scope).
    codes = set(errors) | {500} | ({503} if database else set()) | ({401, 403} if auth else set())
    codes |= set(BODY_ERRORS) if json or form else set()
    responses: dict[str, Schema | None] = {
        f"HTTP_{code}": ErrorEnvelope for code in codes if code not in (400, *BODILESS)
    }
    for status, schema in (ok, *also):
        responses[f"HTTP_{status}"] = schema
    bodiless = [f"HTTP_{code}" for code in codes & set(BODILESS)]

    def decorate(view: Callable[P, R]) -> Callable[P, R]:
        name = operation_id or _camel_case(view.__name__)
        # OpenAPI 3.1 lets an http scheme's requirement list roles: here, a token's scopes.
        scopes = list(required_scopes(view) or ())
        notes = dict(messages or {})
        if auth:
            notes.setdefault(403, scope_refusal(scopes) if scopes else SESSION_ONLY)
        _NOTES[name] = {"messages": notes, "optional_body": optional_body}
        if auth:
            _NOTES[name]["token_note"] = _token_note(scopes)
        # spectree's decorator keeps the view's signature (functools.wraps) but is typed as a bare Callable.
        validated: Callable[P, R] = api.validate(
            json=json,
            form=form,
            query=query,
            headers=headers,
            resp=SpecResponse(*bodiless, **responses),
            tags=tags,
            security={"bearerAuth": scopes} if auth else {},
            skip_validation=True,
            operation_id=name,
        )(view)
        return validated

    return decorate


def _token_note(scopes: list[str]) -> str:
    if scopes:
        return "Personal access tokens: need the scope " + " and ".join(f"`{scope}`" for scope in scopes) + "."
    return "Personal access tokens: refused (403); this needs a login."


def _camel_case(name: str) -> str:
    first, *rest = name.split("_")
    return first + "".join(word.capitalize() for word in rest)


def build_document(public_url: str) -> dict[str, Any]:
    """The document from the routes and schemas, refined where the generator cannot know: the
    server's address, examples where importers read them, files, optional bodies, and an
    example of its own for every failure. Needs an app context (the routes)."""
    document: dict[str, Any] = copy.deepcopy(api.spec)
    # Where the API is reached from outside; importers (Postman) take their base URL from it.
    document["servers"] = [{"url": public_url or "/"}]
    schemas = document["components"]["schemas"]
    for item in document["paths"].values():
        for operation in item.values():
            _refine_parameters(operation)
            _refine_request_body(operation, schemas)
            _refine_responses(operation, schemas)
            _describe_etags(operation)
            _note_token_scopes(operation)
    _answers_as_sent(document)
    return document


def _note_token_scopes(operation: Part) -> None:
    """Say in words, too, what a personal access token needs: not every reader shows security roles."""
    note = _NOTES.get(operation["operationId"], {}).get("token_note")
    if note:
        operation["description"] = (operation.get("description", "") + "\n\n" + note).strip()


def _component(media: Part, schemas: Part) -> Part:
    component: Part = schemas[media["schema"]["$ref"].rsplit("/", 1)[1]]
    return component


def _refine_parameters(operation: Part) -> None:
    for parameter in operation.get("parameters", []):
        if parameter["in"] == "path" and parameter["schema"] is None:  # our objectid converter
            parameter["schema"] = {"type": "string", "pattern": f"^[0-9a-fA-F]{{{OBJECT_ID_HEX_LENGTH}}}$"}
        elif parameter["in"] in ("query", "header"):
            # An optional parameter is left out, never null. Its default is said in words:
            # generated clients send a schema's default with every call.
            parameter["schema"] = schema = _without_null(parameter["schema"])
            default = schema.pop("default", None)
            if default is not None:
                said = (parameter.get("description") or schema.get("description", "")).rstrip(".")
                parameter["description"] = schema["description"] = f"{said}; {default} when left out.".lstrip("; ")


def _without_null(schema: Part) -> Part:
    """`X or null` as plain X, for forms and query strings, which have no null."""
    branches = [branch for branch in schema.get("anyOf", []) if branch.get("type") != "null"]
    if "anyOf" not in schema or len(branches) != 1:
        return schema
    outer = {key: value for key, value in schema.items() if key != "anyOf"}
    if outer.get("default") is None:
        outer.pop("default", None)
    return {**branches[0], **outer}


def _refine_request_body(operation: Part, schemas: Part) -> None:
    body = operation.get("requestBody")
    if body is None:
        return
    content = body["content"]
    form = content.get("multipart/form-data")
    if form is not None:
        # Listed first, so that importers build the request that can carry the cover file.
        body["content"] = content = {"multipart/form-data": form, **content}
        component = _component(form, schemas)
        component["properties"] = {name: _form_field(field) for name, field in component["properties"].items()}
        files = [name for name, field in component["properties"].items() if field.get("format") == "binary"]
        form["encoding"] = {name: {"contentType": IMAGE_TYPES} for name in files}
    for media in content.values():
        component = _component(media, schemas)
        if component.get("examples"):
            media["example"] = component["examples"][0]
        _leave_out_optional_fields(component)
    if _NOTES.get(operation["operationId"], {}).get("optional_body"):
        body["required"] = False


def _leave_out_optional_fields(component: Part) -> None:
    """A field the client may leave out has no default in the document: generators make a
    field with a default required (or send the default), so a client would have to send it."""
    for field in component["properties"].values():
        field.pop("default", None)


def _form_field(field: Part) -> Part:
    """A form field as a form carries it: a string, or a file (format binary), never null."""
    return _without_null(field)


def _refine_responses(operation: Part, schemas: Part) -> None:
    responses = operation["responses"]
    takes_input = "requestBody" in operation or any(p["in"] == "query" for p in operation.get("parameters", []))
    if not takes_input:
        responses.pop("400", None)  # nothing the client sends can be invalid
    messages = _NOTES.get(operation["operationId"], {}).get("messages", {})
    for status, response in responses.items():
        code = int(status)
        if code < 400:
            continue
        if code == 400:
            example = {"message": INVALID_FIELDS, "data": None, "error": _field_error(operation, schemas)}
        else:
            message = messages.get(code) or ERROR_MESSAGES.get(code) or HTTP_STATUS_CODES[code] + "."
            example = {"message": message, "data": None, "error": default_exceptions[code]().name}
        response["content"]["application/json"]["example"] = example
    for code, (message, error) in SERVER_ERRORS.items():
        example = {"message": message, "data": None, "error": error}
        responses[str(code)] = {
            "description": f"{HTTP_STATUS_CODES[code]}: answered by the server in front of the app",
            "content": {"application/json": {"schema": {"$ref": ERROR_ENVELOPE}, "example": example}},
        }


def _answers_as_sent(document: Part) -> None:
    """An answer's fields as they arrive: one with a default is always sent, so it is required;
    one whose default is null and that may be null is left out instead (the token that one
    refresh mode does not use), so it is optional and never null."""
    schemas = document["components"]["schemas"]
    for name in _referenced(
        [r for item in document["paths"].values() for o in item.values() for r in o["responses"].values()], schemas
    ):
        component = schemas[name]
        required = component.setdefault("required", [])
        for field_name, field in component.get("properties", {}).items():
            if "default" not in field:
                continue
            if field.pop("default") is None and any(b.get("type") == "null" for b in field.get("anyOf", ())):
                field.update(_without_null({"anyOf": field.pop("anyOf")}))
            elif field_name not in required:
                required.append(field_name)


def _referenced(parts: object, schemas: Part, found: set[str] | None = None) -> set[str]:
    """The names of the components these parts of the document refer to, directly or not."""
    found = set() if found is None else found
    if isinstance(parts, dict):
        ref = parts.get("$ref", "")
        name = ref.rsplit("/", 1)[-1]
        if ref.startswith("#/components/schemas/") and name not in found:
            found.add(name)
            _referenced(schemas[name], schemas, found)
        for value in parts.values():
            _referenced(value, schemas, found)
    elif isinstance(parts, list):
        for value in parts:
            _referenced(value, schemas, found)
    return found


def _field_error(operation: Part, schemas: Part) -> Part:
    """A plausible 400 for the operation: its first required field missing, or a query parameter out of range."""
    body = operation.get("requestBody")
    if body is not None:
        component = _component(next(iter(body["content"].values())), schemas)
        field = (component.get("required") or list(component["properties"]))[0]
        return {field: "This field is required."}
    parameter = next(p for p in operation["parameters"] if p["in"] == "query")
    return {parameter["name"]: f"Must be at least {parameter['schema'].get('minimum', 1)}."}


def _describe_etags(operation: Part) -> None:
    """Conditional requests: the ETag an answer carries, and what 304 and 412 mean."""
    responses = operation["responses"]
    conditional_get, conditional_change = "304" in responses, "412" in responses
    if conditional_get:
        responses["304"]["description"] = "Not Modified: the If-None-Match ETag still matches; no body."
    if conditional_change:
        responses["412"]["description"] = "Precondition Failed: the If-Match ETag no longer matches; nothing changed."
    if conditional_get or (conditional_change and "200" in responses):
        etag = {"description": "This state's entity tag, for If-None-Match and If-Match.", "schema": {"type": "string"}}
        responses["200"].setdefault("headers", {})["ETag"] = etag
