"""Personal access tokens for scripts (issue 20): created with the password (and the second factor),
shown once, scoped, expiring, revocable at once on every app server, refused wherever the account's
sensitive actions are, rate-limited, audited, and never written to a log or an event."""

from __future__ import annotations

import json
import logging
import re
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import mongomock
import pyotp
import pytest
from bson import ObjectId

from app import create_app
from auth.access_tokens import SECRET_PATTERN, well_formed
from database.client import state as database_state
from database.documents import utcnow
from helpers import (
    INVALID_FIELDS,
    PASSWORD,
    ROOT,
    SOME_ID,
    TOKEN_EXPIRED,
    WRONG_CREDENTIALS,
    WRONG_PASSWORD,
    AuthActions,
    api_operations,
    assert_429,
    assert_envelope,
    bearer,
    book_form,
    concrete_path,
    config_for_tests,
    limits,
    openapi_path,
    text_body,
)
from mail.link_tokens import RESET_PASSWORD, LinkTokens
from mail.sender import send_due

CREATED = "Token created. Copy it now: it is not shown again."
TOKEN_NOT_FOUND = "Token not found."
REVOKED = "Token has been revoked or does not exist, or the account is disabled."
MALFORMED = "Token is malformed."
SESSION_ONLY = (
    "A personal access token cannot be used here: this needs a login (the account's sensitive "
    "actions and its tokens are never open to tokens)."
)
SCOPES_WANTED = "Give one or more scopes, each one of: books:read, books:write, account:read."
FACTOR_REQUIRED = "A current authenticator code or an unused recovery code is required."
NEW_PASSWORD = "Tr1cky-Gl0ve-Harb0r!"
ALL_SCOPES = ["books:read", "books:write", "account:read"]
TOKEN_FIELDS = {
    "id",
    "name",
    "scopes",
    "prefix",
    "created_at",
    "expires_at",
    "expires_soon",
    "last_used_at",
    "last_used_ip",
}


def lacks(scope: str) -> str:
    return f"This token lacks the scope this needs: {scope}."


def create(client, headers, scopes=("books:read",), days=None, name="backup script", **extra):
    body = {"name": name, "scopes": list(scopes), "password": PASSWORD, **extra}
    if days is not None:
        body["expires_in_days"] = days
    return client.post("/users/tokens", json=body, headers=headers)


def new_token(client, headers, scopes=("books:read",), days=None, name="backup script") -> dict:
    """The 201's data: the token's fields and, this once, its secret."""
    return assert_envelope(create(client, headers, scopes, days, name), 201, CREATED)


def listed(client, headers) -> list[dict]:
    return assert_envelope(client.get("/users/tokens", headers=headers), 200, "Tokens.")


def event_list(client, headers) -> list[dict]:
    return assert_envelope(client.get("/users/events", headers=headers), 200, "Events.")


def assert_invalid_token(response, message: str) -> None:
    assert_envelope(response, 401, message, "Unauthorized")
    challenge = response.headers["WWW-Authenticate"]
    assert challenge == f'Bearer realm="book-library", error="invalid_token", error_description="{message}"'


def assert_insufficient_scope(response, message: str, scope: str | None) -> None:
    """403 with RFC 6750's challenge (section 3.1): the scope that would do, when one would."""
    assert_envelope(response, 403, message, "Forbidden")
    expected = f'Bearer realm="book-library", error="insufficient_scope", error_description="{message}"'
    if scope:
        expected += f', scope="{scope}"'
    assert response.headers["WWW-Authenticate"] == expected


# --- creating, showing once, listing ---------------------------------------------------------------


def test_a_token_is_shown_once_and_then_only_its_description(client, auth, db):
    headers = auth.headers()
    data = new_token(client, headers, scopes=["books:read", "account:read"], name="nightly backup")
    secret = data.pop("token")
    assert set(data) == TOKEN_FIELDS
    assert well_formed(secret) and SECRET_PATTERN.fullmatch(secret)
    assert data["name"] == "nightly backup" and data["scopes"] == ["books:read", "account:read"]
    assert secret.startswith(data["prefix"]) and len(data["prefix"]) == 10
    assert data["last_used_at"] is None and data["expires_soon"] is False
    assert ObjectId(data["id"])  # an id of its own in URLs, not the secret
    [shown] = listed(client, headers)
    assert shown == data
    assert secret not in client.get("/users/tokens", headers=headers).get_data(as_text=True)
    # Stored only as a hash: the secret is nowhere in the database.
    everything = json.dumps([*db.users.find(), *db.access_tokens.find(), *db.auth_events.find()], default=str)
    assert secret not in everything and secret[len(data["prefix"]) :] not in everything


