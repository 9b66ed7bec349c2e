"""Accounts over HTTP: sign-up, the current user, renaming, disabling, and the routing envelope."""

from __future__ import annotations

import json
import uuid
from urllib.parse import urlparse

import mongomock
import pytest
from argon2 import PasswordHasher
from argon2.exceptions import VerifyMismatchError
from bson import ObjectId
from werkzeug.security import generate_password_hash

from app import create_app
from database.client import state as database_state
from database.documents import Model
from helpers import (
    COMMON,
    GUESSABLE,
    INVALID_FIELDS,
    JSON_ONLY,
    NO_SUCH_URL,
    NOT_A_STRING,
    NOT_ALLOWED,
    OMIT,
    PASSWORD,
    REQUIRED,
    SESSION_ENDED,
    WRONG_CREDENTIALS,
    WRONG_METHOD,
    Fragment,
    assert_envelope,
    config_for_tests,
)

NAME = "Ada Lovelace"
NAME_RULE = "Name must be 2 to 30 words and at most 300 characters."
EMAIL_INVALID = "Email address is not valid."
LENGTH = "Password must have 8 to 128 characters."
EMAIL_TAKEN = "An account with this email already exists."
NOT_JSON = "Request body is not valid JSON."
NOT_AN_OBJECT = "Request body must be a JSON object."


@pytest.fixture
def email():
    """A fresh lowercase address, so no test depends on what another test left behind."""
    return f"ada-{uuid.uuid4().hex[:10]}@example.com"


def signup_body(email, /, **overrides):
    """A valid sign-up body; a value of ... removes that field."""
    body = {"name": NAME, "email": email, "password": PASSWORD, **overrides}
    return {key: value for key, value in body.items() if value is not ...}


def keys_anywhere(value) -> set[str]:
    """Every dict key at any depth of a JSON value."""
    if isinstance(value, dict):
        return set(value).union(*(keys_anywhere(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(keys_anywhere(v) for v in value))
    return set()


# --- sign-up ------------------------------------------------------------------


def test_sign_up_is_201_with_the_user_and_no_password_anywhere(client, db, email):
    response = client.post("/users/", json=signup_body(email))

    user = assert_envelope(response, 201, "Account created.")
    body = response.get_json()
    assert user["name"] == NAME
    assert user["email"] == email
    assert ObjectId.is_valid(user["id"])
    assert user["created_at"].endswith("Z") and user["updated_at"].endswith("Z")
    assert not {key for key in keys_anywhere(body) if "password" in key.lower()}
    stored_hash = db.users.find_one({"email": email})["password"]
    raw = response.get_data(as_text=True)
    assert stored_hash not in raw
    assert PASSWORD not in raw


@pytest.mark.each_database
def test_sign_up_stores_email_trimmed_and_lowercase(client, auth, email):
    shouted = "  " + email.replace("ada-", "Ada.Lovelace-").upper() + " "

    response = client.post("/users/", json=signup_body(shouted))

    expected = email.replace("ada-", "ada.lovelace-")
    assert response.status_code == 201
    assert response.get_json()["data"]["email"] == expected
    assert auth.login(expected).status_code == 200


def test_sign_up_collapses_spaces_in_the_name(client, email):
    response = client.post("/users/", json=signup_body(email, name="  Ada   Lovelace "))

    assert response.status_code == 201
    assert response.get_json()["data"]["name"] == "Ada Lovelace"


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("Ada Lovelace", id="2-words"),
        pytest.param(" ".join(["word"] * 30), id="30-words"),
        pytest.param("Ünïcödé Ñame", id="unicode"),
    ],
)
def test_sign_up_accepts_a_name_of_2_to_30_words(client, email, name):
    response = client.post("/users/", json=signup_body(email, name=name))

    assert response.status_code == 201, response.get_json()
    assert response.get_json()["data"]["name"] == name


@pytest.mark.parametrize(
    "password",
    [
        pytest.param("Ünïcode pass 1!", id="unicode-and-spaces"),
        pytest.param("kT7#vQ2z", id="exactly-8"),
        pytest.param(("kT7#vQ2z Ünï " * 6)[:72], id="72-chars"),
        pytest.param("kT7#vQ2z" * 9 + "!", id="73-chars"),
        pytest.param("Aa1!" + "x" * 124, id="exactly-128"),
        pytest.param("Пароль Ок 9", id="cyrillic-space-as-special"),
        pytest.param("Aa1!" + "é" * 124, id="128-non-ascii"),
    ],
)
def test_sign_up_accepts_password_and_login_with_it_works(client, auth, email, password):
    response = client.post("/users/", json=signup_body(email, password=password))

    assert response.status_code == 201, response.get_json()
    assert auth.login(email, password).status_code == 200


