"""Logging in, bearer access tokens, the secret key, and the database going away and coming back."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import stat
import time
import uuid
from typing import NamedTuple

import jwt
import mongomock
import pytest
from bson import ObjectId

from app import create_app
from database.client import state as database_state
from helpers import (
    ACCESS_TOKEN_SECONDS,
    AN_INSTANT,
    INVALID_FIELDS,
    JSON_ONLY,
    NOT_A_STRING,
    OMIT,
    PASSWORD,
    REQUIRED,
    SESSION_ENDED,
    TEST_SECRET,
    TOKEN_EXPIRED,
    TOKEN_MISSING,
    WRONG_CREDENTIALS,
    AuthActions,
    assert_envelope,
    bearer,
    config_for_tests,
    free_port,
    protected_operations,
)

DAY = 24 * 3600
ISSUER, AUDIENCE = "book-library", "book-library-api"
ACCESS_TOKEN_TYPE = "at+jwt"
CLAIMS = {"iss", "aud", "sub", "sid", "ver", "jti", "iat", "exp"}
OTHER_SECRET = "another-secret-key-that-is-also-long-enough"

# What a 401 says about a token.
NOT_ACCESS_TOKEN = "Token is not an access token."
BAD_SIGNATURE = "Token signature is invalid."
BAD_ALGORITHM = "Token algorithm is not allowed."
NOT_YET_VALID = "Token is not valid yet."
WRONG_AUDIENCE = "Token is not meant for this API."
WRONG_ISSUER = "Token was not issued by this API."
MALFORMED = "Token is malformed."
BAD_SUBJECT = "Token subject is invalid."
BAD_HEADER = "Authorization header must be 'Bearer <token>'."


def missing_claim(name: str) -> str:
    return f"Token is missing the '{name}' claim."


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


def header(alg: str = "HS256", typ=ACCESS_TOKEN_TYPE) -> dict:
    """A JOSE header; typ ... leaves it out."""
    return {"alg": alg} if typ is ... else {"alg": alg, "typ": typ}


def claims(sub, sid, /, **changes):
    """Valid access-token claims for a subject and session; a value of ... removes that claim."""
    now = int(time.time())
    values = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": sub,
        "sid": sid,
        "jti": uuid.uuid4().hex,
        "iat": now,
        "exp": now + 600,
        **changes,
    }
    return {key: value for key, value in values.items() if value is not ...}


def make_token(sub, sid, /, key: str = TEST_SECRET, typ=ACCESS_TOKEN_TYPE, **changes) -> str:
    """A correctly signed HS256 token: an access token unless claims or typ are changed."""
    headers = {"typ": None} if typ is ... else {"typ": typ}
    return jwt.encode(claims(sub, sid, **changes), key, algorithm="HS256", headers=headers)


def decode(token: str, key: str = TEST_SECRET) -> dict:
    return jwt.decode(token, key, algorithms=["HS256"], audience=AUDIENCE, issuer=ISSUER)


def tamper_payload(token: str, **changes) -> str:
    """Rewrite the payload of a signed token and keep its original signature."""
    header, payload, signature = token.split(".")
    padded = payload + "=" * (-len(payload) % 4)
    decoded = json.loads(base64.urlsafe_b64decode(padded))
    return f"{header}.{segment({**decoded, **changes})}.{signature}"


def assert_unauthorized(response, error_code, message):
    """401 in the envelope with this message, and an RFC 6750 Bearer challenge carrying the error code
    (and the message as its description)."""
    assert_envelope(response, 401, message, "Unauthorized")
    header = response.headers["WWW-Authenticate"]
    assert header.startswith("Bearer")
    challenge = response.www_authenticate
    assert challenge.type == "bearer"
    assert challenge.parameters.get("error") == error_code, header
    if error_code is not None:
        assert challenge.parameters.get("error_description") == message


class LoggedIn(NamedTuple):
    email: str
    id: str
    sid: str  # the session the token belongs to
    token: str


@pytest.fixture
def user(client, auth):
    """A signed-up, logged-in user."""
    email = auth.signup()
    data = auth.login(email).get_json()["data"]
    sid = jwt.decode(data["token"], options={"verify_signature": False})["sid"]
    return LoggedIn(email, data["id"], sid, data["token"])


# --- logging in -------------------------------------------------------------------


def test_login_returns_the_user_and_a_token(client, auth):
    email = auth.signup(name="Ada Lovelace")

    response = auth.login(email)

    data = assert_envelope(response, 200, "Logged in.")
    assert data["name"] == "Ada Lovelace"
    assert data["email"] == email
    assert ObjectId.is_valid(data["id"])
    assert isinstance(data["token"], str) and data["token"].count(".") == 2
    assert data["expires_in"] == ACCESS_TOKEN_SECONDS
    assert data["token_type"] == "Bearer"
    assert not [key for key in data if "password" in key.lower()]
    assert PASSWORD not in response.get_data(as_text=True)


def test_login_token_is_an_hs256_access_token_with_every_claim_and_15_minutes_of_life(clock, user):
    token = user.token

    header = jwt.get_unverified_header(token)
    payload = decode(token)

    assert header["alg"] == "HS256"
    assert header["typ"] == ACCESS_TOKEN_TYPE
    assert set(payload) == CLAIMS
    assert payload["iss"] == ISSUER
    assert payload["aud"] == AUDIENCE
    assert payload["sub"] == user.id
    assert ObjectId.is_valid(payload["sid"])
    assert isinstance(payload["jti"], str) and len(payload["jti"]) >= 16
    assert payload["exp"] - payload["iat"] == ACCESS_TOKEN_SECONDS
    assert payload["iat"] == int(AN_INSTANT.timestamp())


def test_every_token_gets_its_own_jti_and_every_login_its_own_session(auth, user):
    other = auth.login(user.email).get_json()["data"]["token"]

    first, second = decode(user.token), decode(other)

    assert first["jti"] != second["jti"]
    assert first["sid"] != second["sid"]
    assert first["sub"] == second["sub"]


def test_login_token_opens_protected_routes(client, user):
    email, user_id, token = user.email, user.id, user.token

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

    assert_envelope(wrong_password, 401, WRONG_CREDENTIALS, "Unauthorized")
    assert_envelope(response, 401, WRONG_CREDENTIALS, "Unauthorized")
    assert response.get_json() == wrong_password.get_json()
    assert sorted(response.headers.keys()) == sorted(wrong_password.headers.keys())


def test_login_with_unknown_email_is_401_like_wrong_password(auth):
    email = auth.signup()

    unknown = auth.login(f"unknown-{uuid.uuid4().hex}@example.com")
    wrong = auth.login(email, "Wr0ng!password")

    assert_envelope(unknown, 401, WRONG_CREDENTIALS, "Unauthorized")
    assert (unknown.status_code, unknown.get_json()) == (wrong.status_code, wrong.get_json())


def test_disabled_user_cannot_log_in(client, auth):
    email = auth.signup()
    headers = auth.headers(email)
    assert client.delete("/users/", json={"password": PASSWORD}, headers=headers).status_code == 204

    response = auth.login(email)

    assert_envelope(response, 401, WRONG_CREDENTIALS, "Unauthorized")


def test_user_disabled_in_the_database_cannot_log_in_and_its_token_stops_working(client, db, user):
    db.users.update_one({"email": user.email}, {"$set": {"disabled": True}})

    login = client.post("/users/login", json={"email": user.email, "password": PASSWORD})
    assert_envelope(login, 401, WRONG_CREDENTIALS, "Unauthorized")
    assert_unauthorized(client.get("/users/", headers=bearer(user.token)), "invalid_token", SESSION_ENDED)


def test_token_of_a_user_removed_from_the_database_is_401(client, db, user):
    db.users.delete_one({"email": user.email})

    assert_unauthorized(client.get("/users/", headers=bearer(user.token)), "invalid_token", SESSION_ENDED)


@pytest.mark.parametrize(
    "body, expected",
    [
        pytest.param({}, {"email": REQUIRED, "password": REQUIRED}, id="empty-object"),
        pytest.param({"email": "ada@example.com"}, {"password": REQUIRED}, id="missing-password"),
        pytest.param({"password": PASSWORD}, {"email": REQUIRED}, id="missing-email"),
        pytest.param({"email": 42, "password": PASSWORD}, {"email": NOT_A_STRING}, id="email-number"),
        pytest.param({"email": None, "password": PASSWORD}, {"email": NOT_A_STRING}, id="email-null"),
        pytest.param({"email": "ada@example.com", "password": ["x"]}, {"password": NOT_A_STRING}, id="password-list"),
        pytest.param(
            {"email": "a" * 310 + "@example.com", "password": PASSWORD},
            {"email": "Must be at most 320 characters."},
            id="email-too-long",
        ),
        pytest.param(
            {"email": "ada@example.com", "password": "A1!" + "a" * 1000},
            {"password": "Must be at most 512 characters."},
            id="password-absurdly-long",
        ),
    ],
)
def test_login_with_missing_or_wrongly_typed_fields_is_400(client, body, expected):
    response = client.post("/users/login", json=body)

    assert_envelope(response, 400, INVALID_FIELDS, expected)


UNSUPPORTED = (415, JSON_ONLY, "Unsupported Media Type")


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        pytest.param({"data": {"email": "ada@example.com", "password": PASSWORD}}, UNSUPPORTED, id="form-data"),
        pytest.param({"data": "email=ada%40example.com", "content_type": "text/plain"}, UNSUPPORTED, id="text-plain"),
        pytest.param(
            {"data": "{not json", "content_type": "application/json"},
            (400, INVALID_FIELDS, {"body": "Request body is not valid JSON."}),
            id="invalid-json",
        ),
        pytest.param(
            {"data": '["ada@example.com"]', "content_type": "application/json"},
            (400, INVALID_FIELDS, {"body": "Request body must be a JSON object."}),
            id="json-array",
        ),
    ],
)
def test_login_with_a_body_that_is_not_a_json_object_is_rejected(client, kwargs, expected):
    response = client.post("/users/login", **kwargs)

    assert_envelope(response, *expected)


# --- no token ------------------------------------------------------------------------

# Every operation whose OpenAPI description asks for a bearer token (test_browser proves that the
# running app answers 401 exactly there).


@pytest.mark.parametrize("method, path", protected_operations())
def test_protected_route_without_token_is_401_with_a_bearer_challenge(client, method, path):
    response = client.open(path, method=method)

    # RFC 6750 section 3.1: no error code when the request carried no credentials.
    assert_unauthorized(response, None, TOKEN_MISSING)


@pytest.mark.parametrize("method, path", protected_operations())
def test_protected_route_with_a_bad_token_is_401_before_anything_else(client, method, path):
    response = client.open(path, method=method, headers=bearer("garbage"), json={"name": "Some Body"})

    assert_unauthorized(response, "invalid_token", MALFORMED)


def test_www_authenticate_realm_is_sent_as_a_quoted_string(client):
    """RFC 9110 section 11.5: a sender MUST only generate the quoted-string syntax for realm."""
    header = client.get("/users/").headers["WWW-Authenticate"]

    assert 'realm="' in header, header


# --- bad tokens --------------------------------------------------------------------------
#
# Each crafted token is a valid access token (every claim, typ at+jwt, the live session of the
# user) except for the one problem its row names.


def _alg_none(uid, sid, token):
    return f"{segment(header('none'))}.{segment(claims(uid, sid))}."


def _alg_none_capitalised(uid, sid, token):
    return f"{segment(header('None'))}.{segment(claims(uid, sid))}."


def _hs512(uid, sid, token):
    return hand_signed(header("HS512"), claims(uid, sid), digest=hashlib.sha512)


def _hs384(uid, sid, token):
    return hand_signed(header("HS384"), claims(uid, sid), digest=hashlib.sha384)


def _rs256_header(uid, sid, token):
    return f"{segment(header('RS256'))}.{segment(claims(uid, sid))}.{b64url(b'x' * 256)}"


def _zeroed_signature(uid, sid, token):
    head, payload, _ = token.split(".")
    return f"{head}.{payload}.{b64url(bytes(32))}"


def _now() -> int:
    return int(time.time())


BAD_TOKENS = [
    pytest.param(
        lambda uid, sid, tok: make_token(uid, sid, iat=_now() - 2 * DAY, exp=_now() - DAY), TOKEN_EXPIRED, id="expired"
    ),
    pytest.param(
        lambda uid, sid, tok: make_token(uid, sid, iat=_now() - ACCESS_TOKEN_SECONDS - 60, exp=_now() - 30),
        TOKEN_EXPIRED,
        id="expired-30-seconds-ago",
    ),
    pytest.param(lambda uid, sid, tok: tamper_payload(tok, sub=str(ObjectId())), BAD_SIGNATURE, id="tampered-sub"),
    pytest.param(lambda uid, sid, tok: tamper_payload(tok, sid=str(ObjectId())), BAD_SIGNATURE, id="tampered-sid"),
    pytest.param(lambda uid, sid, tok: tamper_payload(tok, exp=_now() + 365 * DAY), BAD_SIGNATURE, id="tampered-exp"),
    pytest.param(_zeroed_signature, BAD_SIGNATURE, id="wrong-signature-bytes"),
    pytest.param(
        lambda uid, sid, tok: make_token(uid, sid, key=OTHER_SECRET), BAD_SIGNATURE, id="signed-with-another-key"
    ),
    pytest.param(_alg_none, BAD_ALGORITHM, id="alg-none"),
    pytest.param(_alg_none_capitalised, BAD_ALGORITHM, id="alg-None"),
    pytest.param(_hs512, BAD_ALGORITHM, id="hs512-with-the-right-key"),
    pytest.param(_hs384, BAD_ALGORITHM, id="hs384-with-the-right-key"),
    pytest.param(_rs256_header, BAD_ALGORITHM, id="rs256"),
    pytest.param(lambda uid, sid, tok: make_token(uid, sid, exp=...), missing_claim("exp"), id="missing-exp"),
    pytest.param(lambda uid, sid, tok: make_token(uid, sid, iat=...), missing_claim("iat"), id="missing-iat"),
    pytest.param(lambda uid, sid, tok: make_token(uid, sid, sub=...), missing_claim("sub"), id="missing-sub"),
    pytest.param(lambda uid, sid, tok: make_token(uid, sid, sid=...), missing_claim("sid"), id="missing-sid"),
    pytest.param(lambda uid, sid, tok: make_token(uid, sid, jti=...), missing_claim("jti"), id="missing-jti"),
    pytest.param(lambda uid, sid, tok: make_token(uid, sid, iss=...), missing_claim("iss"), id="missing-iss"),
    pytest.param(lambda uid, sid, tok: make_token(uid, sid, aud=...), missing_claim("aud"), id="missing-aud"),
    pytest.param(lambda uid, sid, tok: make_token(uid, sid, iss="someone-else"), WRONG_ISSUER, id="wrong-iss"),
    pytest.param(lambda uid, sid, tok: make_token(uid, sid, aud="another-api"), WRONG_AUDIENCE, id="wrong-aud"),
    pytest.param(
        lambda uid, sid, tok: make_token(uid, sid, aud=["another-api"]), WRONG_AUDIENCE, id="aud-list-without-this-api"
    ),
    pytest.param(lambda uid, sid, tok: make_token(uid, sid, typ=...), NOT_ACCESS_TOKEN, id="typ-missing"),
    pytest.param(lambda uid, sid, tok: make_token(uid, sid, typ="JWT"), NOT_ACCESS_TOKEN, id="typ-JWT"),
    pytest.param(
        lambda uid, sid, tok: make_token(uid, sid, typ="refresh+jwt"), NOT_ACCESS_TOKEN, id="typ-another-kind"
    ),
    pytest.param(lambda uid, sid, tok: make_token(uid, sid, typ="AT+JWT"), NOT_ACCESS_TOKEN, id="typ-in-other-case"),
    pytest.param(
        lambda uid, sid, tok: hand_signed(header(typ=...), claims(uid, sid)),
        NOT_ACCESS_TOKEN,
        id="typ-missing-hand-signed",
    ),
    pytest.param(lambda uid, sid, tok: make_token("not-an-object-id", sid), BAD_SUBJECT, id="sub-not-an-objectid"),
    pytest.param(lambda uid, sid, tok: make_token("g" * 24, sid), BAD_SUBJECT, id="sub-24-non-hex"),
    pytest.param(lambda uid, sid, tok: make_token(12345, sid), MALFORMED, id="sub-a-number"),
    pytest.param(lambda uid, sid, tok: make_token(uid, "not-an-object-id"), BAD_SUBJECT, id="sid-not-an-objectid"),
    pytest.param(lambda uid, sid, tok: make_token(uid, 12345), BAD_SUBJECT, id="sid-a-number"),
    pytest.param(lambda uid, sid, tok: make_token(uid, sid, jti=12345), MALFORMED, id="jti-a-number"),
    pytest.param(lambda uid, sid, tok: make_token(str(ObjectId()), sid), SESSION_ENDED, id="sub-of-no-user"),
    pytest.param(lambda uid, sid, tok: make_token(uid, str(ObjectId())), SESSION_ENDED, id="sid-of-no-session"),
    pytest.param(
        lambda uid, sid, tok: make_token(uid, sid, iat=_now() + DAY, exp=_now() + 2 * DAY),
        NOT_YET_VALID,
        id="iat-in-the-future",
    ),
    pytest.param(lambda uid, sid, tok: make_token(uid, sid, exp="tomorrow"), MALFORMED, id="exp-not-a-number"),
    pytest.param(lambda uid, sid, tok: hand_signed(header(), [uid, sid]), MALFORMED, id="payload-not-an-object"),
    pytest.param(lambda uid, sid, tok: "garbage", MALFORMED, id="garbage"),
    pytest.param(lambda uid, sid, tok: "a.b.c", MALFORMED, id="three-garbage-segments"),
    pytest.param(lambda uid, sid, tok: tok.rsplit(".", 1)[0], MALFORMED, id="signature-segment-dropped"),
]


@pytest.mark.parametrize("forge, problem", BAD_TOKENS)
def test_bad_token_is_401_invalid_token_naming_the_problem(client, user, forge, problem):
    response = client.get("/users/", headers=bearer(forge(user.id, user.sid, user.token)))

    assert_unauthorized(response, "invalid_token", problem)


def test_crafted_tokens_pass_when_nothing_is_wrong_with_them(client, user):
    """The control for the table above: the crafting itself yields a working access token."""
    for token in (make_token(user.id, user.sid), hand_signed(header(), claims(user.id, user.sid))):
        response = client.get("/users/", headers=bearer(token))

        assert response.status_code == 200, response.get_json()
        assert response.get_json()["data"]["id"] == user.id


def test_tampered_token_does_not_give_access_to_another_account(client, auth, user):
    victim_email = auth.signup(name="Grace Hopper")
    victim = decode(auth.login(victim_email).get_json()["data"]["token"])

    response = client.get("/users/", headers=bearer(tamper_payload(user.token, sub=victim["sub"], sid=victim["sid"])))

    assert_unauthorized(response, "invalid_token", BAD_SIGNATURE)


def test_token_bound_to_another_users_session_is_401(client, auth, user):
    """A correctly signed token pairing my id with someone else's live session opens nothing."""
    other = decode(auth.login(auth.signup(name="Grace Hopper")).get_json()["data"]["token"])

    response = client.get("/users/", headers=bearer(make_token(user.id, other["sid"])))

    assert_unauthorized(response, "invalid_token", SESSION_ENDED)


