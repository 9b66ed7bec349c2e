"""Two-factor authentication over HTTP: TOTP enrolment, the two-step login with single-use
tickets, replay protection, recovery codes, the factor for sensitive actions, abuse limits,
auth events and the OpenAPI document.

Codes are computed from the secret the API returns, as an authenticator app would:
`at(secret, k)` is the code k time steps (of 30 s) from now. The server accepts the
current step and one either side and never a step at or before the last one used, so a
test that spent the current code (k=0) spends the next step's code (k=+1) after it.
The clock is stopped for every test here (the `clock` fixture), so no test sees a step
change part-way; an expired ticket is made by signing one with a past expiry or by moving
its database record's expiry into the past.
"""

from __future__ import annotations

import base64
import functools
import io
import json
import re
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import NamedTuple
from urllib.parse import parse_qs, unquote, urlsplit

import jwt
import pyotp
import pytest
from PIL import Image

import helpers
from helpers import (
    ACCESS_TOKEN_SECONDS,
    ENVELOPE_KEYS,
    INVALID_FIELDS,
    JSON_ONLY,
    LOCKED,
    PASSWORD,
    SESSION_ENDED,
    TEST_SECRET,
    WRONG_CREDENTIALS,
    WRONG_PASSWORD,
    assert_429,
    assert_envelope,
    bearer,
    ip,
    limits,
    login,
    protected_operations,
)

STEP_SECONDS = 30
ISSUER = "Book Library"
TICKET_TYPE = "mfa-ticket+jwt"
TICKET_SECONDS = 300
TICKET_ATTEMPTS = 5
RECOVERY_CODE_COUNT = 10
NEW_PASSWORD = "Tr1cky-Gl0ve-Harb0r!"
OTHER_KEY = "another-secret-key-that-is-long-enough-for-hs256"

CHALLENGE_MESSAGE = "Enter the code from your authenticator app."
CODE_NOT_VALID = "The code is not valid."
FACTOR_REQUIRED = "A current authenticator code or an unused recovery code is required."
TICKET_INVALID = "The sign-in ticket is invalid or has expired; log in again."
TICKET_SPENT = "The sign-in ticket was used, expired or had too many wrong codes; log in again."
ALREADY_ON = "Two-factor authentication is already on."
NOT_ON = "Two-factor authentication is not on."
START_FIRST = "Start enrolment with POST /users/mfa/totp first."
MFA_ON = "Two-factor authentication is on. Keep these recovery codes safe."
ENROLMENT_STARTED = "Scan the QR code, then verify a code to turn it on."
NEW_RECOVERY_CODES = "New recovery codes; the old ones no longer work."
NOT_ACCESS_TOKEN = "Token is not an access token."


@pytest.fixture(autouse=True)
def stopped_clock(clock):
    """Codes belong to a 30 s step of the clock; stopped, it cannot cross into the next step mid-test."""
    return clock


class VerifiedAuthActions(helpers.AuthActions):
    """Sign-ups whose address counts as proven, as turning a second factor on needs (the proof
    itself, a mailed link, is tested in test_account_email.py and test_address_ownership.py)."""

    def __init__(self, client, db):
        super().__init__(client)
        self._db = db

    def signup(self, *args, **kwargs):
        email = super().signup(*args, **kwargs)
        self._db.users.update_one({"email": email}, {"$set": {"email_verified": True}})
        return email


@pytest.fixture
def auth(client, db):
    return VerifiedAuthActions(client, db)


# --- helpers ---------------------------------------------------------------------------


def at(secret: str, k: int = 0) -> str:
    """The code an authenticator app shows k time steps from now."""
    return pyotp.TOTP(secret).at(time.time() + STEP_SECONDS * k)


def wrong_code(secret: str) -> str:
    """Six digits that are no code of this secret anywhere near now."""
    near = {at(secret, k) for k in range(-3, 4)}
    return next(code for code in (f"{n:06d}" for n in range(0, 1_000_000, 111_111)) if code not in near)


def ticket_for(client, email, addr=1) -> str:
    """The first step of a login for an account with MFA on: its ticket."""
    data = assert_envelope(login(client, email, addr=addr), 200, CHALLENGE_MESSAGE)
    return data["mfa_ticket"]


def login_mfa(client, ticket, addr=1, **factor):
    return client.post("/users/login/mfa", json={"mfa_ticket": ticket, **factor}, environ_base=ip(addr))


def me(client, headers):
    return client.get("/users/", headers=headers)


def event_types(client, headers) -> list[str]:
    response = client.get("/users/events", headers=headers)
    assert response.status_code == 200, response.get_json()
    return [event["type"] for event in response.get_json()["data"]]


def enrol(client, headers) -> dict:
    return assert_envelope(
        client.post("/users/mfa/totp", json={"password": PASSWORD}, headers=headers), 201, ENROLMENT_STARTED
    )


def verify(client, headers, code):
    return client.post("/users/mfa/totp/verify", json={"code": code}, headers=headers)


# The same token's claims with changes, signed as asked; by default as a ticket with the test key.
reissued = functools.partial(helpers.reissued, typ=TICKET_TYPE)


class MfaUser(NamedTuple):
    """An account with MFA on: verified with the current code (k=0), so k=+1 is the next usable one."""

    email: str
    headers: dict  # an access token from before MFA was turned on; it stays valid
    secret: str
    recovery_codes: list[str]
    used_code: str  # the code that turned MFA on


@pytest.fixture
def mfa_user(client, auth) -> MfaUser:
    email = auth.signup()
    headers = auth.headers(email)
    secret = enrol(client, headers)["secret"]
    code = at(secret, 0)
    data = assert_envelope(verify(client, headers, code), 200, MFA_ON)
    return MfaUser(email, headers, secret, data["recovery_codes"], code)


# --- enrolment ---------------------------------------------------------------------------


def test_enrolment_is_201_with_a_base32_secret_an_otpauth_uri_and_a_png_qr_code(client, auth):
    email = auth.signup()
    headers = auth.headers(email)

    data = enrol(client, headers)

    assert set(data) == {"secret", "otpauth_uri", "qr_code"}
    secret = data["secret"]
    assert re.fullmatch(r"[A-Z2-7]+=*", secret)
    assert len(base64.b32decode(secret)) >= 20  # RFC 4226: at least 128, better 160 bits

    uri = urlsplit(data["otpauth_uri"])
    assert (uri.scheme, uri.netloc) == ("otpauth", "totp")
    assert unquote(uri.path) == f"/{ISSUER}:{email}"
    query = parse_qs(uri.query)
    assert query["secret"] == [secret]
    assert query["issuer"] == [ISSUER]
    parsed = pyotp.parse_uri(data["otpauth_uri"])
    assert (parsed.secret, parsed.name, parsed.issuer) == (secret, email, ISSUER)

    prefix = "data:image/png;base64,"
    assert data["qr_code"].startswith(prefix)
    image = Image.open(io.BytesIO(base64.b64decode(data["qr_code"][len(prefix) :], validate=True)))
    assert image.format == "PNG"
    assert image.width == image.height >= 100