SIGN_UP_INVALID = [
    # name
    pytest.param({"name": "Ada"}, {"name": NAME_RULE}, id="name-1-word"),
    pytest.param({"name": " ".join(["word"] * 31)}, {"name": NAME_RULE}, id="name-31-words"),
    pytest.param({"name": ""}, {"name": NAME_RULE}, id="name-empty"),
    pytest.param({"name": "   "}, {"name": NAME_RULE}, id="name-blank"),
    pytest.param({"name": 42}, {"name": NOT_A_STRING}, id="name-number"),
    pytest.param({"name": ["Ada", "Lovelace"]}, {"name": NOT_A_STRING}, id="name-list"),
    pytest.param({"name": None}, {"name": NOT_A_STRING}, id="name-null"),
    pytest.param({"name": ...}, {"name": REQUIRED}, id="name-missing"),
    # email
    pytest.param({"email": "not-an-email"}, {"email": EMAIL_INVALID}, id="email-no-at"),
    pytest.param({"email": "ada@"}, {"email": EMAIL_INVALID}, id="email-no-domain"),
    pytest.param({"email": "@example.com"}, {"email": EMAIL_INVALID}, id="email-no-local-part"),
    pytest.param({"email": "ada@@example.com"}, {"email": EMAIL_INVALID}, id="email-two-ats"),
    pytest.param({"email": "ada@example"}, {"email": EMAIL_INVALID}, id="email-no-dot-in-domain"),
    pytest.param({"email": "ada lovelace@example.com"}, {"email": EMAIL_INVALID}, id="email-space"),
    pytest.param({"email": "Ada <ada@example.com>"}, {"email": EMAIL_INVALID}, id="email-with-display-name"),
    pytest.param({"email": "ada@example.com."}, {"email": EMAIL_INVALID}, id="email-trailing-dot"),
    pytest.param({"email": ""}, {"email": EMAIL_INVALID}, id="email-empty"),
    pytest.param({"email": 42}, {"email": NOT_A_STRING}, id="email-number"),
    pytest.param({"email": ...}, {"email": REQUIRED}, id="email-missing"),
    # password
    pytest.param({"password": "Abcde1!"}, {"password": LENGTH}, id="password-7-chars"),
    pytest.param({"password": "Aa1!" + "x" * 125}, {"password": LENGTH}, id="password-129-chars"),
    pytest.param(
        {"password": "str0ng!pass"}, {"password": "Password must have an upper-case letter."}, id="password-no-upper"
    ),
    pytest.param(
        {"password": "STR0NG!PASS"}, {"password": "Password must have a lower-case letter."}, id="password-no-lower"
    ),
    pytest.param({"password": "Strong!pass"}, {"password": "Password must have a digit."}, id="password-no-digit"),
    pytest.param(
        {"password": "Str0ngpass1"}, {"password": "Password must have a special character."}, id="password-no-special"
    ),
    pytest.param(
        {"password": ""},
        {
            "password": "Password must have 8 to 128 characters, an upper-case letter, a lower-case letter, "
            "a digit, a special character."
        },
        id="password-empty",
    ),
    pytest.param({"password": 12345678}, {"password": NOT_A_STRING}, id="password-number"),
    pytest.param({"password": ...}, {"password": REQUIRED}, id="password-missing"),
    # common or breached passwords pass the composition rule but not zxcvbn's lists
    pytest.param({"password": "P@ssw0rd1!"}, {"password": COMMON}, id="password-common-leetspeak"),
    pytest.param({"password": "Password1!"}, {"password": COMMON}, id="password-common"),
    pytest.param({"password": "Abcdef1!"}, {"password": NOT_ALLOWED}, id="password-8-char-sequence"),
    pytest.param({"password": "Qwerty123!"}, {"password": NOT_ALLOWED}, id="password-keyboard-walk"),
    pytest.param({"password": "Lovelace1!"}, {"password": GUESSABLE}, id="password-the-users-surname"),
    # only the first 14 characters are scored (zxcvbn's time grows steeply with length):
    # a keyboard walk there is refused, whatever follows it
    pytest.param(
        {"password": "Qwerty123456789!Xq7#vLp2$kW"},
        {"password": Fragment("Password is not allowed: its first 14 characters are a common or breached password")},
        id="password-guessable-first-14-characters",
    ),
    # several at once: every bad field is reported, not just the first
    pytest.param(
        {"name": "Ada", "email": "nope", "password": "short"},
        {
            "name": NAME_RULE,
            "email": EMAIL_INVALID,
            "password": "Password must have 8 to 128 characters, an upper-case letter, a digit, a special character.",
        },
        id="all-three-bad",
    ),
]