def test_the_lifetime_defaults_to_30_days_and_is_at_most_a_year(client, auth, clock):
    headers = auth.headers()
    assert new_token(client, headers)["created_at"] == "2031-03-14T15:09:26.535Z"  # the clock's instant
    assert new_token(client, headers)["expires_at"] == "2031-04-13T15:09:26.535Z"
    assert new_token(client, headers, days=365)["expires_at"] == "2032-03-13T15:09:26.535Z"
    assert_envelope(create(client, headers, days=366), 400, INVALID_FIELDS, {"expires_in_days": "Must be at most 365."})
    assert_envelope(create(client, headers, days=0), 400, INVALID_FIELDS, {"expires_in_days": "Must be at least 1."})


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({"name": "  ", "scopes": ["books:read"]}, {"name": "Name must be 1 to 100 characters."}),
        (
            {"name": "x", "scopes": ["books:delete"]},
            {"scopes": SCOPES_WANTED},
        ),
        (
            {"name": "x", "scopes": []},
            {"scopes": SCOPES_WANTED},
        ),
        ({"name": "x", "scopes": "books:read"}, {"scopes": "Must be a list."}),
        (
            {"name": "x", "scopes": ["books:read"], "expires_in_days": "30"},
            {"expires_in_days": "Must be a whole number."},
        ),
        ({"scopes": ["books:read"]}, {"name": "This field is required."}),
        (
            {"name": "backup\u202e", "scopes": ["books:read"]},
            {"name": "Name must not contain control or text-direction characters."},
        ),
    ],
)
def test_bad_fields_are_each_named(client, auth, body, errors):
    response = client.post("/users/tokens", json={"password": PASSWORD, **body}, headers=auth.headers())
    assert_envelope(response, 400, INVALID_FIELDS, errors)


def test_creating_a_token_needs_the_password_again(client, auth):
    headers = auth.headers()
    assert_envelope(create(client, headers, password=WRONG_PASSWORD), 401, WRONG_CREDENTIALS, "Unauthorized")
    missing = client.post("/users/tokens", json={"name": "x", "scopes": ["books:read"]}, headers=headers)
    assert_envelope(missing, 400, INVALID_FIELDS, {"password": "This field is required."})
    assert listed(client, headers) == []


def test_with_two_factor_on_creating_a_token_needs_a_code_too(client, auth, clock, db):
    email = auth.signup()
    # Two-factor enrolment needs a proven address; the mailed link's test is elsewhere.
    db.users.update_one({"email": email}, {"$set": {"email_verified": True}})
    headers = auth.headers(email)
    enrolment = client.post("/users/mfa/totp", json={"password": PASSWORD}, headers=headers).get_json()["data"]
    secret = enrolment["secret"]
    assert (
        client.post("/users/mfa/totp/verify", json={"code": pyotp.TOTP(secret).now()}, headers=headers).status_code
        == 200
    )
    assert_envelope(create(client, headers), 400, INVALID_FIELDS, {"code": FACTOR_REQUIRED})
    next_code = pyotp.TOTP(secret).at(time.time() + 30)
    assert_envelope(create(client, headers, code=next_code), 201, CREATED)


def test_a_security_mail_goes_out_when_a_token_is_created(app_factory, smtp):
    app = app_factory(MAIL_URL=smtp.url, PUBLIC_URL="https://api.example.com")
    client = app.test_client()
    email = "ada@example.com"
    client.post("/users/", json={"name": "Ada Lovelace", "email": email, "password": PASSWORD})
    token = client.post("/users/login", json={"email": email, "password": PASSWORD}).get_json()["data"]["token"]
    send_due(app)  # the verification mail
    secret = new_token(client, bearer(token), scopes=["books:write"], name="uploader")["token"]
    assert send_due(app) == 1
    [message] = [m for m in smtp.to(email) if "personal access token" in m["Subject"]]
    assert message["Subject"] == "A personal access token was created for your Book Library account"
    body = text_body(message)
    assert '"uploader"' in body and "books:write" in body
    assert secret not in message.as_string() and "blpat_" not in message.as_string()