def test_enrolment_gives_each_call_a_new_secret(client, auth):
    headers = auth.headers()

    assert enrol(client, headers)["secret"] != enrol(client, headers)["secret"]


def test_nothing_is_active_after_enrolment_until_a_code_is_verified(client, auth):
    email = auth.signup()
    headers = auth.headers(email)
    enrol(client, headers)

    assert assert_envelope(me(client, headers), 200, "Current user.")["mfa_enabled"] is False
    data = assert_envelope(login(client, email), 200, "Logged in.")
    assert data["token"] and data["refresh_token"]
    assert data["mfa_required"] is False
    response = client.delete("/users/mfa/totp", json={"password": PASSWORD}, headers=headers)
    assert_envelope(response, 409, NOT_ON, "Conflict")


def test_verify_with_the_current_code_turns_mfa_on_and_returns_ten_distinct_recovery_codes(client, auth):
    headers = auth.headers()
    secret = enrol(client, headers)["secret"]

    data = assert_envelope(verify(client, headers, at(secret, 0)), 200, MFA_ON)

    codes = data["recovery_codes"]
    assert len(codes) == RECOVERY_CODE_COUNT
    assert len(set(codes)) == RECOVERY_CODE_COUNT
    assert all(isinstance(code, str) and len(code) >= 10 for code in codes)
    assert assert_envelope(me(client, headers), 200, "Current user.")["mfa_enabled"] is True


def test_verify_with_a_wrong_code_is_400_and_leaves_mfa_off(client, auth):
    headers = auth.headers()
    secret = enrol(client, headers)["secret"]

    assert_envelope(verify(client, headers, wrong_code(secret)), 400, INVALID_FIELDS, {"code": CODE_NOT_VALID})

    assert me(client, headers).get_json()["data"]["mfa_enabled"] is False
    assert "mfa_failed" in event_types(client, headers)


@pytest.mark.parametrize("steps_ago", [2, 3])
def test_verify_with_a_code_from_outside_the_drift_window_is_400(client, auth, steps_ago):
    headers = auth.headers()
    secret = enrol(client, headers)["secret"]

    assert_envelope(verify(client, headers, at(secret, -steps_ago)), 400, INVALID_FIELDS, {"code": CODE_NOT_VALID})


def test_verify_accepts_the_next_steps_code_for_clock_drift(client, auth):
    headers = auth.headers()
    secret = enrol(client, headers)["secret"]

    assert verify(client, headers, at(secret, 1)).status_code == 200


@pytest.mark.parametrize(
    "body, expected",
    [
        ({}, {"code": "This field is required."}),
        ({"code": 123456}, {"code": "Must be a string."}),
        ({"code": None}, {"code": "Must be a string."}),
        ({"code": "abcdef"}, {"code": CODE_NOT_VALID}),
        ({"code": "12345"}, {"code": CODE_NOT_VALID}),
        ({"code": "1234567"}, {"code": CODE_NOT_VALID}),
        ({"code": ""}, {"code": CODE_NOT_VALID}),
    ],
)
def test_verify_with_a_missing_or_malformed_code_is_400(client, auth, body, expected):
    headers = auth.headers()
    enrol(client, headers)

    assert_envelope(client.post("/users/mfa/totp/verify", json=body, headers=headers), 400, INVALID_FIELDS, expected)


def test_verify_with_a_body_that_is_not_json_is_415(client, auth):
    headers = auth.headers()
    enrol(client, headers)

    response = client.post("/users/mfa/totp/verify", data="code=123456", headers=headers)

    assert_envelope(response, 415, JSON_ONLY, "Unsupported Media Type")


@pytest.mark.each_database
def test_only_the_latest_enrolment_secret_can_be_verified(client, auth):
    headers = auth.headers()
    first = enrol(client, headers)["secret"]
    second = enrol(client, headers)["secret"]

    assert_envelope(verify(client, headers, at(first, 0)), 400, INVALID_FIELDS, {"code": CODE_NOT_VALID})
    assert verify(client, headers, at(second, 0)).status_code == 200


def test_verify_without_enrolment_is_409(client, auth):
    headers = auth.headers()

    assert_envelope(verify(client, headers, "123456"), 409, START_FIRST, "Conflict")


def test_verify_when_mfa_is_already_on_is_409(client, mfa_user):
    assert_envelope(verify(client, mfa_user.headers, at(mfa_user.secret, 1)), 409, ALREADY_ON, "Conflict")


def test_enrolling_again_when_mfa_is_on_is_409_and_keeps_the_secret(client, mfa_user):
    response = client.post("/users/mfa/totp", json={"password": PASSWORD}, headers=mfa_user.headers)

    assert_envelope(response, 409, ALREADY_ON, "Conflict")
    ticket = ticket_for(client, mfa_user.email)
    assert login_mfa(client, ticket, code=at(mfa_user.secret, 1)).status_code == 200


# --- the secret and recovery codes at rest, and in what the API says --------------------


def test_the_secret_is_encrypted_at_rest_during_and_after_enrolment(client, auth, db):
    email = auth.signup()
    headers = auth.headers(email)
    secret = enrol(client, headers)["secret"]

    pending = db.users.find_one({"email": email})["mfa"]
    assert set(pending) == {"pending"}
    assert secret not in str(pending)

    verify(client, headers, at(secret, 0))

    stored = db.users.find_one({"email": email})
    assert stored["mfa"]["enabled"] is True
    assert stored["mfa"]["secret"] != secret
    assert secret not in str(stored)
    assert secret.lower() not in str(stored).lower()
    assert base64.b32decode(secret) not in base64.b64decode(stored["mfa"]["secret"])


def test_recovery_codes_are_stored_only_as_hashes(db, mfa_user):
    stored = db.users.find_one({"email": mfa_user.email})
    text = str(stored)

    assert len(stored["mfa"]["recovery"]) == RECOVERY_CODE_COUNT
    for code in mfa_user.recovery_codes:
        assert code not in text
        assert code.replace("-", "") not in text


def test_the_secret_never_appears_in_a_later_response(client, auth):
    email = auth.signup()
    headers = auth.headers(email)
    secret = enrol(client, headers)["secret"]
    texts = [verify(client, headers, at(secret, 0)).get_data(as_text=True)]

    texts.append(client.post("/users/mfa/totp", json={"password": PASSWORD}, headers=headers).get_data(as_text=True))
    texts.append(me(client, headers).get_data(as_text=True))
    password_step = login(client, email)
    texts.append(password_step.get_data(as_text=True))
    second = login_mfa(client, password_step.get_json()["data"]["mfa_ticket"], code=at(secret, 1))
    assert second.status_code == 200
    texts.append(second.get_data(as_text=True))
    new_headers = bearer(second.get_json()["data"]["token"])
    texts.append(client.get("/users/events", headers=new_headers).get_data(as_text=True))
    texts.append(client.get("/users/sessions", headers=new_headers).get_data(as_text=True))

    for text in texts:
        assert secret not in text
        assert secret.lower() not in text.lower()


