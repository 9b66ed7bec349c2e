"""Logging in, bearer tokens, the secret key, and the database going away and coming back."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import socket
import stat
import time
import uuid

import jwt
import mongomock
import pytest
from bson import ObjectId

from app import create_app
from conftest import PASSWORD, TEST_SECRET

DAY = 24 * 3600
OTHER_SECRET = "another-secret-key-that-is-also-long-enough"
CHEAP_HASH = "pbkdf2:sha256:1000"
WRONG_PASSWORD_BODY = {"message": "Invalid email or password.", "data": None, "error": "Unauthorized"}


# --- token crafting -------------------------------------------------------------


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def segment(value) -> str:
    return b64url(json.dumps(value).encode())


def hand_signed(header: dict, payload, key: str = TEST_SECRET, digest=hashlib.sha256) -> str:
    """A JWS built without PyJWT, so any header (HS512, alg none...) can be sent."""
    signing_input = f"{segment(header)}.{segment(payload)}"
    signature = hmac.new(key.encode(), signing_input.encode(), digest).digest()
    return f"{signing_input}.{b64url(signature)}"


def claims(sub, /, **changes):
    """Valid claims for a subject; a value of ... removes that claim."""
    now = int(time.time())
    values = {"sub": sub, "iat": now, "exp": now + 3600, **changes}
    return {key: value for key, value in values.items() if value is not ...}


def make_token(sub, /, key: str = TEST_SECRET, **changes) -> str:
    return jwt.encode(claims(sub, **changes), key, algorithm="HS256")


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def tamper_payload(token: str, **changes) -> str:
    """Rewrite the payload of a signed token and keep its original signature."""
    header, payload, signature = token.split(".")
    padded = payload + "=" * (-len(payload) % 4)
    decoded = json.loads(base64.urlsafe_b64decode(padded))
    return f"{header}.{segment({**decoded, **changes})}.{signature}"


def assert_unauthorized(response, error_code, message_fragment):
    """401, the JSON envelope, and an RFC 6750 Bearer challenge carrying the error code."""
    assert response.status_code == 401, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) == {"message", "data", "error"}
    assert body["data"] is None
    assert body["error"] == "Unauthorized"
    assert message_fragment in body["message"], body["message"]
    header = response.headers["WWW-Authenticate"]
    assert header.startswith("Bearer")
    challenge = response.www_authenticate
    assert challenge.type == "bearer"
    assert challenge.parameters.get("error") == error_code, header
    if error_code is not None:
        assert challenge.parameters.get("error_description") == body["message"]
    return body


@pytest.fixture
def user(client, auth):
    """A signed-up, logged-in user: (email, id, token)."""
    email = auth.signup()
    data = auth.login(email).get_json()["data"]
    return email, data["id"], data["token"]


# --- logging in -------------------------------------------------------------------


def test_login_returns_the_user_and_a_token(client, auth):
    email = auth.signup(name="Ada Lovelace")

    response = auth.login(email)

    assert response.status_code == 200
    body = response.get_json()
    assert body["message"] == "Logged in."
    assert body["error"] is None
    data = body["data"]
    assert data["name"] == "Ada Lovelace"
    assert data["email"] == email
    assert ObjectId.is_valid(data["id"])
    assert isinstance(data["token"], str) and data["token"].count(".") == 2
    assert not [key for key in data if "password" in key.lower()]
    assert PASSWORD not in response.get_data(as_text=True)


def test_login_token_is_an_hs256_jwt_with_sub_iat_and_exp_24_hours_after_iat(user):
    _, user_id, token = user

    header = jwt.get_unverified_header(token)
    payload = jwt.decode(token, TEST_SECRET, algorithms=["HS256"])

    assert header["alg"] == "HS256"
    assert header.get("typ", "JWT") == "JWT"
    assert payload["sub"] == user_id
    assert payload["exp"] - payload["iat"] == DAY
    assert abs(payload["iat"] - time.time()) < 300


def test_login_token_opens_protected_routes(client, user):
    email, user_id, token = user

    response = client.get("/users/", headers=bearer(token))

    assert response.status_code == 200
    assert response.get_json()["data"]["id"] == user_id
    assert response.get_json()["data"]["email"] == email


@pytest.mark.parametrize(
    "variant",
    [
        pytest.param(str.upper, id="upper-case"),
        pytest.param(lambda e: f"  {e.capitalize()} ", id="capitalised-with-spaces"),
    ],
)
def test_login_email_is_case_insensitive(auth, variant):
    email = auth.signup()

    response = auth.login(variant(email))

    assert response.status_code == 200
    assert response.get_json()["data"]["email"] == email


@pytest.mark.parametrize(
    "attempt",
    [
        pytest.param(lambda email: (email, "Wr0ng!password"), id="wrong-password"),
        pytest.param(lambda email: (email, PASSWORD.swapcase()), id="password-in-wrong-case"),
        pytest.param(lambda email: (email, PASSWORD + " "), id="password-with-trailing-space"),
        pytest.param(lambda email: ("nobody-" + email, PASSWORD), id="unknown-email"),
        pytest.param(lambda email: ("not-an-email", PASSWORD), id="email-not-even-valid"),
        pytest.param(lambda email: ("", PASSWORD), id="empty-email"),
        pytest.param(lambda email: (email, ""), id="empty-password"),
    ],
)
def test_login_failures_are_401_and_indistinguishable(client, auth, attempt):
    email = auth.signup()
    wrong_password = auth.login(email, "Wr0ng!password")

    login_email, login_password = attempt(email)
    response = auth.login(login_email, login_password)

    assert response.status_code == wrong_password.status_code == 401
    assert response.get_json() == wrong_password.get_json() == WRONG_PASSWORD_BODY
    assert sorted(response.headers.keys()) == sorted(wrong_password.headers.keys())


def test_login_with_unknown_email_is_401_like_wrong_password(auth):
    email = auth.signup()

    unknown = auth.login(f"unknown-{uuid.uuid4().hex}@example.com")
    wrong = auth.login(email, "Wr0ng!password")

    assert (unknown.status_code, unknown.get_json()) == (wrong.status_code, wrong.get_json())
    assert unknown.get_json() == WRONG_PASSWORD_BODY


def test_disabled_user_cannot_log_in(client, auth):
    email = auth.signup()
    headers = auth.headers(email)
    assert client.delete("/users/", headers=headers).status_code == 204

    response = auth.login(email)

    assert response.status_code == 401
    assert response.get_json() == WRONG_PASSWORD_BODY


def test_user_disabled_in_the_database_cannot_log_in_and_its_token_stops_working(client, db, user):
    email, _, token = user

    db.users.update_one({"email": email}, {"$set": {"disabled": True}})

    assert client.post("/users/login", json={"email": email, "password": PASSWORD}).get_json() == WRONG_PASSWORD_BODY
    assert_unauthorized(client.get("/users/", headers=bearer(token)), "invalid_token", "disabled")


def test_token_of_a_user_removed_from_the_database_is_401(client, db, user):
    email, _, token = user

    db.users.delete_one({"email": email})

    assert_unauthorized(client.get("/users/", headers=bearer(token)), "invalid_token", "no longer exists")


@pytest.mark.parametrize(
    "body, expected",
    [
        pytest.param({}, {"email": "required", "password": "required"}, id="empty-object"),
        pytest.param({"email": "ada@example.com"}, {"password": "required"}, id="missing-password"),
        pytest.param({"password": PASSWORD}, {"email": "required"}, id="missing-email"),
        pytest.param({"email": 42, "password": PASSWORD}, {"email": "string"}, id="email-number"),
        pytest.param({"email": None, "password": PASSWORD}, {"email": "string"}, id="email-null"),
        pytest.param({"email": "ada@example.com", "password": ["x"]}, {"password": "string"}, id="password-list"),
        pytest.param(
            {"email": "a" * 310 + "@example.com", "password": PASSWORD}, {"email": "at most"}, id="email-too-long"
        ),
        pytest.param({"email": "ada@example.com", "password": "A1!" + "a" * 1000}, {"password": "at most"},
                     id="password-absurdly-long"),
    ],
)
def test_login_with_missing_or_wrongly_typed_fields_is_400(client, body, expected):
    response = client.post("/users/login", json=body)

    assert response.status_code == 400
    payload = response.get_json()
    assert payload["data"] is None
    assert payload["message"] == "The request has invalid fields."
    assert set(payload["error"]) == set(expected)
    for field, fragment in expected.items():
        assert fragment in payload["error"][field]


@pytest.mark.parametrize(
    "kwargs, status",
    [
        pytest.param({"data": {"email": "ada@example.com", "password": PASSWORD}}, 415, id="form-data"),
        pytest.param({"data": "email=ada%40example.com", "content_type": "text/plain"}, 415, id="text-plain"),
        pytest.param({"data": "{not json", "content_type": "application/json"}, 400, id="invalid-json"),
        pytest.param({"data": '["ada@example.com"]', "content_type": "application/json"}, 400, id="json-array"),
    ],
)
def test_login_with_a_body_that_is_not_a_json_object_is_rejected(client, kwargs, status):
    response = client.post("/users/login", **kwargs)

    assert response.status_code == status
    body = response.get_json()
    assert body["data"] is None
    assert body["error"]


# --- no token ------------------------------------------------------------------------

SOME_ID = "a" * 24
PROTECTED_ROUTES = [
    ("GET", "/users/"),
    ("PUT", "/users/"),
    ("DELETE", "/users/"),
    ("GET", "/books/"),
    ("POST", "/books/"),
    ("GET", f"/books/{SOME_ID}"),
    ("PUT", f"/books/{SOME_ID}"),
    ("DELETE", f"/books/{SOME_ID}"),
]


@pytest.mark.parametrize("method, path", PROTECTED_ROUTES)
def test_protected_route_without_token_is_401_with_a_bearer_challenge(client, method, path):
    response = client.open(path, method=method)

    # RFC 6750 section 3.1: no error code when the request carried no credentials.
    body = assert_unauthorized(response, None, "missing")
    assert body["message"] == "Authentication token is missing."


@pytest.mark.parametrize("method, path", PROTECTED_ROUTES)
def test_protected_route_with_a_bad_token_is_401_before_anything_else(client, method, path):
    response = client.open(path, method=method, headers=bearer("garbage"), json={"name": "Some Body"})

    assert_unauthorized(response, "invalid_token", "malformed")


def test_www_authenticate_realm_is_sent_as_a_quoted_string(client):
    """RFC 9110 section 11.5: a sender MUST only generate the quoted-string syntax for realm."""
    header = client.get("/users/").headers["WWW-Authenticate"]

    assert 'realm="' in header, header


# --- bad tokens --------------------------------------------------------------------------


def _alg_none(user_id, token):
    return f"{segment({'alg': 'none', 'typ': 'JWT'})}.{segment(claims(user_id))}."


def _alg_none_capitalised(user_id, token):
    return f"{segment({'alg': 'None', 'typ': 'JWT'})}.{segment(claims(user_id))}."


def _hs512(user_id, token):
    return hand_signed({"alg": "HS512", "typ": "JWT"}, claims(user_id), digest=hashlib.sha512)


def _hs384(user_id, token):
    return hand_signed({"alg": "HS384", "typ": "JWT"}, claims(user_id), digest=hashlib.sha384)


def _rs256_header(user_id, token):
    return f"{segment({'alg': 'RS256', 'typ': 'JWT'})}.{segment(claims(user_id))}.{b64url(b'x' * 256)}"


def _zeroed_signature(user_id, token):
    header, payload, _ = token.split(".")
    return f"{header}.{payload}.{b64url(bytes(32))}"


BAD_TOKENS = [
    pytest.param(
        lambda uid, tok: make_token(uid, iat=int(time.time()) - 2 * DAY, exp=int(time.time()) - DAY),
        "expired", id="expired",
    ),
    pytest.param(
        lambda uid, tok: make_token(uid, iat=int(time.time()) - DAY - 60, exp=int(time.time()) - 30),
        "expired", id="expired-30-seconds-ago",
    ),
    pytest.param(lambda uid, tok: tamper_payload(tok, sub=str(ObjectId())), "signature", id="tampered-sub"),
    pytest.param(lambda uid, tok: tamper_payload(tok, exp=int(time.time()) + 365 * DAY), "signature",
                 id="tampered-exp"),
    pytest.param(_zeroed_signature, "signature", id="wrong-signature-bytes"),
    pytest.param(lambda uid, tok: make_token(uid, key=OTHER_SECRET), "signature", id="signed-with-another-key"),
    pytest.param(_alg_none, "algorithm", id="alg-none"),
    pytest.param(_alg_none_capitalised, "algorithm", id="alg-None"),
    pytest.param(_hs512, "algorithm", id="hs512-with-the-right-key"),
    pytest.param(_hs384, "algorithm", id="hs384-with-the-right-key"),
    pytest.param(_rs256_header, "algorithm", id="rs256"),
    pytest.param(lambda uid, tok: make_token(uid, exp=...), "'exp'", id="missing-exp"),
    pytest.param(lambda uid, tok: make_token(uid, iat=...), "'iat'", id="missing-iat"),
    pytest.param(lambda uid, tok: make_token(uid, sub=...), "'sub'", id="missing-sub"),
    pytest.param(lambda uid, tok: make_token("not-an-object-id"), "subject", id="sub-not-an-objectid"),
    pytest.param(lambda uid, tok: make_token("g" * 24), "subject", id="sub-24-non-hex"),
    pytest.param(lambda uid, tok: make_token(12345), "malformed", id="sub-a-number"),
    pytest.param(lambda uid, tok: make_token(str(ObjectId())), "no longer exists", id="sub-of-no-user"),
    pytest.param(lambda uid, tok: make_token(uid, iat=int(time.time()) + DAY, exp=int(time.time()) + 2 * DAY),
                 "not valid yet", id="iat-in-the-future"),
    pytest.param(lambda uid, tok: make_token(uid, exp="tomorrow"), "malformed", id="exp-not-a-number"),
    pytest.param(lambda uid, tok: hand_signed({"alg": "HS256", "typ": "JWT"}, [uid]), "malformed",
                 id="payload-not-an-object"),
    pytest.param(lambda uid, tok: "garbage", "malformed", id="garbage"),
    pytest.param(lambda uid, tok: "a.b.c", "malformed", id="three-garbage-segments"),
    pytest.param(lambda uid, tok: tok.rsplit(".", 1)[0], "malformed", id="signature-segment-dropped"),
]


@pytest.mark.parametrize("forge, problem", BAD_TOKENS)
def test_bad_token_is_401_invalid_token_naming_the_problem(client, user, forge, problem):
    _, user_id, token = user

    response = client.get("/users/", headers=bearer(forge(user_id, token)))

    assert_unauthorized(response, "invalid_token", problem)


def test_tampered_token_does_not_give_access_to_another_account(client, auth, user):
    _, _, token = user
    victim_email = auth.signup(name="Grace Hopper")
    victim_id = auth.login(victim_email).get_json()["data"]["id"]

    response = client.get("/users/", headers=bearer(tamper_payload(token, sub=victim_id)))

    assert_unauthorized(response, "invalid_token", "signature")


# --- malformed Authorization headers ------------------------------------------------------

LONG = "a" * 10 * 1024


@pytest.mark.parametrize(
    "header, error_code, problem",
    [
        pytest.param("", None, "missing", id="empty-header"),
        pytest.param("Bearer", "invalid_request", "Bearer <token>", id="scheme-only"),
        pytest.param("Bearer ", "invalid_request", "Bearer <token>", id="scheme-and-space"),
        pytest.param("Bearer    ", "invalid_request", "Bearer <token>", id="empty-token"),
        pytest.param("Basic abc", "invalid_request", "Bearer <token>", id="basic-scheme"),
        pytest.param("Basic " + base64.b64encode(b"ada@example.com:Str0ng!pass").decode(), "invalid_request",
                     "Bearer <token>", id="basic-credentials"),
        pytest.param("Token abc", "invalid_request", "Bearer <token>", id="other-scheme"),
        pytest.param("Bearer a b", "invalid_request", "Bearer <token>", id="two-tokens"),
        pytest.param("Bearer a.b.c, Bearer d.e.f", "invalid_request", "Bearer <token>", id="two-credentials"),
        pytest.param("Bëarer abc", "invalid_request", "Bearer <token>", id="non-ascii-scheme"),
        pytest.param(LONG, "invalid_request", "Bearer <token>", id="10kb-no-scheme"),
        pytest.param("Bearer " + LONG, "invalid_token", "malformed", id="10kb-token"),
        pytest.param("Bearer " + ".".join([LONG[:3400]] * 3), "invalid_token", "malformed", id="10kb-three-segments"),
        # What a WSGI server hands over for raw UTF-8 bytes: each byte as a latin-1 character.
        pytest.param("Bearer " + "ünïcödé€".encode().decode("latin-1"), "invalid_token", "malformed",
                     id="utf8-bytes-token"),
        pytest.param("Bearer \xff\xfe\xfd", "invalid_token", "malformed", id="latin1-bytes-token"),
        pytest.param("Bearer ü.ü.ü", "invalid_token", "malformed", id="non-ascii-segments"),
        pytest.param("Bearer \x00", "invalid_token", "malformed", id="nul-byte"),
    ],
)
def test_malformed_authorization_header_is_401_never_500(client, header, error_code, problem):
    response = client.get("/users/", headers={"Authorization": header})

    assert_unauthorized(response, error_code, problem)


@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "BeArEr"])
def test_bearer_scheme_is_case_insensitive(client, user, scheme):
    _, user_id, token = user

    response = client.get("/users/", headers={"Authorization": f"{scheme} {token}"})

    assert response.status_code == 200
    assert response.get_json()["data"]["id"] == user_id


@pytest.mark.parametrize("junk", ["\xe9", "\xe9\xe9", "!!!!", "~~~~", "\x00\x00\x00\x00"])
def test_valid_token_with_junk_appended_is_401_malformed(client, user, junk):
    _, _, token = user

    response = client.get("/users/", headers=bearer(token + junk))

    assert_unauthorized(response, "invalid_token", "malformed")


# --- configurable lifetime ---------------------------------------------------------------


class TestConfiguredTokenLifetime:
    @pytest.fixture
    def app_config(self):
        return {"ACCESS_TOKEN_EXPIRES_SECONDS": 60}

    def test_token_expires_the_configured_seconds_after_iat(self, user):
        _, _, token = user

        payload = jwt.decode(token, TEST_SECRET, algorithms=["HS256"])

        assert payload["exp"] - payload["iat"] == 60

    def test_token_within_the_configured_lifetime_works(self, client, user):
        _, _, token = user

        assert client.get("/users/", headers=bearer(token)).status_code == 200


# --- the secret key (apps built directly) --------------------------------------------------


@pytest.fixture
def clean_env(monkeypatch):
    """No configuration inherited from the shell running the tests."""
    for name in (
        "SECRET_KEY",
        "APP_ENV",
        "DATABASE_URL",
        "INSTANCE_PATH",
        "ACCESS_TOKEN_EXPIRES_SECONDS",
        "DATABASE_TIMEOUT_MS",
    ):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def build_app(instance, mongo=None, **config):
    return create_app(
        {
            "TESTING": True,
            "INSTANCE_PATH": str(instance),
            "MONGO_CLIENT": mongo if mongo is not None else mongomock.MongoClient(tz_aware=True),
            "PASSWORD_HASH_METHOD": CHEAP_HASH,
            **config,
        }
    )


def sign_up_and_log_in(client) -> dict:
    """Sign up a fresh user through the API; the login response's data (with token)."""
    email = f"key-{uuid.uuid4().hex[:8]}@example.com"
    created = client.post("/users/", json={"name": "Ada Lovelace", "email": email, "password": PASSWORD})
    assert created.status_code == 201, created.get_json()
    response = client.post("/users/login", json={"email": email, "password": PASSWORD})
    assert response.status_code == 200
    return response.get_json()["data"]