@pytest.mark.parametrize("overrides, expected", SIGN_UP_INVALID)
def test_sign_up_with_invalid_field_is_400_naming_the_field(client, db, email, overrides, expected):
    users_before = db.users.count_documents({})

    response = client.post("/users/", json=signup_body(email, **overrides))

    assert_envelope(response, 400, INVALID_FIELDS, expected)
    assert db.users.count_documents({}) == users_before


def test_sign_up_with_empty_object_is_400_listing_every_required_field(client):
    response = client.post("/users/", json={})

    assert_envelope(response, 400, INVALID_FIELDS, {"name": REQUIRED, "email": REQUIRED, "password": REQUIRED})


def test_sign_up_with_a_128_character_password_of_look_alike_symbols_is_answered(client, email):
    """Scoring all of it took zxcvbn 7 to 10 seconds; the first 14 characters are what is scored."""
    password = "Aa1" + ("4@8({[<3!1|0$5+7%269" * 7)[:125]

    response = client.post("/users/", json=signup_body(email, password=password))

    assert response.status_code in (201, 400), response.get_json()


@pytest.mark.each_database
@pytest.mark.parametrize(
    "variant",
    [
        pytest.param(lambda e: e, id="same-case"),
        pytest.param(lambda e: e.upper(), id="upper-case"),
        pytest.param(lambda e: e.capitalize().replace("@example.com", "@Example.COM"), id="mixed-case"),
        pytest.param(lambda e: f"  {e} ", id="surrounding-spaces"),
    ],
)
def test_sign_up_with_an_email_already_taken_is_409(client, db, email, variant):
    assert client.post("/users/", json=signup_body(email)).status_code == 201

    response = client.post("/users/", json=signup_body(variant(email), name="Other Person"))

    assert_envelope(response, 409, EMAIL_TAKEN, "Conflict")
    assert db.users.count_documents({"email": email}) == 1
    assert db.users.find_one({"email": email})["name"] == NAME


@pytest.mark.parametrize("kind", ["urlencoded-form", "multipart", "json-text-as-text-plain", "no-body"])
def test_sign_up_with_a_non_json_content_type_is_415(client, db, email, kind):
    fields = {"name": NAME, "email": email, "password": PASSWORD}
    kwargs = {
        "urlencoded-form": {"data": fields, "content_type": "application/x-www-form-urlencoded"},
        "multipart": {"data": fields, "content_type": "multipart/form-data"},
        "json-text-as-text-plain": {"data": json.dumps(fields), "content_type": "text/plain"},
        "no-body": {},
    }[kind]

    response = client.post("/users/", **kwargs)

    assert_envelope(response, 415, JSON_ONLY, "Unsupported Media Type")
    assert db.users.count_documents({"email": email}) == 0


def test_sign_up_accepts_json_content_type_with_charset(client, email):
    response = client.post(
        "/users/",
        data=json.dumps(signup_body(email)),
        content_type="application/json; charset=utf-8",
    )

    assert response.status_code == 201


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param('{"name": "Ada Lovelace", ', id="truncated"),
        pytest.param("{'name': 'single quotes'}", id="single-quotes"),
        pytest.param("", id="empty-body"),
        pytest.param(b"\xff\xfe\x00not utf-8", id="not-utf8"),
    ],
)
def test_sign_up_with_invalid_json_is_400(client, raw):
    response = client.post("/users/", data=raw, content_type="application/json")

    assert_envelope(response, 400, INVALID_FIELDS, {"body": NOT_JSON})


@pytest.mark.parametrize(
    "wrap",
    [
        pytest.param(lambda body: [body], id="array"),
        pytest.param(lambda body: body["email"], id="string"),
        pytest.param(lambda body: 42, id="number"),
        pytest.param(lambda body: None, id="null"),
    ],
)
def test_sign_up_with_json_that_is_not_an_object_is_400(client, db, email, wrap):
    response = client.post("/users/", data=json.dumps(wrap(signup_body(email))), content_type="application/json")

    assert_envelope(response, 400, INVALID_FIELDS, {"body": NOT_AN_OBJECT})
    assert db.users.count_documents({"email": email}) == 0