def test_the_secret_codes_and_tickets_are_never_logged(client, auth, log_lines):
    email = auth.signup()
    headers = auth.headers(email)
    secret = enrol(client, headers)["secret"]
    first_code, second_code = at(secret, 0), at(secret, 1)
    recovery = verify(client, headers, first_code).get_json()["data"]["recovery_codes"]
    ticket = ticket_for(client, email)
    login_mfa(client, ticket, code=wrong_code(secret))
    login_mfa(client, ticket, code=second_code)
    login_mfa(client, ticket_for(client, email), recovery_code=recovery[0])

    text = "\n".join(log_lines)
    assert len(log_lines) >= 6
    for value in (secret, first_code, second_code, ticket, *recovery):
        assert value not in text


# --- login with a second factor ------------------------------------------------------------


def test_login_with_mfa_on_returns_a_ticket_and_no_tokens(client, mfa_user):
    response = login(client, mfa_user.email)

    data = assert_envelope(response, 200, CHALLENGE_MESSAGE)
    assert set(data) == {"mfa_required", "mfa_ticket", "expires_in"}
    assert data["mfa_required"] is True
    assert data["expires_in"] == TICKET_SECONDS
    assert set(response.get_json()) == ENVELOPE_KEYS  # no tokens beside the envelope either
    header = jwt.get_unverified_header(data["mfa_ticket"])
    claims = jwt.decode(data["mfa_ticket"], options={"verify_signature": False})
    assert header["typ"] == TICKET_TYPE
    assert claims["exp"] - claims["iat"] == TICKET_SECONDS


def test_login_with_mfa_on_and_a_wrong_password_is_401_without_a_ticket(client, mfa_user):
    assert_envelope(login(client, mfa_user.email, WRONG_PASSWORD), 401, WRONG_CREDENTIALS, "Unauthorized")


def test_a_ticket_is_not_an_access_token(client, mfa_user):
    ticket = ticket_for(client, mfa_user.email)

    response = me(client, bearer(ticket))

    assert_envelope(response, 401, NOT_ACCESS_TOKEN, "Unauthorized")
    assert response.www_authenticate.parameters["error"] == "invalid_token"


def test_ticket_and_the_next_steps_code_log_in_with_working_tokens(client, mfa_user):
    ticket = ticket_for(client, mfa_user.email)

    data = assert_envelope(login_mfa(client, ticket, code=at(mfa_user.secret, 1)), 200, "Logged in.")

    assert {"id", "name", "email", "mfa_enabled", "token", "token_type", "expires_in", "refresh_token"} <= set(data)
    assert data["email"] == mfa_user.email
    assert data["mfa_enabled"] is True
    assert data["token_type"] == "Bearer"
    assert data["expires_in"] == ACCESS_TOKEN_SECONDS
    assert assert_envelope(me(client, bearer(data["token"])), 200, "Current user.")["email"] == mfa_user.email
    refreshed = client.post("/users/token/refresh", json={"refresh_token": data["refresh_token"]})
    assert assert_envelope(refreshed, 200, "Tokens refreshed.")["token"]


@pytest.mark.each_database
def test_a_ticket_works_once(client, mfa_user):
    ticket = ticket_for(client, mfa_user.email)
    assert login_mfa(client, ticket, code=at(mfa_user.secret, 1)).status_code == 200

    response = login_mfa(client, ticket, recovery_code=mfa_user.recovery_codes[0])

    assert_envelope(response, 401, TICKET_SPENT, "Unauthorized")


@pytest.mark.each_database
def test_a_used_code_is_refused_with_a_new_ticket(client, mfa_user):
    code = at(mfa_user.secret, 1)
    assert login_mfa(client, ticket_for(client, mfa_user.email), code=code).status_code == 200

    response = login_mfa(client, ticket_for(client, mfa_user.email), code=code)

    assert_envelope(response, 401, CODE_NOT_VALID, "Unauthorized")


@pytest.mark.each_database
def test_the_code_used_to_turn_mfa_on_cannot_log_in(client, mfa_user):
    response = login_mfa(client, ticket_for(client, mfa_user.email), code=mfa_user.used_code)

    assert_envelope(response, 401, CODE_NOT_VALID, "Unauthorized")


@pytest.mark.each_database
@pytest.mark.parametrize("steps_ago", [2, 3])
def test_a_code_from_steps_ago_is_401_even_when_no_later_code_was_used(client, db, mfa_user, steps_ago):
    # Forget the step spent at verification, so only the time window can refuse the code.
    db.users.update_one({"email": mfa_user.email}, {"$set": {"mfa.last_step": 0}})

    response = login_mfa(client, ticket_for(client, mfa_user.email), code=at(mfa_user.secret, -steps_ago))

    assert_envelope(response, 401, CODE_NOT_VALID, "Unauthorized")


def test_a_code_from_three_steps_ago_is_401(client, mfa_user):
    response = login_mfa(client, ticket_for(client, mfa_user.email), code=at(mfa_user.secret, -3))

    assert_envelope(response, 401, CODE_NOT_VALID, "Unauthorized")


def test_a_code_from_the_next_step_is_accepted_for_clock_drift(client, mfa_user):
    response = login_mfa(client, ticket_for(client, mfa_user.email), code=at(mfa_user.secret, 1))

    assert_envelope(response, 200, "Logged in.")


@pytest.mark.each_database
def test_wrong_codes_kill_the_ticket_after_five_tries_and_a_new_login_still_works(client, mfa_user):
    ticket = ticket_for(client, mfa_user.email)
    for _ in range(TICKET_ATTEMPTS):
        response = login_mfa(client, ticket, code=wrong_code(mfa_user.secret))
        assert_envelope(response, 401, CODE_NOT_VALID, "Unauthorized")

    good = at(mfa_user.secret, 1)
    assert_envelope(login_mfa(client, ticket, code=good), 401, TICKET_SPENT, "Unauthorized")
    response = login_mfa(client, ticket, recovery_code=mfa_user.recovery_codes[0])
    assert_envelope(response, 401, TICKET_SPENT, "Unauthorized")

    # Five wrong codes also count against the account from this address (threshold 5)...
    assert_envelope(login(client, mfa_user.email), 429, LOCKED, "Too Many Requests")
    # ...but not from another one, and the dead ticket did not spend the good code.
    fresh = ticket_for(client, mfa_user.email, addr=2)
    assert_envelope(login_mfa(client, fresh, addr=2, code=good), 200, "Logged in.")


@pytest.mark.each_database
def test_a_wrong_code_counts_against_the_ticket_in_the_database(client, db, mfa_user):
    ticket = ticket_for(client, mfa_user.email)
    jti = jwt.decode(ticket, options={"verify_signature": False})["jti"]

    login_mfa(client, ticket, code=wrong_code(mfa_user.secret))
    login_mfa(client, ticket, code=wrong_code(mfa_user.secret))

    assert db.mfa_tickets.find_one({"_id": jti})["attempts"] == 2


def test_a_ticket_past_its_expiry_is_401(client, mfa_user):
    ticket = ticket_for(client, mfa_user.email)
    now = int(time.time())
    expired = reissued(ticket, iat=now - TICKET_SECONDS - 60, exp=now - 60)

    response = login_mfa(client, expired, code=at(mfa_user.secret, 1))

    assert_envelope(response, 401, TICKET_INVALID, "Unauthorized")