def files_under(path) -> list:
    return [p for p in path.rglob("*") if p.is_file()] if path.exists() else []


@pytest.mark.parametrize("how", ["config", "environment"])
def test_production_without_secret_key_refuses_to_start(tmp_path, clean_env, how):
    instance = tmp_path / "instance"
    if how == "environment":
        clean_env.setenv("APP_ENV", "production")
        config = {}
    else:
        config = {"APP_ENV": "production"}

    with pytest.raises(RuntimeError, match="SECRET_KEY"):
        build_app(instance, **config)

    assert files_under(instance) == []  # no key was generated behind the operator's back


@pytest.mark.parametrize("env", ["production", "development"])
def test_tutorial_default_secret_is_refused(tmp_path, clean_env, env):
    with pytest.raises(RuntimeError, match="tutorial"):
        build_app(tmp_path / "instance", APP_ENV=env, SECRET_KEY="this is a secret")


@pytest.mark.parametrize(
    "key",
    [
        pytest.param("k" * 31, id="31-bytes"),
        pytest.param("short", id="5-bytes"),
    ],
)
def test_production_refuses_a_secret_key_shorter_than_32_bytes(tmp_path, clean_env, key):
    with pytest.raises(RuntimeError, match="32"):
        build_app(tmp_path / "instance", APP_ENV="production", SECRET_KEY=key)