# --- scopes ---------------------------------------------------------------------------------------


def test_a_read_token_reads_books_and_is_refused_writing_them(client, auth, create_book):
    headers = auth.headers()
    book = create_book(headers)
    read = bearer(new_token(client, headers, scopes=["books:read"])["token"])
    assert_envelope(client.get("/books/", headers=read), 200, "Books.")
    assert_envelope(client.get(f"/books/{book['id']}", headers=read), 200, "Book.")
    response = client.post("/books/", data=book_form(title="Emma"), headers=read)
    assert_insufficient_scope(response, lacks("books:write"), "books:write")
    response = client.put(f"/books/{book['id']}", json={"title": "Emma"}, headers=read)
    assert_insufficient_scope(response, lacks("books:write"), "books:write")
    assert_insufficient_scope(client.delete(f"/books/{book['id']}", headers=read), lacks("books:write"), "books:write")
    assert_insufficient_scope(client.get("/users/", headers=read), lacks("account:read"), "account:read")


def test_a_write_token_writes_books_and_account_read_reads_the_account(client, auth):
    headers = auth.headers()
    write = bearer(new_token(client, headers, scopes=["books:write", "account:read"])["token"])
    book = assert_envelope(client.post("/books/", data=book_form(), headers=write), 201, "Book created.")
    assert_envelope(client.put(f"/books/{book['id']}", json={"title": "Emma"}, headers=write), 200, "Book updated.")
    assert client.delete(f"/books/{book['id']}", headers=write).status_code == 204
    assert_insufficient_scope(client.get("/books/", headers=write), lacks("books:read"), "books:read")
    me = assert_envelope(client.get("/users/", headers=write), 200, "Current user.")
    assert me == assert_envelope(client.get("/users/", headers=headers), 200, "Current user.")


def session_only_operations() -> list[tuple[str, str]]:
    """(METHOD, URL) of every operation whose document lists no scope: a login's token only."""
    with tempfile.TemporaryDirectory() as tmp:
        app = create_app(config_for_tests(tmp, MONGO_CLIENT=mongomock.MongoClient(tz_aware=True), REQUEST_LOG=False))
        document = app.test_client().get("/openapi.json").get_json()
        return [
            (method, concrete_path(rule))
            for method, rule in api_operations(app)
            if document["paths"][openapi_path(rule)][method.lower()].get("security") == [{"bearerAuth": []}]
        ]


SESSION_ONLY_OPERATIONS = session_only_operations()


def test_the_sensitive_actions_are_exactly_the_session_only_operations():
    session_only = {path for _, path in SESSION_ONLY_OPERATIONS}
    for path in ("/users/password", "/users/email", "/users/mfa/totp", "/users/sessions", "/users/tokens"):
        assert path in session_only
    assert ("DELETE", "/users/") in SESSION_ONLY_OPERATIONS
    assert ("POST", "/users/logout-all") in SESSION_ONLY_OPERATIONS


@pytest.mark.parametrize(("method", "path"), SESSION_ONLY_OPERATIONS)
def test_a_token_with_every_scope_never_reaches_a_sensitive_action(client, auth, method, path):
    headers = auth.headers()
    token = bearer(new_token(client, headers, scopes=ALL_SCOPES)["token"])
    body = {"password": PASSWORD, "current_password": PASSWORD, "new_password": NEW_PASSWORD, "name": "x"}
    response = client.open(path, method=method, json={**body, "scopes": ["books:read"]}, headers=token)
    assert_insufficient_scope(response, SESSION_ONLY, None)
    # Nothing happened: the account's password, tokens and sessions are as they were.
    assert_envelope(client.get("/users/", headers=headers), 200, "Current user.")
    assert len(listed(client, headers)) == 1


def test_a_token_cannot_create_another_token_nor_change_the_password(client, auth, db):
    email = auth.signup()
    headers = auth.headers(email)
    token = bearer(new_token(client, headers, scopes=ALL_SCOPES)["token"])
    assert_insufficient_scope(create(client, token, scopes=ALL_SCOPES), SESSION_ONLY, None)
    change = {"current_password": PASSWORD, "new_password": NEW_PASSWORD}
    assert_insufficient_scope(client.put("/users/password", json=change, headers=token), SESSION_ONLY, None)
    assert db.access_tokens.count_documents({}) == 1
    assert auth.login(email).status_code == 200  # the old password still works