@pytest.mark.each_database
def test_a_ticket_whose_record_has_expired_is_401_and_the_code_is_not_spent(client, db, mfa_user):
    ticket = ticket_for(client, mfa_user.email)
    jti = jwt.decode(ticket, options={"verify_signature": False})["jti"]
    db.mfa_tickets.update_one({"_id": jti}, {"$set": {"expires_at": datetime.now(UTC) - timedelta(seconds=1)}})
    code = at(mfa_user.secret, 1)

    assert_envelope(login_mfa(client, ticket, code=code), 401, TICKET_SPENT, "Unauthorized")
    assert login_mfa(client, ticket_for(client, mfa_user.email), code=code).status_code == 200


def tampered(token: str) -> str:
    """The token with the first character of its signature changed (all six of its bits count)."""
    head, _, signature = token.rpartition(".")
    return f"{head}.{'B' if signature[0] == 'A' else 'A'}{signature[1:]}"


FORGED_TICKETS = {
    "signed with another key": lambda ticket, token: reissued(ticket, key=OTHER_KEY),
    "an access token": lambda ticket, token: token,
    "a ticket typed as an access token": lambda ticket, token: reissued(ticket, typ="at+jwt"),
    "a ticket without a type": lambda ticket, token: reissued(ticket, typ="JWT"),
    "for another audience": lambda ticket, token: reissued(ticket, aud="someone-else"),
    "from another issuer": lambda ticket, token: reissued(ticket, iss="someone-else"),
    "with alg none": lambda ticket, token: reissued(ticket, key=None, algorithm="none"),
    "with a tampered signature": lambda ticket, token: tampered(ticket),
    "without a jti": lambda ticket, token: jwt.encode(
        {k: v for k, v in jwt.decode(ticket, options={"verify_signature": False}).items() if k != "jti"},
        TEST_SECRET,
        algorithm="HS256",
        headers={"typ": TICKET_TYPE},
    ),
    "not a JWT": lambda ticket, token: "not-a-ticket",
    "empty": lambda ticket, token: "",
}


@pytest.mark.parametrize("forge", FORGED_TICKETS.values(), ids=FORGED_TICKETS.keys())
def test_a_forged_or_wrong_kind_of_ticket_is_401(client, mfa_user, forge):
    ticket = ticket_for(client, mfa_user.email)
    access_token = mfa_user.headers["Authorization"].split()[1]

    response = login_mfa(client, forge(ticket, access_token), code=at(mfa_user.secret, 1))

    assert_envelope(response, 401, TICKET_INVALID, "Unauthorized")
    # The genuine ticket and the code are still good.
    assert login_mfa(client, ticket, code=at(mfa_user.secret, 1)).status_code == 200


@pytest.mark.each_database
@pytest.mark.parametrize("kind", ["a new jti", "an access token's claims"])
def test_a_genuinely_signed_ticket_that_was_never_issued_is_401(client, mfa_user, kind):
    ticket = ticket_for(client, mfa_user.email)
    access_token = mfa_user.headers["Authorization"].split()[1]
    forged = reissued(ticket, jti=uuid.uuid4().hex) if kind == "a new jti" else reissued(access_token)

    response = login_mfa(client, forged, code=at(mfa_user.secret, 1))

    assert_envelope(response, 401, TICKET_SPENT, "Unauthorized")


def test_a_ticket_issued_before_mfa_was_turned_off_is_401(client, mfa_user):
    ticket = ticket_for(client, mfa_user.email)
    body = {"password": PASSWORD, "recovery_code": mfa_user.recovery_codes[0]}
    assert client.delete("/users/mfa/totp", json=body, headers=mfa_user.headers).status_code == 204

    response = login_mfa(client, ticket, recovery_code=mfa_user.recovery_codes[1])

    assert_envelope(response, 401, TICKET_INVALID, "Unauthorized")


def test_a_ticket_of_a_disabled_account_is_401(client, mfa_user):
    ticket = ticket_for(client, mfa_user.email)
    body = {"password": PASSWORD, "recovery_code": mfa_user.recovery_codes[0]}
    disabled = client.delete("/users/", json=body, headers=mfa_user.headers)
    assert disabled.status_code == 204

    response = login_mfa(client, ticket, code=at(mfa_user.secret, 1))

    assert_envelope(response, 401, TICKET_INVALID, "Unauthorized")


def test_missing_code_and_recovery_code_is_400_and_spends_no_try(client, db, mfa_user):
    ticket = ticket_for(client, mfa_user.email)
    jti = jwt.decode(ticket, options={"verify_signature": False})["jti"]

    response = client.post("/users/login/mfa", json={"mfa_ticket": ticket})

    expected = {"code": "Send the code from your authenticator app, or a recovery_code."}
    assert_envelope(response, 400, INVALID_FIELDS, expected)
    assert db.mfa_tickets.find_one({"_id": jti})["attempts"] == 0
    assert login_mfa(client, ticket, code=at(mfa_user.secret, 1)).status_code == 200


def test_a_wrong_code_beside_a_valid_recovery_code_is_401_and_spends_neither(client, mfa_user):
    ticket = ticket_for(client, mfa_user.email)
    recovery = mfa_user.recovery_codes[0]

    response = login_mfa(client, ticket, code=wrong_code(mfa_user.secret), recovery_code=recovery)

    assert_envelope(response, 401, CODE_NOT_VALID, "Unauthorized")
    assert login_mfa(client, ticket, recovery_code=recovery).status_code == 200


@pytest.mark.parametrize(
    "body, expected",
    [
        ({}, {"mfa_ticket": "This field is required."}),
        ({"code": "123456"}, {"mfa_ticket": "This field is required."}),
        ({"mfa_ticket": 42, "code": "123456"}, {"mfa_ticket": "Must be a string."}),
        ({"mfa_ticket": "x" * 4097, "code": "123456"}, {"mfa_ticket": "Must be at most 4096 characters."}),
        ({"mfa_ticket": "t", "code": 123456}, {"code": "Must be a string."}),
        ({"mfa_ticket": "t", "recovery_code": ["a"]}, {"recovery_code": "Must be a string."}),
        ({"mfa_ticket": "t", "recovery_code": "r" * 65}, {"recovery_code": "Must be at most 64 characters."}),
    ],
)
def test_login_mfa_with_a_missing_or_mistyped_field_is_400(client, body, expected):
    assert_envelope(client.post("/users/login/mfa", json=body), 400, INVALID_FIELDS, expected)


@pytest.mark.parametrize(
    "body, message",
    [
        ("[]", "Request body must be a JSON object."),
        ('"ticket"', "Request body must be a JSON object."),
        ("{not json", "Request body is not valid JSON."),
    ],
)
def test_login_mfa_with_a_body_that_is_not_a_json_object_is_400(client, body, message):
    response = client.post("/users/login/mfa", data=body, content_type="application/json")

    assert_envelope(response, 400, INVALID_FIELDS, {"body": message})


def test_login_mfa_with_a_form_body_is_415(client):
    response = client.post("/users/login/mfa", data={"mfa_ticket": "t", "code": "123456"})

    assert_envelope(response, 415, JSON_ONLY, "Unsupported Media Type")


