"""Sharding readiness: with every endpoint called, every command the app sends about books,
sessions, auth events or personal access tokens names the owning user, so that user_id can be their shard key.

The app gets a PyMongo client with a command listener (the database's query log, as the
driver sees it), on the embedded server."""

from __future__ import annotations

import io
import os
import time
from email import message_from_binary_file, policy
from urllib.parse import urlsplit

import pyotp
import pytest
from bson import ObjectId
from pymongo import MongoClient, monitoring

from database.client import state as database_state
from helpers import PASSWORD, book_form, image_bytes, link_token
from mail.sender import send_due

OWNED = ("books", "sessions", "auth_events", "access_tokens")
# Commands that touch no document.
HOUSEKEEPING = {"createIndexes", "listIndexes", "dropIndexes", "drop", "create", "getMore", "killCursors"}
NEW_PASSWORD = "N3w!Secret-Lantern"


class Commands(monitoring.CommandListener):
    """Every command the app's client starts, as (name, command document)."""

    def __init__(self):
        self.seen: list[tuple[str, dict]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.seen.append((event.command_name, dict(event.command)))

    def succeeded(self, event) -> None:
        pass

    def failed(self, event) -> None:
        pass


@pytest.fixture
def backend():
    return "secantus"


@pytest.fixture
def commands():
    return Commands()


@pytest.fixture
def mongo_client(secantus_uri, commands):
    client = MongoClient(secantus_uri, serverSelectionTimeoutMS=2000, tz_aware=True, event_listeners=[commands])
    yield client
    client.close()


def names_owner(query) -> bool:
    """A filter that pins one user: user_id equal to an id, at the top or inside a top-level $and."""
    if not isinstance(query, dict):
        return False
    if isinstance(query.get("user_id"), ObjectId):
        return True
    return any(names_owner(part) for part in query.get("$and", ()))


def missing_owner(name: str, command: dict) -> str | None:
    """Why a command on an owned collection does not carry its user, or None when it does."""
    if name in HOUSEKEEPING:
        return None
    if name == "insert":
        ok = all("user_id" in doc for doc in command["documents"])
    elif name == "find":
        ok = names_owner(command.get("filter"))
    elif name == "update":
        ok = all(names_owner(update["q"]) for update in command["updates"])
    elif name == "delete":
        ok = all(names_owner(delete["q"]) for delete in command["deletes"])
    elif name == "findAndModify":
        ok = names_owner(command.get("query"))
    elif name == "aggregate":
        first = command["pipeline"][0] if command["pipeline"] else {}
        ok = names_owner(first.get("$match"))
    elif name in ("count", "distinct"):
        ok = names_owner(command.get("query"))
    else:
        return f"{name}: a command this test does not know; teach it whether it names the owner"
    return None if ok else f"{name} without the owner: {command}"


class Caller:
    """The test client, remembering which route answered each request."""

    def __init__(self, app, client):
        self.client = client
        self.adapter = app.url_map.bind("localhost")
        self.endpoints: set[str] = set()

    def __call__(self, method: str, url: str, expected: int, **kwargs):
        path = urlsplit(url).path
        self.endpoints.add(self.adapter.match(path, method)[0])
        response = getattr(self.client, method.lower())(url, **kwargs)
        assert response.status_code == expected, (method, url, response.get_data(as_text=True))
        data = response.get_json(silent=True) or {}
        response.close()
        return data.get("data")


def code(secret: str, steps: int = 0) -> str:
    """The authenticator's code `steps` 30-second steps from now (the clock is stopped)."""
    return pyotp.TOTP(secret).at(time.time() + 30 * steps)


def walk_the_books(call, auth):
    book = call("POST", "/books/", 201, data=book_form(title="Dune"), headers=auth)
    call("GET", "/books/?page=1&per_page=5&category=science", 200, headers=auth)
    call("GET", "/books/?limit=1", 200, headers=auth)
    call("GET", f"/books/{book['id']}", 200, headers=auth)
    call("PUT", f"/books/{book['id']}", 200, json={"title": "Dune Messiah"}, headers=auth)
    cover = {"cover_image": (io.BytesIO(image_bytes("GIF")), "new.gif")}
    book = call("PUT", f"/books/{book['id']}", 200, data=cover, headers={**auth, "If-Match": "*"})
    call("GET", book["image_url"], 200)
    call("DELETE", f"/books/{book['id']}", 204, headers={**auth, "If-Match": "*"})
    call("POST", "/books/", 201, data=book_form(title="Kept"), headers=auth)


def walk_the_account(call, email, auth, refresh_token):
    call("GET", "/", 200)
    call("GET", "/healthz", 200)
    call("GET", "/openapi.json", 200)
    call("GET", "/docs", 200)
    call("GET", "/docs/assets/css/swagger-ui.css", 200)
    call("GET", "/app/", 200)
    call("GET", "/app/app.js", 200)
    call("GET", "/app/reset-password", 200)
    call("GET", "/users/", 200, headers=auth)
    call("PUT", "/users/", 200, json={"name": "Grace Hopper"}, headers=auth)
    tokens = call("POST", "/users/token/refresh", 200, json={"refresh_token": refresh_token})
    auth = {"Authorization": f"Bearer {tokens['token']}"}
    other = call("POST", "/users/login", 200, json={"email": email, "password": PASSWORD})
    call("GET", "/users/sessions", 200, headers=auth)
    call("DELETE", f"/users/sessions/{other['refresh_token'].split('.')[1]}", 204, headers=auth)
    tokens = call(
        "PUT", "/users/password", 200, json={"current_password": PASSWORD, "new_password": NEW_PASSWORD}, headers=auth
    )
    auth = {"Authorization": f"Bearer {tokens['token']}"}
    call("GET", "/users/events", 200, headers=auth)
    call("POST", "/users/login", 401, json={"email": "nobody@example.com", "password": PASSWORD})
    return auth


def walk_the_tokens(call, auth):
    body = {"name": "script", "scopes": ["books:read"], "password": NEW_PASSWORD}
    token = call("POST", "/users/tokens", 201, json=body, headers=auth)
    call("GET", "/books/?limit=1", 200, headers={"Authorization": f"Bearer {token['token']}"})
    call("GET", "/users/tokens", 200, headers=auth)
    call("DELETE", f"/users/tokens/{token['id']}", 204, headers=auth)
    call("POST", "/users/tokens", 201, json=body, headers=auth)  # left for log-out-everywhere to revoke


def walk_the_passkeys(call, auth):
    """The passkey routes; a credential that does not verify still runs the lookups a real one would."""
    unknown = {"id": "x", "rawId": "x", "type": "public-key", "response": {}}
    call("POST", "/users/passkeys/registration/options", 200, json={"password": NEW_PASSWORD}, headers=auth)
    call("POST", "/users/passkeys", 400, json={"credential": unknown}, headers=auth)
    call("GET", "/users/passkeys", 200, headers=auth)
    call("PATCH", f"/users/passkeys/{ObjectId()}", 404, json={"name": "Laptop"}, headers=auth)
    call("DELETE", f"/users/passkeys/{ObjectId()}", 404, headers=auth)
    call("POST", "/users/login/passkey/options", 200)
    call("POST", "/users/login/passkey", 401, json={"credential": unknown})


def walk_the_mailed_links(call, email, auth):
    """The routes behind mailed links; a wrong token still runs the lookup that a right one would."""
    call("POST", "/users/password/forgot", 202, json={"email": email})
    call("POST", "/users/password/reset", 400, json={"token": "x" * 43, "new_password": NEW_PASSWORD})
    call("POST", "/users/email/verify", 400, json={"token": "x" * 43})
    call("POST", "/users/email/verify/resend", 202, headers=auth)
    call("PUT", "/users/email", 202, json={"email": "moved-" + email, "password": NEW_PASSWORD}, headers=auth)


def verify_the_address(app, call, email):
    """Two-factor needs a proven address: the verification link, from the development mail files."""
    send_due(app)
    folder = os.path.join(app.instance_path, "mail")
    mails = []
    for name in sorted(os.listdir(folder)):
        with open(os.path.join(folder, name), "rb") as handle:
            mails.append(message_from_binary_file(handle, policy=policy.default))
    # The clock is stopped, so the files' names do not order them: the outbox does.
    newest = database_state(app).db.outbox.find_one({"kind": "verify_email", "to": email}, sort=[("_id", -1)])
    [mail] = [m for m in mails if m["Message-ID"] == newest["message_id"]]
    call("POST", "/users/email/verify", 200, json={"token": link_token(mail)})


def walk_two_factor(call, email, auth):
    secret = call("POST", "/users/mfa/totp", 201, json={"password": NEW_PASSWORD}, headers=auth)["secret"]
    codes = call("POST", "/users/mfa/totp/verify", 200, json={"code": code(secret, -1)}, headers=auth)["recovery_codes"]
    ticket = call("POST", "/users/login", 200, json={"email": email, "password": NEW_PASSWORD})["mfa_ticket"]
    tokens = call("POST", "/users/login/mfa", 200, json={"mfa_ticket": ticket, "code": code(secret)})
    auth = {"Authorization": f"Bearer {tokens['token']}"}
    replaced = call("POST", "/users/mfa/recovery-codes", 200, json={"recovery_code": codes[0]}, headers=auth)
    codes = replaced["recovery_codes"]
    call("DELETE", "/users/mfa/totp", 204, json={"password": NEW_PASSWORD, "recovery_code": codes[0]}, headers=auth)
    call("POST", "/users/logout", 204, headers=auth)
    call("POST", "/users/logout-all", 204, headers=log_in(call, email))
    call("DELETE", "/users/", 204, json={"password": NEW_PASSWORD}, headers=log_in(call, email))


def log_in(call, email) -> dict:
    tokens = call("POST", "/users/login", 200, json={"email": email, "password": NEW_PASSWORD})
    return {"Authorization": f"Bearer {tokens['token']}"}


def test_every_books_sessions_and_events_command_of_every_endpoint_names_the_user(app, client, commands, clock):
    call = Caller(app, client)
    email = "shard-keys@example.com"
    call("POST", "/users/", 201, json={"name": "Ada Lovelace", "email": email, "password": PASSWORD})
    tokens = call("POST", "/users/login", 200, json={"email": email, "password": PASSWORD})
    auth = {"Authorization": f"Bearer {tokens['token']}"}
    commands.seen.clear()  # index creation at start-up is housekeeping; the requests are what count

    walk_the_books(call, auth)
    auth = walk_the_account(call, email, auth, tokens["refresh_token"])
    walk_the_tokens(call, auth)
    walk_the_passkeys(call, auth)
    walk_the_mailed_links(call, email, auth)
    verify_the_address(app, call, email)
    walk_two_factor(call, email, auth)

    every_route = {rule.endpoint for rule in app.url_map.iter_rules()} - {"static"}
    assert every_route - call.endpoints == set(), "extend the walk to the new routes"
    owned = [(name, command) for name, command in commands.seen if command.get(name) in OWNED]
    assert {command[name] for name, command in owned} == set(OWNED)
    problems = [problem for problem in (missing_owner(name, command) for name, command in owned) if problem]
    assert problems == []