def test_correctly_signed_token_of_an_ended_session_is_401(client, auth, user):
    """Ending a session ends every token naming it, even one minted afterwards with the key."""
    other = auth.login(user.email).get_json()["data"]["token"]
    ended_sid = decode(other)["sid"]
    assert client.delete(f"/users/sessions/{ended_sid}", headers=bearer(user.token)).status_code == 204

    response = client.get("/users/", headers=bearer(make_token(user.id, ended_sid)))

    assert_unauthorized(response, "invalid_token", SESSION_ENDED)
    assert client.get("/users/", headers=bearer(make_token(user.id, user.sid))).status_code == 200


def test_token_of_a_logged_out_session_is_401(client, user):
    assert client.post("/users/logout", headers=bearer(user.token)).status_code == 204

    for token in (user.token, make_token(user.id, user.sid)):
        assert_unauthorized(client.get("/users/", headers=bearer(token)), "invalid_token", SESSION_ENDED)


# --- malformed Authorization headers ------------------------------------------------------

LONG = "a" * 10 * 1024


@pytest.mark.parametrize(
    "header, error_code, problem",
    [
        pytest.param("", None, TOKEN_MISSING, id="empty-header"),
        pytest.param("Bearer", "invalid_request", BAD_HEADER, id="scheme-only"),
        pytest.param("Bearer ", "invalid_request", BAD_HEADER, id="scheme-and-space"),
        pytest.param("Bearer    ", "invalid_request", BAD_HEADER, id="empty-token"),
        pytest.param("Basic abc", "invalid_request", BAD_HEADER, id="basic-scheme"),
        pytest.param(
            "Basic " + base64.b64encode(b"ada@example.com:Str0ng!pass").decode(),
            "invalid_request",
            BAD_HEADER,
            id="basic-credentials",
        ),
        pytest.param("Token abc", "invalid_request", BAD_HEADER, id="other-scheme"),
        pytest.param("Bearer a b", "invalid_request", BAD_HEADER, id="two-tokens"),
        pytest.param("Bearer a.b.c, Bearer d.e.f", "invalid_request", BAD_HEADER, id="two-credentials"),
        pytest.param("Bëarer abc", "invalid_request", BAD_HEADER, id="non-ascii-scheme"),
        pytest.param(LONG, "invalid_request", BAD_HEADER, id="10kb-no-scheme"),
        pytest.param("Bearer " + LONG, "invalid_token", MALFORMED, id="10kb-token"),
        pytest.param("Bearer " + ".".join([LONG[:3400]] * 3), "invalid_token", MALFORMED, id="10kb-three-segments"),
        # What a WSGI server hands over for raw UTF-8 bytes: each byte as a latin-1 character.
        pytest.param(
            "Bearer " + "ünïcödé€".encode().decode("latin-1"), "invalid_token", MALFORMED, id="utf8-bytes-token"
        ),
        pytest.param("Bearer \xff\xfe\xfd", "invalid_token", MALFORMED, id="latin1-bytes-token"),
        pytest.param("Bearer ü.ü.ü", "invalid_token", MALFORMED, id="non-ascii-segments"),
        pytest.param("Bearer \x00", "invalid_token", MALFORMED, id="nul-byte"),
    ],
)
def test_malformed_authorization_header_is_401_never_500(client, header, error_code, problem):
    response = client.get("/users/", headers={"Authorization": header})

    assert_unauthorized(response, error_code, problem)