# --- recovery codes --------------------------------------------------------------------------


@pytest.mark.each_database
def test_a_recovery_code_logs_in_once_and_the_others_still_work(client, mfa_user):
    first, second = mfa_user.recovery_codes[:2]

    response = login_mfa(client, ticket_for(client, mfa_user.email), recovery_code=first)
    data = assert_envelope(response, 200, "Logged in.")
    assert me(client, bearer(data["token"])).status_code == 200

    again = login_mfa(client, ticket_for(client, mfa_user.email), recovery_code=first)
    assert_envelope(again, 401, CODE_NOT_VALID, "Unauthorized")
    assert login_mfa(client, ticket_for(client, mfa_user.email), recovery_code=second).status_code == 200


def test_a_recovery_code_is_accepted_whatever_its_case_and_surrounding_spaces(client, mfa_user):
    typed = f"  {mfa_user.recovery_codes[0].upper()} "

    response = login_mfa(client, ticket_for(client, mfa_user.email), recovery_code=typed)

    assert_envelope(response, 200, "Logged in.")


def test_a_made_up_recovery_code_is_401(client, mfa_user):
    response = login_mfa(client, ticket_for(client, mfa_user.email), recovery_code="abcdef-123456")

    assert_envelope(response, 401, CODE_NOT_VALID, "Unauthorized")


@pytest.mark.each_database
def test_another_users_recovery_code_is_401(client, auth, mfa_user):
    other_headers = auth.headers()
    other_secret = enrol(client, other_headers)["secret"]
    other_codes = verify(client, other_headers, at(other_secret, 0)).get_json()["data"]["recovery_codes"]

    response = login_mfa(client, ticket_for(client, mfa_user.email), recovery_code=other_codes[0])

    assert_envelope(response, 401, CODE_NOT_VALID, "Unauthorized")


@pytest.mark.each_database
def test_new_recovery_codes_replace_the_old_set(client, mfa_user):
    response = client.post("/users/mfa/recovery-codes", json={"code": at(mfa_user.secret, 1)}, headers=mfa_user.headers)

    new_codes = assert_envelope(response, 200, NEW_RECOVERY_CODES)["recovery_codes"]
    assert len(new_codes) == len(set(new_codes)) == RECOVERY_CODE_COUNT
    assert not set(new_codes) & set(mfa_user.recovery_codes)
    old = login_mfa(client, ticket_for(client, mfa_user.email), recovery_code=mfa_user.recovery_codes[0])
    assert_envelope(old, 401, CODE_NOT_VALID, "Unauthorized")
    assert login_mfa(client, ticket_for(client, mfa_user.email), recovery_code=new_codes[0]).status_code == 200
    assert "mfa_recovery_codes_replaced" in event_types(client, mfa_user.headers)


def test_new_recovery_codes_can_be_had_with_a_recovery_code(client, mfa_user):
    response = client.post(
        "/users/mfa/recovery-codes", json={"recovery_code": mfa_user.recovery_codes[0]}, headers=mfa_user.headers
    )

    assert len(assert_envelope(response, 200, NEW_RECOVERY_CODES)["recovery_codes"]) == 10


@pytest.mark.parametrize("factor", ["none", "wrong code", "used code", "made-up recovery code"])
def test_new_recovery_codes_without_a_valid_factor_are_400_and_the_old_set_stays(client, mfa_user, factor):
    body = {
        "none": {},
        "wrong code": {"code": wrong_code(mfa_user.secret)},
        "used code": {"code": mfa_user.used_code},
        "made-up recovery code": {"recovery_code": "abcdef-123456"},
    }[factor]

    response = client.post("/users/mfa/recovery-codes", json=body, headers=mfa_user.headers)

    assert_envelope(response, 400, INVALID_FIELDS, {"code": FACTOR_REQUIRED})
    ticket = ticket_for(client, mfa_user.email)
    assert login_mfa(client, ticket, recovery_code=mfa_user.recovery_codes[0]).status_code == 200


def test_new_recovery_codes_when_mfa_is_off_is_409(client, auth):
    response = client.post("/users/mfa/recovery-codes", json={"code": "123456"}, headers=auth.headers())

    assert_envelope(response, 409, NOT_ON, "Conflict")


# --- sensitive actions -------------------------------------------------------------------------


def password_change(client, headers, **factor):
    body = {"current_password": PASSWORD, "new_password": NEW_PASSWORD, **factor}
    return client.put("/users/password", json=body, headers=headers)


def test_password_change_with_mfa_on_and_no_code_is_400_and_changes_nothing(client, mfa_user):
    assert_envelope(password_change(client, mfa_user.headers), 400, INVALID_FIELDS, {"code": FACTOR_REQUIRED})

    assert_envelope(login(client, mfa_user.email), 200, CHALLENGE_MESSAGE)
    assert_envelope(login(client, mfa_user.email, NEW_PASSWORD), 401, WRONG_CREDENTIALS, "Unauthorized")


def test_password_change_with_mfa_on_and_a_wrong_code_is_400(client, mfa_user):
    response = password_change(client, mfa_user.headers, code=wrong_code(mfa_user.secret))

    assert_envelope(response, 400, INVALID_FIELDS, {"code": FACTOR_REQUIRED})
    assert "mfa_failed" in event_types(client, mfa_user.headers)


def test_password_change_with_mfa_on_and_a_valid_code_is_200(client, mfa_user):
    response = password_change(client, mfa_user.headers, code=at(mfa_user.secret, 1))

    data = assert_envelope(response, 200, "Password changed.")
    assert data["token"] and data["refresh_token"]
    assert_envelope(login(client, mfa_user.email, NEW_PASSWORD), 200, CHALLENGE_MESSAGE)


@pytest.mark.each_database
def test_password_change_with_a_wrong_current_password_does_not_spend_the_code(client, mfa_user):
    code = at(mfa_user.secret, 1)
    body = {"current_password": WRONG_PASSWORD, "new_password": NEW_PASSWORD, "code": code}

    response = client.put("/users/password", json=body, headers=mfa_user.headers)

    assert_envelope(response, 400, INVALID_FIELDS, {"current_password": "Current password is incorrect."})
    assert password_change(client, mfa_user.headers, code=code).status_code == 200


def test_password_change_without_mfa_needs_no_code(client, auth):
    assert_envelope(password_change(client, auth.headers()), 200, "Password changed.")


def test_disable_account_with_mfa_on_and_no_code_is_400_and_the_account_stays(client, mfa_user):
    response = client.delete("/users/", json={"password": PASSWORD}, headers=mfa_user.headers)

    assert_envelope(response, 400, INVALID_FIELDS, {"code": FACTOR_REQUIRED})
    assert me(client, mfa_user.headers).status_code == 200


def test_disable_account_with_mfa_on_and_no_body_is_400_asking_for_the_password_first(client, mfa_user):
    response = client.delete("/users/", headers=mfa_user.headers)

    assert_envelope(response, 400, INVALID_FIELDS, {"password": "This field is required."})
    assert me(client, mfa_user.headers).status_code == 200