def test_the_openapi_document_shows_each_operations_scopes(client):
    document = client.get("/openapi.json").get_json()
    for method, path, scopes in [
        ("get", "/books/", ["books:read"]),
        ("post", "/books/", ["books:write"]),
        ("get", "/books/{book_id}", ["books:read"]),
        ("put", "/books/{book_id}", ["books:write"]),
        ("delete", "/books/{book_id}", ["books:write"]),
        ("get", "/users/", ["account:read"]),
        ("post", "/users/tokens", []),
        ("put", "/users/password", []),
    ]:
        operation = document["paths"][path][method]
        assert operation["security"] == [{"bearerAuth": scopes}], (method, path)
        assert "403" in operation["responses"], (method, path)
        note = "need the scope" if scopes else "refused (403); this needs a login"
        assert note in operation["description"], (method, path)
    assert openapi_path("/users/tokens/<objectid:token_id>") in document["paths"]


# --- revoking, expiring --------------------------------------------------------------------------------


@pytest.mark.each_database
def test_a_revoked_token_is_refused_at_once_by_another_app_server(client, auth, make_app):
    headers = auth.headers()
    data = new_token(client, headers)
    other = make_app().test_client()
    assert_envelope(other.get("/books/", headers=bearer(data["token"])), 200, "Books.")
    assert client.delete(f"/users/tokens/{data['id']}", headers=headers).status_code == 204
    assert_invalid_token(other.get("/books/", headers=bearer(data["token"])), REVOKED)
    assert listed(client, headers) == []
    assert_envelope(client.delete(f"/users/tokens/{data['id']}", headers=headers), 404, TOKEN_NOT_FOUND, "Not Found")


@pytest.mark.each_database
def test_only_the_owner_can_revoke_a_token(client, auth):
    owner = auth.headers()
    data = new_token(client, owner)
    stranger = auth.headers()
    for token_id in (data["id"], SOME_ID, "not-an-id"):
        response = client.delete(f"/users/tokens/{token_id}", headers=stranger)
        assert_envelope(response, 404, TOKEN_NOT_FOUND, "Not Found")
    assert_envelope(client.get("/books/", headers=bearer(data["token"])), 200, "Books.")


@pytest.mark.each_database
def test_an_expired_token_is_refused_and_one_expiring_within_a_week_is_flagged(client, auth, clock):
    headers = auth.headers()
    short = new_token(client, headers, days=5, name="short")
    long = new_token(client, headers, days=30, name="long")
    flags = {token["name"]: token["expires_soon"] for token in listed(client, headers)}
    assert flags == {"short": True, "long": False}
    clock.shift(timedelta(days=5, seconds=1))
    assert_invalid_token(client.get("/books/", headers=bearer(short["token"])), TOKEN_EXPIRED)
    assert_envelope(client.get("/books/", headers=bearer(long["token"])), 200, "Books.")


def test_a_mistyped_token_is_refused_without_being_looked_up(client, auth):
    secret = new_token(client, auth.headers())["token"]
    typo = secret[:-1] + ("A" if secret[-1] != "A" else "B")
    assert_invalid_token(client.get("/books/", headers=bearer(typo)), MALFORMED)
    assert_invalid_token(client.get("/books/", headers=bearer("blpat_short")), MALFORMED)


@pytest.mark.each_database
@pytest.mark.parametrize("how", ["password_change", "logout_all", "disable", "password_reset"])
def test_every_token_is_revoked_when_the_account_is_secured(client, auth, db, how):
    email = auth.signup()
    headers = auth.headers(email)
    tokens = [new_token(client, headers, name=f"script {n}")["token"] for n in range(2)]
    if how == "password_change":
        change = {"current_password": PASSWORD, "new_password": NEW_PASSWORD}
        response = client.put("/users/password", json=change, headers=headers)
        headers = bearer(response.get_json()["data"]["token"])
        reason = "password_changed"
    elif how == "logout_all":
        assert client.post("/users/logout-all", headers=headers).status_code == 204
        reason = "logout_all"
    elif how == "disable":
        assert client.delete("/users/", json={"password": PASSWORD}, headers=headers).status_code == 204
        reason = "account_disabled"
    else:
        user_id = db.users.find_one({"email": email})["_id"]
        with client.application.app_context():
            link = LinkTokens.issue(user_id, RESET_PASSWORD, utcnow() + timedelta(hours=1), email=email)
        response = client.post("/users/password/reset", json={"token": link, "new_password": NEW_PASSWORD})
        assert response.status_code == 200, response.get_json()
        reason = "password_reset"
    for secret in tokens:
        assert_invalid_token(client.get("/books/", headers=bearer(secret)), REVOKED)
    records = list(db.access_tokens.find())
    assert [record["revoked_reason"] for record in records] == [reason, reason]
    [event] = db.auth_events.find({"type": "access_tokens_revoked"})
    assert event["detail"] == {"reason": reason, "count": 2}