@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "BeArEr"])
def test_bearer_scheme_is_case_insensitive(client, user, scheme):
    response = client.get("/users/", headers={"Authorization": f"{scheme} {user.token}"})

    assert response.status_code == 200
    assert response.get_json()["data"]["id"] == user.id


@pytest.mark.parametrize("junk", ["\xe9", "\xe9\xe9", "!!!!", "~~~~", "\x00\x00\x00\x00"])
def test_valid_token_with_junk_appended_is_401_malformed(client, user, junk):
    response = client.get("/users/", headers=bearer(user.token + junk))

    assert_unauthorized(response, "invalid_token", MALFORMED)


# --- configurable lifetime ---------------------------------------------------------------


class TestConfiguredTokenLifetime:
    @pytest.fixture
    def app_config(self):
        return {"ACCESS_TOKEN_EXPIRES_SECONDS": 60}

    def test_token_expires_the_configured_seconds_after_iat(self, client, auth, user):
        payload = decode(user.token)

        assert payload["exp"] - payload["iat"] == 60
        assert auth.login(user.email).get_json()["data"]["expires_in"] == 60

    def test_token_within_the_configured_lifetime_works(self, client, user):
        assert client.get("/users/", headers=bearer(user.token)).status_code == 200

    def test_token_past_the_configured_lifetime_is_401_expired(self, client, user):
        stale = make_token(user.id, user.sid, iat=_now() - 60 - 30, exp=_now() - 30)

        assert_unauthorized(client.get("/users/", headers=bearer(stale)), "invalid_token", TOKEN_EXPIRED)


