"""A client of the Book Library API as a Python developer writes one: the package
openapi-python-client generates from /openapi.json, used as generated.

    openapi-python-client generate --url http://127.0.0.1:5000/openapi.json --output-path book-library-client
    PYTHONPATH=book-library-client API_URL=http://127.0.0.1:5000 python examples/python/client.py

It signs up, logs in, adds books with covers, walks the list by cursor, updates a book with
If-Match, refreshes its tokens, turns the second factor on, logs in with it, and logs out."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import struct
import time
import uuid
from pathlib import Path

from book_library_api_client import AuthenticatedClient, Client
from book_library_api_client.api.books import create_book, get_book, list_books, update_book
from book_library_api_client.api.email import verify_email
from book_library_api_client.api.mfa import log_in_with_code, start_mfa, verify_mfa
from book_library_api_client.api.sessions import logout, refresh_token
from book_library_api_client.api.users import get_current_user, login, sign_up
from book_library_api_client.models import (
    BookCreateForm,
    BookCreateFormCategory,
    BookOut,
    BookPage,
    BookUpdate,
    CursorMeta,
    EnvelopeBookOut,
    EnvelopeLoginOut,
    EnvelopeMfaEnrollmentOut,
    EnvelopeRecoveryCodesOut,
    EnvelopeTokensOut,
    EnvelopeUnionLoginOutMfaChallengeOut,
    EnvelopeUserOut,
    LinkToken,
    Login,
    LoginOut,
    MfaChallengeOut,
    MfaCode,
    MfaLogin,
    MfaStart,
    RefreshRequest,
    SignUp,
)
from book_library_api_client.types import UNSET, File

API_URL = os.environ.get("API_URL", "http://127.0.0.1:5000")
COVER = Path(os.environ.get("COVER_PATH", "examples/postman/cover.png"))
# Where a server without MAIL_URL writes its mails: the sign-up mail's link is read there.
MAIL_DIR = Path(os.environ.get("MAIL_DIR", "instance/mail"))
PASSWORD = "Corr3ct horse battery!"


def check(condition: object, what: str) -> None:
    if not condition:
        raise SystemExit(f"failed: {what}")
    print(f"ok - {what}")


def log_in(client: Client, email: str) -> LoginOut | MfaChallengeOut:
    answer = login.sync(client=client, body=Login(email=email, password=PASSWORD))
    if not isinstance(answer, EnvelopeUnionLoginOutMfaChallengeOut):
        raise SystemExit(f"login refused: {answer}")
    return answer.data


def add_book(client: AuthenticatedClient, title: str) -> BookOut:
    cover = File(payload=COVER.open("rb"), file_name=COVER.name, mime_type="image/png")
    form = BookCreateForm(title=title, category=BookCreateFormCategory.SCIENCE, cover_image=cover)
    answer = create_book.sync(client=client, body=form)
    if not isinstance(answer, EnvelopeBookOut):
        raise SystemExit(f"create refused: {answer}")
    return answer.data


def every_book_by_cursor(client: AuthenticatedClient, limit: int) -> list[BookOut]:
    books: list[BookOut] = []
    after: str | None = None
    while True:
        page = list_books.sync(client=client, limit=limit, after=after if after is not None else UNSET)
        if not isinstance(page, BookPage) or not isinstance(page.meta, CursorMeta):
            raise SystemExit(f"not a cursor page: {page}")
        books.extend(page.data)
        if page.meta.next_cursor is None:
            return books
        after = page.meta.next_cursor


def mailed_token(email: str) -> str:
    """The token of the newest mailed link to `email`, from the development mail files (with real
    mail, copy it from the mail). The server's sender writes the file within moments."""
    for _ in range(100):
        for path in sorted(MAIL_DIR.glob("*.eml"), reverse=True):
            text = path.read_text()
            found = re.search(r"#token=([A-Za-z0-9_-]+)", text)
            if found and f"To: {email}" in text:
                return found.group(1)
        time.sleep(0.1)
    raise SystemExit(f"no mailed link to {email} in {MAIL_DIR}")