def test_disable_account_with_mfa_on_and_a_wrong_code_is_400(client, mfa_user):
    body = {"password": PASSWORD, "code": wrong_code(mfa_user.secret)}
    response = client.delete("/users/", json=body, headers=mfa_user.headers)

    assert_envelope(response, 400, INVALID_FIELDS, {"code": FACTOR_REQUIRED})
    assert me(client, mfa_user.headers).status_code == 200


def test_disable_account_with_a_recovery_code_is_204_and_the_account_is_gone(client, mfa_user):
    body = {"password": PASSWORD, "recovery_code": mfa_user.recovery_codes[0]}
    response = client.delete("/users/", json=body, headers=mfa_user.headers)

    assert response.status_code == 204
    assert_envelope(login(client, mfa_user.email), 401, WRONG_CREDENTIALS, "Unauthorized")
    assert_envelope(me(client, mfa_user.headers), 401, SESSION_ENDED, "Unauthorized")


def test_disable_account_with_a_valid_code_is_204(client, mfa_user):
    body = {"password": PASSWORD, "code": at(mfa_user.secret, 1)}
    response = client.delete("/users/", json=body, headers=mfa_user.headers)

    assert response.status_code == 204


def disable_mfa(client, headers, **body):
    return client.delete("/users/mfa/totp", json=body, headers=headers)


@pytest.mark.each_database
def test_disable_mfa_with_a_wrong_password_is_400_and_does_not_spend_the_code(client, mfa_user):
    code = at(mfa_user.secret, 1)

    response = disable_mfa(client, mfa_user.headers, password=WRONG_PASSWORD, code=code)

    assert_envelope(response, 400, INVALID_FIELDS, {"password": "Password is incorrect."})
    assert me(client, mfa_user.headers).get_json()["data"]["mfa_enabled"] is True
    assert disable_mfa(client, mfa_user.headers, password=PASSWORD, code=code).status_code == 204


@pytest.mark.parametrize(
    "body, expected",
    [
        ({}, {"password": "This field is required."}),
        ({"code": "123456"}, {"password": "This field is required."}),
        ({"password": 42}, {"password": "Must be a string."}),
        ({"password": PASSWORD}, {"code": FACTOR_REQUIRED}),
        ({"password": PASSWORD, "code": "abcdef"}, {"code": FACTOR_REQUIRED}),
        ({"password": PASSWORD, "recovery_code": "abcdef-123456"}, {"code": FACTOR_REQUIRED}),
        ({"password": PASSWORD, "code": 123456}, {"code": "Must be a string."}),
    ],
)
def test_disable_mfa_without_a_password_or_a_factor_is_400_and_mfa_stays_on(client, mfa_user, body, expected):
    assert_envelope(disable_mfa(client, mfa_user.headers, **body), 400, INVALID_FIELDS, expected)

    assert me(client, mfa_user.headers).get_json()["data"]["mfa_enabled"] is True


def test_disable_mfa_with_password_and_code_is_204_and_login_returns_tokens_again(client, db, mfa_user):
    response = disable_mfa(client, mfa_user.headers, password=PASSWORD, code=at(mfa_user.secret, 1))

    assert response.status_code == 204
    assert response.get_data() == b""
    assert me(client, mfa_user.headers).get_json()["data"]["mfa_enabled"] is False
    data = assert_envelope(login(client, mfa_user.email), 200, "Logged in.")
    assert data["token"] and data["refresh_token"] and "mfa_ticket" not in data
    stored = db.users.find_one({"email": mfa_user.email})["mfa"]
    assert "secret" not in stored and "recovery" not in stored


def test_disable_mfa_with_password_and_recovery_code_is_204(client, mfa_user):
    response = disable_mfa(client, mfa_user.headers, password=PASSWORD, recovery_code=mfa_user.recovery_codes[3])

    assert response.status_code == 204


def test_disable_mfa_when_it_is_off_is_409(client, auth):
    assert_envelope(disable_mfa(client, auth.headers(), password=PASSWORD), 409, NOT_ON, "Conflict")


@pytest.mark.each_database
def test_mfa_can_be_turned_on_again_with_a_new_secret_after_disabling(client, mfa_user):
    assert disable_mfa(client, mfa_user.headers, password=PASSWORD, code=at(mfa_user.secret, 1)).status_code == 204

    secret = enrol(client, mfa_user.headers)["secret"]
    assert secret != mfa_user.secret
    codes = verify(client, mfa_user.headers, at(secret, 0)).get_json()["data"]["recovery_codes"]

    old = login_mfa(client, ticket_for(client, mfa_user.email), recovery_code=mfa_user.recovery_codes[0])
    assert_envelope(old, 401, CODE_NOT_VALID, "Unauthorized")
    assert login_mfa(client, ticket_for(client, mfa_user.email), code=at(secret, 1)).status_code == 200
    assert login_mfa(client, ticket_for(client, mfa_user.email), recovery_code=codes[0]).status_code == 200


# --- auth events -------------------------------------------------------------------------------


@pytest.mark.each_database
def test_events_record_enrolment_activation_challenge_failure_recovery_use_and_disabling(client, auth):
    email = auth.signup()
    headers = auth.headers(email)
    secret = enrol(client, headers)["secret"]
    assert_envelope(verify(client, headers, wrong_code(secret)), 400, INVALID_FIELDS, {"code": CODE_NOT_VALID})
    recovery = verify(client, headers, at(secret, 0)).get_json()["data"]["recovery_codes"]
    ticket = ticket_for(client, email)
    login_mfa(client, ticket, code=wrong_code(secret))
    assert login_mfa(client, ticket, recovery_code=recovery[0]).status_code == 200
    assert disable_mfa(client, headers, password=PASSWORD, code=at(secret, 1)).status_code == 204

    response = client.get("/users/events", headers=headers)
    events = response.get_json()["data"]

    assert [event["type"] for event in events] == [
        "mfa_disabled",
        "login",
        "mfa_recovery_code_used",
        "mfa_failed",
        "mfa_challenge",
        "mfa_enabled",
        "mfa_failed",
        "mfa_enrollment_started",
        "login",
        "signup",
    ]
    assert events[1]["detail"] == {"mfa": True}
    assert events[3]["detail"] == {"step": "login"}
    assert events[6]["detail"] == {"step": "enrolment"}
    text = response.get_data(as_text=True)
    for value in (secret, ticket, *recovery):
        assert value not in text


@pytest.mark.parametrize(
    "action, step",
    [
        ("recovery_codes", "recovery_codes"),
        ("password", "password_change"),
        ("account", "disable_account"),
        ("mfa", "disable"),
    ],
)
def test_a_wrong_factor_at_a_sensitive_action_is_recorded_as_mfa_failed(client, mfa_user, action, step):
    bad = {"code": wrong_code(mfa_user.secret)}
    if action == "recovery_codes":
        client.post("/users/mfa/recovery-codes", json=bad, headers=mfa_user.headers)
    elif action == "password":
        password_change(client, mfa_user.headers, **bad)
    elif action == "account":
        client.delete("/users/", json={"password": PASSWORD, **bad}, headers=mfa_user.headers)
    else:
        disable_mfa(client, mfa_user.headers, password=PASSWORD, **bad)

    events = client.get("/users/events", headers=mfa_user.headers).get_json()["data"]

    assert events[0]["type"] == "mfa_failed"
    assert events[0]["detail"] == {"step": step}