@pytest.mark.parametrize(
    "key",
    [
        pytest.param("k" * 32, id="32-ascii-bytes"),
        pytest.param("é" * 16, id="32-utf8-bytes"),
        pytest.param(OTHER_SECRET, id="long"),
    ],
)
def test_production_with_a_strong_key_signs_tokens_with_it(tmp_path, clean_env, key):
    app = build_app(tmp_path / "instance", APP_ENV="production", SECRET_KEY=key)
    client = app.test_client()
    data = sign_up_and_log_in(client)

    assert jwt.decode(data["token"], key, algorithms=["HS256"])["sub"] == data["id"]
    # And a token the operator signs with that key is accepted.
    assert client.get("/users/", headers=bearer(make_token(data["id"], key=key))).status_code == 200


def test_secret_key_from_the_environment_is_used(tmp_path, clean_env):
    clean_env.setenv("SECRET_KEY", OTHER_SECRET)
    clean_env.setenv("APP_ENV", "production")
    app = build_app(tmp_path / "instance")
    client = app.test_client()

    data = sign_up_and_log_in(client)

    assert jwt.decode(data["token"], OTHER_SECRET, algorithms=["HS256"])["sub"] == data["id"]
    assert files_under(tmp_path / "instance") == []


def test_development_without_a_key_creates_a_private_key_file_under_the_instance_path(tmp_path, clean_env):
    instance = tmp_path / "instance"

    app = build_app(instance)

    key_files = files_under(instance)
    assert len(key_files) == 1
    assert stat.S_IMODE(os.stat(key_files[0]).st_mode) == 0o600
    key = key_files[0].read_text().strip()
    assert len(key.encode()) >= 32
    # The file holds the signing key.
    data = sign_up_and_log_in(app.test_client())
    assert jwt.decode(data["token"], key, algorithms=["HS256"])["sub"] == data["id"]