def totp(secret: str) -> str:
    """The code an authenticator app shows for a base32 secret (RFC 6238: SHA-1, 6 digits, 30 s)."""
    key = base64.b32decode(secret + "=" * (-len(secret) % 8))
    digest = hmac.new(key, struct.pack(">Q", int(time.time()) // 30), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    return f"{(struct.unpack('>I', digest[offset : offset + 4])[0] & 0x7FFFFFFF) % 1_000_000:06d}"


def main() -> None:
    client = Client(base_url=API_URL)
    email = f"py-{uuid.uuid4().hex[:12]}@example.com"
    created = sign_up.sync_detailed(client=client, body=SignUp(name="Ada Lovelace", email=email, password=PASSWORD))
    check(created.status_code in (201, 202), f"sign-up answers {created.status_code}")
    if isinstance(created.parsed, EnvelopeUserOut):
        check(created.parsed.data.email == email, "the new account has the address")

    first_login = log_in(client, email)
    if isinstance(first_login, MfaChallengeOut):
        raise SystemExit("no second factor is on yet")
    check(first_login.email == email and first_login.refresh_token, "login without a second factor gives tokens")
    authed = AuthenticatedClient(base_url=API_URL, token=first_login.token)

    titles = ["Dune", "Solaris", "Foundation"]
    added = [add_book(authed, title) for title in titles]
    check(added[0].category.value == "science" and added[0].image_url.startswith("http"), "a book with a cover")

    walked = every_book_by_cursor(authed, 1)
    check([book.title for book in walked] == titles[::-1], "a cursor walk sees every book once")

    read = get_book.sync_detailed(added[0].id, client=authed)
    etag = read.headers.get("ETag")
    check(isinstance(read.parsed, EnvelopeBookOut) and etag, "a book is read with its ETag")
    assert etag is not None
    changed = update_book.sync(
        added[0].id, client=authed, body=BookUpdate(description="Spice and sand."), if_match=etag
    )
    check(isinstance(changed, EnvelopeBookOut) and changed.data.description == "Spice and sand.", "If-Match update")
    stale = update_book.sync_detailed(added[0].id, client=authed, body=BookUpdate(description="Late."), if_match=etag)
    check(stale.status_code == 412, "an update with a stale If-Match is refused (412)")

    assert isinstance(first_login.refresh_token, str)
    refreshed = refresh_token.sync(client=client, body=RefreshRequest(refresh_token=first_login.refresh_token))
    check(isinstance(refreshed, EnvelopeTokensOut), "the refresh token gives a new access token")
    assert isinstance(refreshed, EnvelopeTokensOut)
    authed = AuthenticatedClient(base_url=API_URL, token=refreshed.data.token)

    # Two-factor needs a verified address: the sign-up mail's link.
    proven = verify_email.sync(client=client, body=LinkToken(token=mailed_token(email)))
    check(isinstance(proven, EnvelopeUserOut) and proven.data.email_verified, "the sign-up mail's link verifies it")
    enrolment = start_mfa.sync(client=authed, body=MfaStart(password=PASSWORD))
    check(isinstance(enrolment, EnvelopeMfaEnrollmentOut), "the second factor is started")
    assert isinstance(enrolment, EnvelopeMfaEnrollmentOut)
    verified = verify_mfa.sync(client=authed, body=MfaCode(code=totp(enrolment.data.secret)))
    check(isinstance(verified, EnvelopeRecoveryCodesOut), "the second factor is on, with recovery codes")
    assert isinstance(verified, EnvelopeRecoveryCodesOut)

    challenge = log_in(client, email)
    if not isinstance(challenge, MfaChallengeOut):
        raise SystemExit("the second factor was not asked for")
    body = MfaLogin(mfa_ticket=challenge.mfa_ticket, recovery_code=verified.data.recovery_codes[0])
    second = log_in_with_code.sync(client=client, body=body)
    check(isinstance(second, EnvelopeLoginOut), "login with the second factor (a recovery code) gives tokens")
    assert isinstance(second, EnvelopeLoginOut)
    authed = AuthenticatedClient(base_url=API_URL, token=second.data.token)

    check(logout.sync_detailed(client=authed).status_code == 204, "log out")
    after = get_current_user.sync_detailed(client=authed)
    check(after.status_code == 401, "the access token no longer works after logging out")


if __name__ == "__main__":
    main()