class TestConfiguredIssuerAndAudience:
    @pytest.fixture
    def app_config(self):
        return {"JWT_ISSUER": "library.example.org", "JWT_AUDIENCE": "library-api.example.org"}

    def test_tokens_carry_the_configured_issuer_and_audience(self, client, user):
        payload = jwt.decode(
            user.token,
            TEST_SECRET,
            algorithms=["HS256"],
            audience="library-api.example.org",
            issuer="library.example.org",
        )

        assert payload["sub"] == user.id
        assert client.get("/users/", headers=bearer(user.token)).status_code == 200

    @pytest.mark.parametrize(
        "changes, problem",
        [
            pytest.param({"iss": ISSUER}, WRONG_ISSUER, id="default-issuer"),
            pytest.param({"aud": AUDIENCE}, WRONG_AUDIENCE, id="default-audience"),
        ],
    )
    def test_tokens_for_the_default_issuer_or_audience_are_401(self, client, user, changes, problem):
        configured = {"iss": "library.example.org", "aud": "library-api.example.org"}
        token = make_token(user.id, user.sid, **{**configured, **changes})

        assert_unauthorized(client.get("/users/", headers=bearer(token)), "invalid_token", problem)


# --- the secret key (apps built directly) --------------------------------------------------


def build_app(instance, mongo=None, **config):
    """An app as the suite builds them, with its instance folder here and, unless given, no signing key:
    these tests are about where the key comes from."""
    mongo = mongo if mongo is not None else mongomock.MongoClient(tz_aware=True)
    settings = {"SECRET_KEY": OMIT, **config}
    return create_app(config_for_tests(instance.parent, INSTANCE_PATH=str(instance), MONGO_CLIENT=mongo, **settings))