def test_development_tokens_survive_a_restart_with_the_same_instance_path(tmp_path, clean_env):
    instance = tmp_path / "instance"
    mongo = mongomock.MongoClient(tz_aware=True)
    first = build_app(instance, mongo)
    data = sign_up_and_log_in(first.test_client())

    restarted = build_app(instance, mongo)
    response = restarted.test_client().get("/users/", headers=bearer(data["token"]))

    assert response.status_code == 200
    assert response.get_json()["data"]["id"] == data["id"]
    assert len(files_under(instance)) == 1


def test_development_keys_differ_between_instance_paths(tmp_path, clean_env):
    """The generated key is random, not a baked-in default: another install rejects the token."""
    mongo = mongomock.MongoClient(tz_aware=True)
    data = sign_up_and_log_in(build_app(tmp_path / "one", mongo).test_client())

    other = build_app(tmp_path / "two", mongo)
    response = other.test_client().get("/users/", headers=bearer(data["token"]))

    assert_unauthorized(response, "invalid_token", "signature")


def test_secret_key_is_never_logged_printed_or_returned(tmp_path, clean_env, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    instance = tmp_path / "instance"
    app = build_app(instance)
    client = app.test_client()
    bodies = [client.get("/").get_data(as_text=True), client.get("/healthz").get_data(as_text=True)]
    data = sign_up_and_log_in(client)
    for token in (data["token"], make_token(data["id"], key=OTHER_SECRET), "garbage"):
        bodies.append(client.get("/users/", headers=bearer(token)).get_data(as_text=True))
    bodies.append(client.get("/nope").get_data(as_text=True))

    key = files_under(instance)[0].read_text().strip()
    out, err = capsys.readouterr()
    for text in [caplog.text, out, err, *bodies]:
        assert key not in text


def test_token_lifetime_can_be_set_from_the_environment(tmp_path, clean_env):
    clean_env.setenv("ACCESS_TOKEN_EXPIRES_SECONDS", "90")
    app = build_app(tmp_path / "instance", SECRET_KEY=TEST_SECRET)

    token = sign_up_and_log_in(app.test_client())["token"]

    payload = jwt.decode(token, TEST_SECRET, algorithms=["HS256"])
    assert payload["exp"] - payload["iat"] == 90


# --- the database going away ---------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def timed(call, *args, **kwargs):
    started = time.monotonic()
    response = call(*args, **kwargs)
    return response, time.monotonic() - started


def assert_unavailable(response, seconds):
    assert seconds < 5, f"took {seconds:.1f}s: requests must fail fast when the database is down"
    assert response.status_code == 503, response.get_data(as_text=True)
    body = response.get_json()
    assert set(body) == {"message", "data", "error"}
    assert body["error"] == "Service Unavailable"
    assert "database" in body["message"].lower()
    assert "Traceback" not in response.get_data(as_text=True)


def test_database_down_gives_fast_503_and_the_app_recovers_when_it_is_back(tmp_path, clean_env):
    from secantus import SecantusDBServer  # GPL-2.0: tests and the launcher only

    port = free_port()
    credentials = {"email": "back@example.com", "password": PASSWORD}
    app, seconds = timed(
        create_app,
        {
            "TESTING": True,
            "SECRET_KEY": TEST_SECRET,
            "INSTANCE_PATH": str(tmp_path / "instance"),
            "DATABASE_URL": f"mongodb://127.0.0.1:{port}/book_library_recovery",
            "DATABASE_TIMEOUT_MS": 300,
            "PASSWORD_HASH_METHOD": CHEAP_HASH,
        },
    )
    assert seconds < 5, "create_app must not hang on an unreachable database"
    client = app.test_client()
    try:
        health, seconds = timed(client.get, "/healthz")
        assert_unavailable(health, seconds)

        login, seconds = timed(client.post, "/users/login", json=credentials)
        assert_unavailable(login, seconds)
        assert int(login.headers["Retry-After"]) > 0

        server = SecantusDBServer(storage_path=str(tmp_path / "db"), port=port)
        server.start()
        try:
            # The driver notices the server on its own; poll (each try is bounded by the
            # 300 ms selection timeout) rather than sleep.
            deadline = time.monotonic() + 10
            health = client.get("/healthz")
            while health.status_code != 200 and time.monotonic() < deadline:
                health = client.get("/healthz")
            assert health.status_code == 200, health.get_json()
            assert health.get_json()["error"] is None

            signup = client.post("/users/", json={"name": "Back Again", **credentials})
            assert signup.status_code == 201, signup.get_json()
            # The unique index was created once the database came back.
            duplicate = client.post(
                "/users/", json={"name": "Back Again", **credentials, "email": "BACK@example.com"}
            )
            assert duplicate.status_code == 409
            assert client.post("/users/login", json=credentials).status_code == 200
        finally:
            server.stop()
    finally:
        app.extensions["mongo"]["client"].close()  # the app's own client; avoids a ResourceWarning