def test_sign_up_ignores_client_sent_id_disabled_and_unknown_fields(client, auth, db, email):
    chosen_id = str(ObjectId())
    response = client.post(
        "/users/",
        json=signup_body(
            email,
            _id=chosen_id,
            id=chosen_id,
            disabled=True,
            is_admin=True,
            created_at="1999-01-01T00:00:00Z",
            password_hash="not-a-hash",
        ),
    )

    assert response.status_code == 201
    user = response.get_json()["data"]
    assert user["id"] != chosen_id
    assert not user["created_at"].startswith("1999")
    assert {"is_admin", "disabled", "password_hash", "_id"}.isdisjoint(user)
    stored = db.users.find_one({"email": email})
    assert str(stored["_id"]) == user["id"]
    assert stored["disabled"] is False
    assert "is_admin" not in stored and "password_hash" not in stored
    # Not disabled after all: the account works.
    assert auth.login(email).status_code == 200


def test_password_is_stored_as_an_argon2id_hash_not_plaintext(client, db, email):
    assert client.post("/users/", json=signup_body(email)).status_code == 201

    stored = db.users.find_one({"email": email})["password"]

    assert stored.startswith("$argon2id$")
    assert PASSWORD not in stored
    assert PasswordHasher().verify(stored, PASSWORD)
    with pytest.raises(VerifyMismatchError):
        PasswordHasher().verify(stored, PASSWORD + "x")


def test_same_password_hashes_differently_for_two_users(client, db, email):
    other = "other-" + email
    for address in (email, other):
        assert client.post("/users/", json=signup_body(address)).status_code == 201

    first, second = (db.users.find_one({"email": address})["password"] for address in (email, other))

    assert first != second  # salted


def test_default_password_hash_uses_the_owasp_argon2id_parameters(tmp_path):
    """m=19 MiB, t=2, p=1 unless configured otherwise (the tests configure a cheap hash)."""
    app = create_app(
        config_for_tests(
            tmp_path,
            MONGO_CLIENT=mongomock.MongoClient(tz_aware=True),
            PASSWORD_HASH_TIME_COST=OMIT,
            PASSWORD_HASH_MEMORY_KIB=OMIT,
        )
    )
    email = f"owasp-{uuid.uuid4().hex[:8]}@example.com"

    assert app.test_client().post("/users/", json=signup_body(email)).status_code == 201

    stored = database_state(app).db.users.find_one({"email": email})["password"]
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")


@pytest.mark.parametrize(
    "legacy",
    [
        pytest.param(lambda password: generate_password_hash(password, "pbkdf2:sha256:1000"), id="werkzeug-pbkdf2"),
        pytest.param(lambda password: generate_password_hash(password, "scrypt:1024:8:1"), id="werkzeug-scrypt"),
        pytest.param(
            lambda password: PasswordHasher(time_cost=1, memory_cost=512).hash(password),
            id="argon2id-weaker-parameters",
        ),
    ],
)
def test_hash_with_older_parameters_is_upgraded_at_the_next_successful_login(client, auth, db, email, legacy):
    assert client.post("/users/", json=signup_body(email)).status_code == 201
    old_hash = legacy(PASSWORD)
    db.users.update_one({"email": email}, {"$set": {"password": old_hash}})

    # A failed login leaves the old hash alone.
    assert_envelope(auth.login(email, "Wr0ng!password"), 401, WRONG_CREDENTIALS, "Unauthorized")
    assert db.users.find_one({"email": email})["password"] == old_hash

    assert auth.login(email).status_code == 200
    upgraded = db.users.find_one({"email": email})["password"]
    assert upgraded.startswith("$argon2id$v=19$m=1024,t=1,p=1$")  # the configured parameters
    assert PasswordHasher().verify(upgraded, PASSWORD)
    assert auth.login(email).status_code == 200
    assert db.users.find_one({"email": email})["password"] == upgraded  # upgraded once, then left alone


@pytest.mark.each_database
def test_the_app_uses_the_database_named_in_database_url_even_when_handed_a_client(app, db):
    """The app fixture hands in the process's client and names the tests' database in DATABASE_URL.

    If the app ignored that name when handed MONGO_CLIENT, it would write to another database
    than the one emptied before each test.
    """
    assert db.name == urlparse(app.config["DATABASE_URL"]).path.lstrip("/")