def sign_up_and_log_in(client) -> dict:
    """Sign up a fresh user through the API; the login response's data (with token)."""
    actions = AuthActions(client)
    email = actions.signup(email=f"key-{uuid.uuid4().hex[:8]}@example.com")
    response = actions.login(email)
    assert response.status_code == 200
    return response.get_json()["data"]


def files_under(path) -> list:
    return [p for p in path.rglob("*") if p.is_file()] if path.exists() else []


@pytest.mark.parametrize(
    "key",
    [
        pytest.param("k" * 32, id="32-ascii-bytes"),
        pytest.param("é" * 16, id="32-utf8-bytes"),
        pytest.param(OTHER_SECRET, id="long"),
    ],
)
def test_production_with_a_strong_key_signs_tokens_with_it(tmp_path, clean_env, key):
    app = build_app(tmp_path / "instance", APP_ENV="production", SECRET_KEY=key, PUBLIC_URL="http://localhost")
    client = app.test_client()
    data = sign_up_and_log_in(client)

    assert decode(data["token"], key)["sub"] == data["id"]
    # And an access token the operator signs with that key is accepted.
    crafted = make_token(data["id"], decode(data["token"], key)["sid"], key=key)
    assert client.get("/users/", headers=bearer(crafted)).status_code == 200