# --- use: audit, last use, rate limits ------------------------------------------------------------------------


def test_creation_use_once_a_minute_and_revocation_are_audit_events(client, auth, clock):
    headers = auth.headers()
    data = new_token(client, headers)
    token = bearer(data["token"])
    for _ in range(3):
        assert client.get("/books/", headers=token, environ_base={"REMOTE_ADDR": "10.9.8.7"}).status_code == 200
    [shown] = listed(client, headers)
    assert shown["last_used_ip"] == "10.9.8.7"
    first_use = shown["last_used_at"]
    assert first_use is not None
    clock.shift(30)
    assert client.get("/books/", headers=token).status_code == 200
    assert listed(client, headers)[0]["last_used_at"] == first_use  # within the minute: not written
    clock.shift(31)
    assert client.get("/books/", headers=token).status_code == 200
    assert listed(client, headers)[0]["last_used_at"] > first_use
    assert client.delete(f"/users/tokens/{data['id']}", headers=headers).status_code == 204
    events = event_list(client, headers)
    kinds = [event["type"] for event in events if event["type"].startswith("access_token")]
    assert kinds == ["access_token_revoked", "access_token_used", "access_token_used", "access_token_created"]
    created = next(event for event in events if event["type"] == "access_token_created")
    assert created["detail"]["token_id"] == data["id"] and created["detail"]["scopes"] == ["books:read"]


@pytest.mark.each_database
def test_two_app_servers_record_a_tokens_use_once_a_minute_between_them(client, auth, make_app, db):
    headers = auth.headers()
    token = bearer(new_token(client, headers)["token"])
    other = make_app().test_client()
    for each in (client, other, client, other):
        assert each.get("/books/", headers=token).status_code == 200
    assert db.auth_events.count_documents({"type": "access_token_used"}) == 1


@pytest.mark.each_database
def test_each_token_has_its_own_rate_limit(make_app):
    client = make_app(**limits(TOKEN_RATE_LIMIT="3 per minute")).test_client()
    headers = AuthActions(client).headers()
    first = bearer(new_token(client, headers)["token"])
    second = bearer(new_token(client, headers)["token"])
    for _ in range(3):
        assert client.get("/books/", headers=first).status_code == 200
    assert_429(client.get("/books/", headers=first))
    assert client.get("/books/", headers=second).status_code == 200
    assert client.get("/books/", headers=headers).status_code == 200  # the login is not counted


@pytest.mark.each_database
def test_an_accounts_tokens_share_a_rate_limit(make_app):
    client = make_app(**limits(TOKEN_ACCOUNT_RATE_LIMIT="4 per minute")).test_client()
    auth = AuthActions(client)
    headers = auth.headers()
    tokens = [bearer(new_token(client, headers, name=f"t{n}")["token"]) for n in range(2)]
    for n in range(4):
        assert client.get("/books/", headers=tokens[n % 2]).status_code == 200
    assert_429(client.get("/books/", headers=tokens[0]))
    assert_429(client.get("/books/", headers=tokens[1]))
    other_account = auth.headers()
    stranger = bearer(new_token(client, other_account)["token"])
    assert client.get("/books/", headers=stranger).status_code == 200


@pytest.mark.each_database
def test_an_account_has_at_most_50_live_tokens(client, auth):
    headers = auth.headers()
    for n in range(50):
        assert create(client, headers, name=f"t{n}").status_code == 201
    too_many = "An account can have at most 50 live tokens; revoke one first."
    assert_envelope(create(client, headers), 409, too_many, "Conflict")
    assert client.delete(f"/users/tokens/{listed(client, headers)[0]['id']}", headers=headers).status_code == 204
    assert create(client, headers).status_code == 201


# --- the secret: never logged, recognisable offline ------------------------------------------------------