@pytest.mark.each_database
def test_each_test_starts_on_an_empty_database_with_every_index(app, db):
    """The database is kept for the whole run and emptied before each test, its indexes kept."""
    assert [name for name in db.list_collection_names() if db[name].estimated_document_count()] == []
    with app.app_context():
        for name, model in Model.owners.items():
            assert {index.name for index in model.indexes()} <= set(db[name].index_information()), name


# --- the current user ---------------------------------------------------------


def test_get_current_user_returns_the_token_owner(client, auth):
    ada = auth.headers(auth.signup(name="Ada Lovelace"))
    grace_email = auth.signup(name="Grace Hopper")
    grace = auth.headers(grace_email)

    ada_body = client.get("/users/", headers=ada).get_json()
    response = client.get("/users/", headers=grace)

    assert_envelope(response, 200, "Current user.")
    body = response.get_json()
    assert body["data"]["name"] == "Grace Hopper"
    assert body["data"]["email"] == grace_email
    assert body["data"]["id"] != ada_body["data"]["id"]
    assert ada_body["data"]["name"] == "Ada Lovelace"
    assert not {key for key in keys_anywhere(body) if "password" in key.lower()}
    assert "token" not in body["data"]


def test_get_current_user_matches_the_login_response(client, auth):
    email = auth.signup()
    login = auth.login(email).get_json()["data"]
    token = login.pop("token")
    for token_field in ("refresh_token", "expires_in", "token_type", "mfa_required"):
        login.pop(token_field)

    response = client.get("/users/", headers={"Authorization": f"Bearer {token}"})

    assert response.get_json()["data"] == login


def test_get_current_user_without_trailing_slash_works_too(client, auth):
    response = client.get("/users", headers=auth.headers())

    assert response.status_code == 200
    assert response.get_json()["data"]["name"] == NAME


# --- renaming -----------------------------------------------------------------


def test_update_user_changes_the_name_only_ignoring_email_password_and_disabled(client, auth):
    email = auth.signup()
    headers = auth.headers(email)
    before = client.get("/users/", headers=headers).get_json()["data"]

    response = client.put(
        "/users/",
        json={
            "name": "Augusta Ada King",
            "email": "someone-else@example.com",
            "password": "N3w!password",
            "disabled": True,
            "id": str(ObjectId()),
        },
        headers=headers,
    )

    user = assert_envelope(response, 200, "Account updated.")
    assert user["name"] == "Augusta Ada King"
    assert user["email"] == email
    assert user["id"] == before["id"]
    assert user["created_at"] == before["created_at"]
    assert user["updated_at"] >= before["updated_at"]
    assert "password" not in user
    # The change is persisted, the old password still works, the new one does not,
    # the account is not disabled and the email was not taken over.
    assert client.get("/users/", headers=headers).get_json()["data"]["name"] == "Augusta Ada King"
    assert auth.login(email).status_code == 200
    assert_envelope(auth.login(email, "N3w!password"), 401, WRONG_CREDENTIALS, "Unauthorized")
    assert_envelope(auth.login("someone-else@example.com", "N3w!password"), 401, WRONG_CREDENTIALS, "Unauthorized")


@pytest.mark.parametrize(
    "body, expected",
    [
        pytest.param({"name": "Ada"}, {"name": NAME_RULE}, id="1-word"),
        pytest.param({"name": " ".join(["word"] * 31)}, {"name": NAME_RULE}, id="31-words"),
        pytest.param({"name": ""}, {"name": NAME_RULE}, id="empty"),
        pytest.param({"name": 7}, {"name": NOT_A_STRING}, id="number"),
        pytest.param({"name": None}, {"name": NOT_A_STRING}, id="null"),
        pytest.param({}, {"name": REQUIRED}, id="missing"),
        pytest.param({"email": "new@example.com"}, {"name": REQUIRED}, id="only-email"),
    ],
)
def test_update_user_with_invalid_name_is_400_and_changes_nothing(client, auth, body, expected):
    headers = auth.headers()

    response = client.put("/users/", json=body, headers=headers)

    assert_envelope(response, 400, INVALID_FIELDS, expected)
    assert client.get("/users/", headers=headers).get_json()["data"]["name"] == NAME