def test_secret_key_from_the_environment_is_used(tmp_path, clean_env):
    clean_env.setenv("SECRET_KEY", OTHER_SECRET)
    clean_env.setenv("APP_ENV", "production")
    clean_env.setenv("PUBLIC_URL", "http://localhost")
    app = build_app(tmp_path / "instance")
    client = app.test_client()

    data = sign_up_and_log_in(client)

    assert decode(data["token"], OTHER_SECRET)["sub"] == data["id"]
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
    assert decode(data["token"], key)["sub"] == data["id"]


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

    assert_unauthorized(response, "invalid_token", BAD_SIGNATURE)


def test_secret_key_is_never_logged_printed_or_returned(tmp_path, clean_env, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    instance = tmp_path / "instance"
    app = build_app(instance)
    client = app.test_client()
    bodies = [client.get("/").get_data(as_text=True), client.get("/healthz").get_data(as_text=True)]
    data = sign_up_and_log_in(client)
    sid = jwt.decode(data["token"], options={"verify_signature": False})["sid"]
    for token in (data["token"], make_token(data["id"], sid, key=OTHER_SECRET), "garbage"):
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

    payload = decode(token)
    assert payload["exp"] - payload["iat"] == 90


# --- the database going away ---------------------------------------------------------------


def test_database_down_gives_503_and_the_app_recovers_when_it_is_back(tmp_path, clean_env):
    from secantus import SecantusDBServer  # GPL-2.0: tests and the launcher only

    port = free_port()
    credentials = {"email": "back@example.com", "password": PASSWORD}
    app = create_app(
        config_for_tests(
            tmp_path, DATABASE_URL=f"mongodb://127.0.0.1:{port}/book_library_recovery", DATABASE_TIMEOUT_MS=300
        )
    )
    client = app.test_client()
    try:
        health = client.get("/healthz")
        assert_envelope(health, 503, "The database is unavailable.", "Service Unavailable")

        login = client.post("/users/login", json=credentials)
        assert_envelope(login, 503, "The database is unavailable; try again shortly.", "Service Unavailable")
        assert int(login.headers["Retry-After"]) > 0

        server = SecantusDBServer(storage_path=str(tmp_path / "db"), port=port)
        server.start()
        try:
            # Each request wakes the driver's monitor and waits for it, up to the 300 ms selection
            # timeout; the monitor finds the server within a try or two.
            deadline = time.monotonic() + 10
            health = client.get("/healthz")
            while health.status_code != 200 and time.monotonic() < deadline:
                health = client.get("/healthz")
            assert assert_envelope(health, 200, "ok") == {"database": "up"}

            signup = client.post("/users/", json={"name": "Back Again", **credentials})
            assert signup.status_code == 201, signup.get_json()
            # The unique index was created once the database came back.
            duplicate = client.post("/users/", json={"name": "Back Again", **credentials, "email": "BACK@example.com"})
            assert_envelope(duplicate, 409, "An account with this email already exists.", "Conflict")
            assert client.post("/users/login", json=credentials).status_code == 200
        finally:
            server.stop()
    finally:
        database_state(app).client.close()  # the app's own client; avoids a ResourceWarning