def test_the_secret_is_absent_from_every_log_line_and_event(client, auth, db, log_lines):
    headers = auth.headers()
    data = new_token(client, headers, scopes=["books:read"])
    secret = data["token"]
    client.get("/books/", headers=bearer(secret))
    client.post("/books/", data=book_form(), headers=bearer(secret))  # 403
    client.get(f"/books/{secret}", headers=bearer(secret))  # in the path too
    client.get("/books/", headers=bearer(secret[:-1] + "x"))  # mistyped
    client.delete(f"/users/tokens/{data['id']}", headers=headers)
    client.get("/books/", headers=bearer(secret))  # revoked
    logging.getLogger("book_library.test").warning("leaked %s in a message", secret)
    assert log_lines
    body = secret[len("blpat_") :]
    assert not [line for line in log_lines if body[:12] in line]
    stored = json.dumps([*db.auth_events.find(), *db.access_tokens.find(), *db.outbox.find()], default=str)
    assert body[:12] not in stored


JWT = "eyJhbGciOiJIUzI1NiIsInR5cCI6ImF0K2p3dCJ9.eyJzdWIiOiIxMjMifQ.c2lnbmF0dXJlLXNpZ25hdHVyZQ"


def test_the_scanners_pattern_matches_a_real_token_and_no_jwt_or_refresh_token(client, auth):
    email = auth.signup()
    login = auth.login(email).get_json()["data"]
    secret = new_token(client, bearer(login["token"]))["token"]
    text = f"config: TOKEN={secret}\nAuthorization: Bearer {login['token']}\nrefresh={login['refresh_token']}\n"
    assert SECRET_PATTERN.findall(text) == [secret]
    assert well_formed(secret)
    for other in (login["token"], login["refresh_token"], JWT):
        assert not SECRET_PATTERN.search(other) and not well_formed(other)
    flipped = secret[:10] + ("a" if secret[10] != "a" else "b") + secret[11:]
    assert SECRET_PATTERN.fullmatch(flipped) and not well_formed(flipped)  # the checksum catches it offline


def test_the_readme_documents_the_pattern_the_code_uses():
    readme = Path(ROOT, "README.md").read_text(encoding="utf-8")
    assert SECRET_PATTERN.pattern.replace("\\b", "") in readme.replace("\\b", "")
    assert re.search(r"blpat_", readme)


# --- what a request with a token costs ----------------------------------------------------------------


# explain() plans come from the real MongoDB-protocol server.
@pytest.mark.parametrize("backend", ["secantus"], indirect=True)
def test_authenticating_a_token_is_one_index_lookup_by_its_hash(client, auth, db):
    new_token(client, auth.headers())
    query = {"access_tokens.hash": "0" * 64}
    plan = db.command("explain", {"find": "users", "filter": query})["queryPlanner"]["winningPlan"]
    stages = []
    while plan:
        stages.append((plan.get("stage"), plan.get("indexName")))
        plan = plan.get("inputStage")
    assert ("IXSCAN", "access_token_hash") in stages
    assert "COLLSCAN" not in [stage for stage, _ in stages]


@pytest.mark.each_database
def test_far_from_its_limit_a_tokens_request_writes_its_count_once_a_second(make_app, clock):
    client = make_app(
        **limits(TOKEN_RATE_LIMIT="1000 per minute", TOKEN_ACCOUNT_RATE_LIMIT="1000 per minute")
    ).test_client()
    headers = AuthActions(client).headers()
    token = bearer(new_token(client, headers)["token"])
    db = database_state(client.application).db
    for _ in range(5):
        assert client.get("/books/", headers=token).status_code == 200
    # One write per counter for the first request; the next four were tallied in the process.
    assert sorted(doc["count"] for doc in db.request_counts.find()) == [1, 1]
    clock.shift(1)
    assert client.get("/books/", headers=token).status_code == 200
    assert sorted(doc["count"] for doc in db.request_counts.find()) == [6, 6]


@pytest.mark.each_database
def test_another_app_servers_requests_count_towards_the_same_limit(make_app):
    settings = limits(TOKEN_RATE_LIMIT="4 per minute")
    first, second = make_app(**settings).test_client(), make_app(**settings).test_client()
    headers = AuthActions(first).headers()
    token = bearer(new_token(first, headers)["token"])
    for client in (first, second, first, second):
        assert client.get("/books/", headers=token).status_code == 200
    assert_429(first.get("/books/", headers=token))
    assert_429(second.get("/books/", headers=token))