def test_update_user_with_non_json_body_is_415(client, auth):
    response = client.put("/users/", data={"name": "New Name"}, headers=auth.headers())

    assert_envelope(response, 415, JSON_ONLY, "Unsupported Media Type")


@pytest.mark.parametrize("raw, message", [("[1, 2]", NOT_AN_OBJECT), ("{not json", NOT_JSON)])
def test_update_user_with_bad_json_is_400(client, auth, raw, message):
    response = client.put("/users/", data=raw, content_type="application/json", headers=auth.headers())

    assert_envelope(response, 400, INVALID_FIELDS, {"body": message})


# --- disabling ------------------------------------------------------------------


@pytest.mark.each_database
def test_delete_user_is_204_then_its_token_and_its_login_are_401(client, auth, db):
    email = auth.signup()
    headers = auth.headers(email)

    response = client.delete("/users/", json={"password": PASSWORD}, headers=headers)

    assert response.status_code == 204
    assert response.get_data() == b""

    again = client.get("/users/", headers=headers)
    assert_envelope(again, 401, SESSION_ENDED, "Unauthorized")
    assert again.headers["WWW-Authenticate"].startswith("Bearer")
    assert again.www_authenticate.parameters["error"] == "invalid_token"
    rename = client.put("/users/", json={"name": "Back Again"}, headers=headers)
    assert_envelope(rename, 401, SESSION_ENDED, "Unauthorized")
    assert_envelope(
        client.delete("/users/", json={"password": PASSWORD}, headers=headers), 401, SESSION_ENDED, "Unauthorized"
    )
    assert_envelope(auth.login(email), 401, WRONG_CREDENTIALS, "Unauthorized")
    # The account is disabled, not erased: the document stays, flagged.
    assert db.users.find_one({"email": email})["disabled"] is True


@pytest.mark.each_database
def test_delete_user_leaves_other_users_working(client, auth):
    leaving = auth.headers()
    staying_email = auth.signup(name="Grace Hopper")
    staying = auth.headers(staying_email)

    assert client.delete("/users/", json={"password": PASSWORD}, headers=leaving).status_code == 204

    assert client.get("/users/", headers=staying).status_code == 200
    assert auth.login(staying_email).status_code == 200


# --- routing and the banner -----------------------------------------------------


def test_banner_is_200_json(client):
    response = client.get("/")

    assert assert_envelope(response, 200, "Book Library API") == {
        "name": "book-library",
        "docs": "http://localhost/docs",
        "openapi": "http://localhost/openapi.json",
        "refresh_token_cookie": False,
    }
    assert set(response.get_json()) == {"message", "data", "error"}


def test_banner_links_the_documentation_and_the_openapi_document(client):
    links = client.get("/").get_json()["data"]
    assert links["docs"] == "http://localhost/docs"
    assert links["openapi"] == "http://localhost/openapi.json"
    with client.get(links["docs"]) as docs:
        assert docs.status_code == 200
    assert client.get(links["openapi"]).get_json()["openapi"].startswith("3.1")


def test_healthz_is_200_when_the_database_answers(client):
    response = client.get("/healthz")

    assert assert_envelope(response, 200, "ok") == {"database": "up"}


@pytest.mark.parametrize(
    "method, path",
    [
        ("GET", "/nope"),
        ("GET", "/users/nope"),
        ("POST", "/users/login/extra"),
        ("GET", "/books/not-an-id/extra"),
    ],
)
def test_unknown_route_is_404_in_the_envelope(client, method, path):
    response = client.open(path, method=method)

    assert_envelope(response, 404, NO_SUCH_URL, "Not Found")


@pytest.mark.parametrize(
    "method, path, allowed",
    [
        ("POST", "/", {"GET"}),
        ("DELETE", "/", {"GET"}),
        ("PATCH", "/users/", {"GET", "POST", "PUT", "DELETE"}),
        ("GET", "/users/login", {"POST"}),
        ("PUT", "/users/login", {"POST"}),
        ("PATCH", "/books/", {"GET", "POST"}),
        ("POST", "/books/" + "a" * 24, {"GET", "PUT", "DELETE"}),
        ("POST", "/healthz", {"GET"}),
    ],
)
def test_wrong_method_is_405_in_the_envelope_with_an_allow_header(client, method, path, allowed):
    response = client.open(path, method=method)

    assert_envelope(response, 405, WRONG_METHOD, "Method Not Allowed")
    allow = {item.strip() for item in response.headers["Allow"].split(",")}
    assert allowed <= allow
    assert method not in allow
