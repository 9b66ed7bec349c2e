"""Schemathesis hooks for test_contract.py (loaded by the `st` command, not by pytest).

- Protected operations run with one account's token until the run makes it unusable (a 401:
  logged out, password changed, account disabled) or turns its second factor on; then a fresh
  account takes over, so that every case meets the API as an ordinary signed-in user would.
- Values no schema can describe and every real client has: the account's password where a
  sensitive action asks for it again; a positive case for
  POST /users/mfa/totp/verify carries the code an authenticator shows for the secret its account
  enrolled, a cover is a real image (the document can only say which image types), and a list
  cursor (`after`, and the audit log's `before`) is one the server issued for this account (or
  none, when it has no second page), and an If-Match is the ETag the book has (or none, when it
  cannot be read). A list is paged one way at a time: a positive case that mixes page numbers and
  a cursor keeps the cursor only (each parameter's description says a mix is refused; separate
  parameters cannot say it in a schema).
- Schemathesis reads a multipart form's file part as bytes, not as the string the document says
  a file is, and so reports forms whose only "invalid" field is valid as sent (a number in a text
  field arrives as text). Those reports are dropped after checking the form as the server reads it.
"""

from __future__ import annotations

import io
import os
import uuid
from email.parser import BytesParser
from email.policy import HTTP

import jsonschema
import pyotp
import requests
import schemathesis
from PIL import Image

BASE_URL = os.environ["CONTRACT_BASE_URL"]
PASSWORD = "Contract tester's 2nd pass!"
# Operations that ask for the account's password again (step-up); a positive case sends the real one.
NEEDS_PASSWORD = (
    "startMfa",
    "disableAccount",
    "changeEmail",
    "disableMfa",
    "passkeyRegistrationOptions",
    "createAccessToken",
)
SECRETS: dict[str, str] = {}  # TOTP secrets by the Authorization header that enrolled them
with open(os.path.join(os.path.dirname(__file__), "..", "examples", "postman", "cover.png"), "rb") as _cover:
    COVER = _cover.read()


class Accounts:
    """The account in use, replaced when the run has made it unusable."""

    def __init__(self):
        self.token: str | None = None

    def current(self) -> str:
        if self.token is None:
            email = f"contract-{uuid.uuid4().hex[:12]}@example.com"
            account = {"name": "Contract Tester", "email": email, "password": PASSWORD}
            requests.post(f"{BASE_URL}/users/", json=account, timeout=10).raise_for_status()
            login = requests.post(f"{BASE_URL}/users/login", json={"email": email, "password": PASSWORD}, timeout=10)
            login.raise_for_status()
            self.token = login.json()["data"]["token"]
        return self.token

    def retire(self, authorization: str) -> None:
        if authorization == f"Bearer {self.token}":
            self.token = None


ACCOUNTS = Accounts()


@schemathesis.auth(refresh_interval=None)
class CurrentAccount:
    def get(self, case, context):
        return ACCOUNTS.current()

    def set(self, case, data, context):
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


def _operation_id(case) -> str:
    return case.operation.definition.raw.get("operationId", "")


def _authorization(case) -> str:
    return (case.headers or {}).get("Authorization", "")


@schemathesis.hook
def after_call(context, case, response):
    operation = _operation_id(case)
    if operation == "startMfa" and response.status_code == 201:
        SECRETS[_authorization(case)] = response.json()["data"]["secret"]
    if response.status_code == 401 or (operation == "verifyMfa" and response.status_code == 200):
        ACCOUNTS.retire(_authorization(case))


@schemathesis.hook
def before_call(context, case, kwargs):
    positive = case.meta is not None and not case.meta.generation.mode.is_negative
    if positive and isinstance(case.query, dict) and {"limit", "after"} & set(case.query):
        case.query = {key: value for key, value in case.query.items() if key not in ("page", "per_page")}
    if positive and isinstance(case.query, dict) and "after" in case.query:
        case.query = _with_issued_cursor(case)
    if positive and isinstance(case.query, dict) and "before" in case.query:
        case.query = _with_issued_events_cursor(case)
    if positive and "If-Match" in (case.headers or {}):
        case.headers = _with_current_etag(case)
    if not positive or not isinstance(case.body, dict):
        return
    if _operation_id(case) in NEEDS_PASSWORD and "password" in case.body:
        case.body = {**case.body, "password": PASSWORD}  # the step-up proof the account's owner has
    secret = SECRETS.get(_authorization(case))
    if secret and _operation_id(case) == "verifyMfa":
        case.body = {**case.body, "code": pyotp.TOTP(secret).now()}
    cover = case.body.get("cover_image")
    data = getattr(cover, "data", cover)  # Schemathesis wraps generated files
    form = case.media_type == "multipart/form-data"
    if form and isinstance(data, bytes | str) and data and not _is_image(data):
        case.body = {**case.body, "cover_image": COVER if cover is data else type(cover)(COVER)}


def _with_issued_cursor(case) -> dict:
    reply = requests.get(f"{BASE_URL}/books/?limit=1", headers={"Authorization": _authorization(case)}, timeout=10)
    cursor = reply.json()["meta"]["next_cursor"] if reply.status_code == 200 else None
    query = {key: value for key, value in case.query.items() if key != "after"}
    return {**query, "after": cursor} if cursor else query


def _with_issued_events_cursor(case) -> dict:
    headers = {"Authorization": _authorization(case)}
    reply = requests.get(f"{BASE_URL}/users/events?limit=1", headers=headers, timeout=10)
    cursor = reply.json()["meta"]["next_before"] if reply.status_code == 200 else None
    query = {key: value for key, value in case.query.items() if key != "before"}
    return {**query, "before": cursor} if cursor else query


def _with_current_etag(case) -> dict:
    url = f"{BASE_URL}/books/{(case.path_parameters or {}).get('book_id', '')}"
    reply = requests.get(url, headers={"Authorization": _authorization(case)}, timeout=10)
    headers = {key: value for key, value in case.headers.items() if key != "If-Match"}
    etag = reply.headers.get("ETag") if reply.status_code == 200 else None
    return {**headers, "If-Match": etag} if etag else headers


def _is_image(data) -> bool:
    try:
        with Image.open(io.BytesIO(data.encode() if isinstance(data, str) else data)) as image:
            image.load()
        return True
    except Exception:  # anything Pillow cannot read is no cover
        return False


@schemathesis.hook
def filter_failure(context, failure, case, response):
    if failure.title != "Schema-violating request accepted" or case.media_type != "multipart/form-data":
        return True
    return not _form_is_valid_as_sent(case, response)


def _form_is_valid_as_sent(case, response) -> bool:
    """The multipart form as the server reads it (text parts as text, file parts as strings),
    checked against the operation's schema for it."""
    request = response.request
    head = f"Content-Type: {request.headers['Content-Type']}\r\n\r\n".encode()
    form = {}
    for part in BytesParser(policy=HTTP).parsebytes(head + request.body).iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True) or b""
        form.setdefault(name, payload.decode(errors="replace"))
    schema = case.operation.schema.raw_schema
    body = case.operation.definition.raw["requestBody"]["content"]["multipart/form-data"]["schema"]
    return jsonschema.Draft202012Validator({**body, "components": schema["components"]}).is_valid(form)