# --- step-up: the password in the request itself ----------------------------------------------


def test_starting_enrolment_without_the_password_is_400_naming_it_and_changes_nothing(client, auth, db):
    email = auth.signup()
    headers = auth.headers(email)

    for response in (
        client.post("/users/mfa/totp", headers=headers),
        client.post("/users/mfa/totp", json={}, headers=headers),
    ):
        assert_envelope(response, 400, INVALID_FIELDS, {"password": "This field is required."})

    assert "mfa" not in db.users.find_one({"email": email})


def test_starting_enrolment_with_a_wrong_password_is_401_as_at_login_and_recorded(client, auth, db):
    """A stolen access token must not switch on two-factor with the thief's authenticator."""
    email = auth.signup()
    headers = auth.headers(email)

    response = client.post("/users/mfa/totp", json={"password": WRONG_PASSWORD}, headers=headers)

    assert_envelope(response, 401, WRONG_CREDENTIALS, "Unauthorized")
    assert "WWW-Authenticate" not in response.headers  # the token is fine; the password is not
    assert "mfa" not in db.users.find_one({"email": email})
    assert event_types(client, headers)[0] == "password_check_failed"
    assert me(client, headers).status_code == 200


def test_disabling_the_account_without_the_password_is_400_naming_it(client, auth):
    headers = auth.headers()

    for response in (client.delete("/users/", headers=headers), client.delete("/users/", json={}, headers=headers)):
        assert_envelope(response, 400, INVALID_FIELDS, {"password": "This field is required."})

    assert me(client, headers).status_code == 200


def test_disabling_the_account_with_a_wrong_password_is_401_and_the_account_stays(client, auth):
    email = auth.signup()
    headers = auth.headers(email)

    response = client.delete("/users/", json={"password": WRONG_PASSWORD}, headers=headers)

    assert_envelope(response, 401, WRONG_CREDENTIALS, "Unauthorized")
    assert me(client, headers).status_code == 200
    assert login(client, email).status_code == 200


def test_disabling_an_account_with_mfa_needs_the_password_as_well_as_the_code(client, mfa_user):
    code = at(mfa_user.secret, 1)

    response = client.delete("/users/", json={"code": code}, headers=mfa_user.headers)

    assert_envelope(response, 400, INVALID_FIELDS, {"password": "This field is required."})
    wrong = client.delete("/users/", json={"password": WRONG_PASSWORD, "code": code}, headers=mfa_user.headers)
    assert_envelope(wrong, 401, WRONG_CREDENTIALS, "Unauthorized")
    # Neither attempt spent the code.
    right = client.delete("/users/", json={"password": PASSWORD, "code": code}, headers=mfa_user.headers)
    assert right.status_code == 204


class TestWrongStepUpPasswordsCountTowardsTheLockOut:
    @pytest.fixture
    def app_config(self):
        return {"LOGIN_LOCKOUT_THRESHOLD": 3}

    @pytest.mark.parametrize("method, path", [("post", "/users/mfa/totp"), ("delete", "/users/")])
    def test_three_wrong_passwords_lock_the_action_and_logins_from_that_ip(self, client, auth, method, path):
        email = auth.signup()
        headers = auth.headers(email)
        send = getattr(client, method)
        for _ in range(3):
            response = send(path, json={"password": WRONG_PASSWORD}, headers=headers, environ_base=ip(1))
            assert_envelope(response, 401, WRONG_CREDENTIALS, "Unauthorized")

        assert_429(send(path, json={"password": PASSWORD}, headers=headers, environ_base=ip(1)), LOCKED)
        assert_429(login(client, email, addr=1), LOCKED)
        assert login(client, email, addr=2).status_code == 200
        assert me(client, headers).status_code == 200


class TestStepUpPasswordsAreLimitedPerAccount:
    """A stolen token guessing the password from many addresses meets the per-account limit."""

    @pytest.fixture
    def app_config(self):
        return limits(PASSWORD_ACCOUNT_RATE_LIMIT="3 per 15 minutes")

    @pytest.mark.parametrize("method, path", [("post", "/users/mfa/totp"), ("delete", "/users/")])
    def test_the_fourth_password_check_from_a_fourth_ip_is_429(self, client, auth, method, path):
        email = auth.signup()
        headers = auth.headers(email)
        send = getattr(client, method)
        for n in range(3):
            response = send(path, json={"password": WRONG_PASSWORD}, headers=headers, environ_base=ip(n + 1))
            assert_envelope(response, 401, WRONG_CREDENTIALS, "Unauthorized")

        assert_429(send(path, json={"password": PASSWORD}, headers=headers, environ_base=ip(4)))


# --- codes in other scripts' digits ------------------------------------------------------------

# Unicode calls these digits (str.isdigit, regex \d); an authenticator code is ASCII only.
NON_ASCII_CODES = [
    pytest.param("\u0661\u0662\u0663\u0664\u0665\u0666", id="arabic-indic"),
    pytest.param("\uff11\uff12\uff13\uff14\uff15\uff16", id="full-width"),
    pytest.param("\u0967\u0968\u0969\u096a\u096b\u096c", id="devanagari"),
    pytest.param("12345\u0666", id="one-arabic-indic-digit"),
]


@pytest.mark.parametrize("code", NON_ASCII_CODES)
def test_login_with_non_ascii_digits_is_a_wrong_code_that_counts_as_a_try(client, db, mfa_user, code):
    ticket = ticket_for(client, mfa_user.email)
    jti = jwt.decode(ticket, options={"verify_signature": False})["jti"]

    assert_envelope(login_mfa(client, ticket, code=code), 401, CODE_NOT_VALID, "Unauthorized")

    assert db.mfa_tickets.find_one({"_id": jti})["attempts"] == 1
    assert_envelope(login_mfa(client, ticket, code=at(mfa_user.secret, 1)), 200, "Logged in.")


@pytest.mark.parametrize("code", NON_ASCII_CODES)
@pytest.mark.parametrize(
    "method, path", [("delete", "/users/mfa/totp"), ("post", "/users/mfa/recovery-codes"), ("delete", "/users/")]
)
def test_sensitive_action_with_non_ascii_digits_is_400_asking_for_the_factor(client, mfa_user, method, path, code):
    response = getattr(client, method)(path, json={"password": PASSWORD, "code": code}, headers=mfa_user.headers)

    assert_envelope(response, 400, INVALID_FIELDS, {"code": FACTOR_REQUIRED})
    assert me(client, mfa_user.headers).get_json()["data"]["mfa_enabled"] is True


@pytest.mark.parametrize("code", NON_ASCII_CODES)
def test_enrolment_with_non_ascii_digits_is_400(client, auth, code):
    headers = auth.headers()
    enrol(client, headers)

    assert_envelope(verify(client, headers, code), 400, INVALID_FIELDS, {"code": CODE_NOT_VALID})


class TestNonAsciiDigitsCountTowardsTheLockOut:
    @pytest.fixture
    def app_config(self):
        return {"LOGIN_LOCKOUT_THRESHOLD": 3}

    def test_three_codes_in_arabic_indic_digits_at_a_sensitive_action_lock_it(self, client, mfa_user):
        body = {"code": "\u0661\u0662\u0663\u0664\u0665\u0666"}
        for _ in range(3):
            response = client.post("/users/mfa/recovery-codes", json=body, headers=mfa_user.headers)
            assert_envelope(response, 400, INVALID_FIELDS, {"code": FACTOR_REQUIRED})

        response = client.post(
            "/users/mfa/recovery-codes", json={"code": at(mfa_user.secret, 1)}, headers=mfa_user.headers
        )

        assert_429(response, LOCKED)


# --- abuse limits ------------------------------------------------------------------------------


class TestLoginMfaRateLimitPerIp:
    @pytest.fixture
    def app_config(self):
        return limits(LOGIN_RATE_LIMIT="3 per minute")

    def test_fourth_second_step_from_one_ip_is_429_even_with_a_good_code(self, client, mfa_user):
        ticket = ticket_for(client, mfa_user.email, addr=9)  # the password step from elsewhere
        for _ in range(3):
            response = login_mfa(client, ticket, addr=1, code=wrong_code(mfa_user.secret))
            assert_envelope(response, 401, CODE_NOT_VALID, "Unauthorized")

        assert_429(login_mfa(client, ticket, addr=1, code=at(mfa_user.secret, 1)))

        assert_envelope(login_mfa(client, ticket, addr=2, code=at(mfa_user.secret, 1)), 200, "Logged in.")

    def test_second_steps_with_bogus_tickets_count_against_the_ip_limit_too(self, client):
        for _ in range(3):
            assert_envelope(login_mfa(client, "bogus", code="123456"), 401, TICKET_INVALID, "Unauthorized")

        assert_429(login_mfa(client, "bogus", code="123456"))


class TestLoginMfaRateLimitPerAccount:
    @pytest.fixture
    def app_config(self):
        return limits(LOGIN_ACCOUNT_RATE_LIMIT="3 per minute")

    def test_password_and_code_tries_share_the_accounts_allowance_across_ips(self, client, mfa_user):
        ticket = ticket_for(client, mfa_user.email, addr=1)
        login_mfa(client, ticket, addr=2, code=wrong_code(mfa_user.secret))
        login_mfa(client, ticket, addr=3, code=wrong_code(mfa_user.secret))

        assert_429(login_mfa(client, ticket, addr=4, code=at(mfa_user.secret, 1)))


@pytest.mark.each_database
class TestWrongCodesCountAgainstTheAccount:
    @pytest.fixture
    def app_config(self):
        return {"LOGIN_LOCKOUT_THRESHOLD": 3}

    def test_three_wrong_codes_lock_password_logins_from_that_ip(self, client, mfa_user):
        ticket = ticket_for(client, mfa_user.email, addr=1)
        for _ in range(3):
            response = login_mfa(client, ticket, addr=1, code=wrong_code(mfa_user.secret))
            assert_envelope(response, 401, CODE_NOT_VALID, "Unauthorized")

        response = login(client, mfa_user.email, addr=1)

        assert_429(response, LOCKED)
        failed = client.get("/users/events", headers=mfa_user.headers, query_string={"failed_logins": "only"})
        assert "login_locked" in [event["type"] for event in failed.get_json()["data"]]
        assert_envelope(login(client, mfa_user.email, addr=2), 200, CHALLENGE_MESSAGE)

    def test_the_lock_out_also_stops_codes_on_a_ticket_already_held(self, client, mfa_user):
        # Three wrong codes lock the account from this address; the ticket's own limit (5)
        # must not allow more guesses past the lock-out.
        ticket = ticket_for(client, mfa_user.email, addr=1)
        for _ in range(3):
            login_mfa(client, ticket, addr=1, code=wrong_code(mfa_user.secret))

        response = login_mfa(client, ticket, addr=1, code=at(mfa_user.secret, 1))

        assert_429(response, LOCKED)

    def test_a_correct_password_does_not_wipe_the_count_of_wrong_codes(self, client, mfa_user):
        # Otherwise someone who has the password logs in again after every two wrong codes
        # and guesses codes for ever, never locked out.
        first = ticket_for(client, mfa_user.email, addr=1)
        for _ in range(2):
            login_mfa(client, first, addr=1, code=wrong_code(mfa_user.secret))
        second = ticket_for(client, mfa_user.email, addr=1)
        login_mfa(client, second, addr=1, code=wrong_code(mfa_user.secret))

        assert_429(login(client, mfa_user.email, addr=1), LOCKED)


class TestGuessingCodesAtSensitiveActions:
    @pytest.fixture
    def app_config(self):
        return limits()  # the default lock-out threshold, every rate limit generous

    @pytest.mark.parametrize("path, method", [("/users/mfa/recovery-codes", "post"), ("/users/", "delete")])
    def test_wrong_codes_at_a_sensitive_action_end_in_a_lock_out(self, client, mfa_user, path, method):
        # A stolen access token must not be enough to guess the second factor: a sensitive
        # action with wrong codes has to hit a limit, as the second login step does.
        for _ in range(20):
            body = {"password": PASSWORD, "code": wrong_code(mfa_user.secret)}
            response = getattr(client, method)(path, json=body, headers=mfa_user.headers)
            if response.status_code == 429:
                break
            assert_envelope(response, 400, INVALID_FIELDS, {"code": FACTOR_REQUIRED})

        assert_429(response, LOCKED)


# --- a ticket opens no protected route; the endpoints are documented ----------------------------


@pytest.mark.parametrize("method, path", protected_operations())
def test_protected_route_with_a_ticket_for_a_token_is_401(client, mfa_user, method, path):
    ticket = ticket_for(client, mfa_user.email)

    response = client.open(path, method=method, json={"code": "123456", "password": PASSWORD}, headers=bearer(ticket))

    assert_envelope(response, 401, NOT_ACCESS_TOKEN, "Unauthorized")
    assert response.www_authenticate.parameters["error"] == "invalid_token"


@pytest.fixture
def document(client):
    response = client.get("/openapi.json")
    assert response.status_code == 200
    return json.loads(response.get_data(as_text=True))


@pytest.mark.parametrize(
    "path, methods, authenticated",
    [
        ("/users/mfa/totp", {"post", "delete"}, True),
        ("/users/mfa/totp/verify", {"post"}, True),
        ("/users/mfa/recovery-codes", {"post"}, True),
        ("/users/login/mfa", {"post"}, False),
    ],
)
def test_openapi_documents_every_mfa_endpoint(document, path, methods, authenticated):
    item = document["paths"].get(path)

    assert item is not None, sorted(document["paths"])
    assert methods <= set(item)
    for method in methods:
        operation = item[method]
        assert "mfa" in operation["tags"]
        assert operation.get("summary") or operation.get("description")
        assert "401" in operation["responses"]
        assert bool(operation.get("security")) is authenticated


def test_openapi_login_documents_the_mfa_challenge(document):
    schemas = json.dumps(document["paths"]["/users/login"]["post"]["responses"]["200"])

    assert "MfaChallengeOut" in schemas
