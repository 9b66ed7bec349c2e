"""Passkeys over HTTP, with a software authenticator made here (an EC P-256 key, and the few
bytes of CBOR and authenticator data a real one sends): adding one, signing in with it, and
every way a ceremony must fail."""

from __future__ import annotations

import base64
import hashlib
import json
import os

import cbor2
import pyotp
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from helpers import (
    INVALID_FIELDS,
    LOCKED,
    PASSWORD,
    WRONG_CREDENTIALS,
    WRONG_PASSWORD,
    assert_envelope,
    bearer,
    ip,
    limits,
    link_token,
)
from mail.sender import send_due

RP_ID = "books.example.com"
ORIGIN = "https://books.example.com"
NOT_VERIFIED = "The passkey could not be verified."
SPENT = "The passkey request is unknown, used or expired; start again."
# Flags of authenticator data: user present, user verified, attested credential data included.
UP, UV, AT = 0x01, 0x04, 0x40


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Authenticator:
    """A platform authenticator in a few lines: one discoverable P-256 credential."""

    def __init__(self, counter: int = 0, counting: bool = True):
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.credential_id = os.urandom(16)
        self.counter, self.counting = counter, counting
        self.user_handle: str | None = None

    def _cose_key(self) -> bytes:
        numbers = self.key.public_key().public_numbers()
        return cbor2.dumps({1: 2, 3: -7, -1: 1, -2: numbers.x.to_bytes(32, "big"), -3: numbers.y.to_bytes(32, "big")})

    def _client_data(self, kind: str, challenge: str, origin: str) -> bytes:
        return json.dumps({"type": kind, "challenge": challenge, "origin": origin, "crossOrigin": False}).encode()

    def _auth_data(self, rp_id: str, flags: int, attested: bytes = b"") -> bytes:
        return hashlib.sha256(rp_id.encode()).digest() + bytes([flags]) + self.counter.to_bytes(4, "big") + attested

    def create(self, options: dict, origin: str = ORIGIN, rp_id: str = RP_ID, uv: bool = True) -> dict:
        assert options["authenticatorSelection"]["residentKey"] == "required"
        assert options["authenticatorSelection"]["userVerification"] == "required"
        self.user_handle = options["user"]["id"]
        attested = bytes(16) + len(self.credential_id).to_bytes(2, "big") + self.credential_id + self._cose_key()
        auth_data = self._auth_data(rp_id, UP | AT | (UV if uv else 0), attested)
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        client_data = self._client_data("webauthn.create", options["challenge"], origin)
        return {
            "id": b64(self.credential_id),
            "rawId": b64(self.credential_id),
            "type": "public-key",
            "response": {"clientDataJSON": b64(client_data), "attestationObject": b64(attestation)},
            "clientExtensionResults": {},
        }

    def get(self, options: dict, origin: str = ORIGIN, rp_id: str = RP_ID, uv: bool = True, handle=None) -> dict:
        assert options["userVerification"] == "required" and not options.get("allowCredentials")
        if self.counting:
            self.counter += 1
        auth_data = self._auth_data(rp_id, UP | (UV if uv else 0))
        client_data = self._client_data("webauthn.get", options["challenge"], origin)
        signed = auth_data + hashlib.sha256(client_data).digest()
        signature = self.key.sign(signed, ec.ECDSA(hashes.SHA256()))
        return {
            "id": b64(self.credential_id),
            "rawId": b64(self.credential_id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64(client_data),
                "authenticatorData": b64(auth_data),
                "signature": b64(signature),
                "userHandle": handle or self.user_handle,
            },
            "clientExtensionResults": {},
        }


@pytest.fixture
def app_config(smtp):
    return {"PUBLIC_URL": ORIGIN, "MAIL_URL": smtp.url}


def registration_options(client, headers, **confirm):
    body = confirm or {"password": PASSWORD}
    response = client.post("/users/passkeys/registration/options", json=body, headers=headers)
    data = assert_envelope(response, 200, "Create the passkey in the browser, then send its answer.")
    assert data["expires_in"] == 300
    assert data["options"]["rp"] == {"id": RP_ID, "name": "Book Library"}
    return data["options"]


def add_passkey(client, headers, authenticator, name=None, **confirm):
    credential = authenticator.create(registration_options(client, headers, **confirm))
    response = client.post("/users/passkeys", json={"credential": credential, "name": name}, headers=headers)
    return assert_envelope(response, 201, "Passkey added.")


def login_options(client):
    response = client.post("/users/login/passkey/options", environ_base=ip(1))
    return assert_envelope(response, 200, "Choose a passkey in the browser, then send its answer.")["options"]


def passkey_login(client, credential, addr=1):
    return client.post("/users/login/passkey", json={"credential": credential}, environ_base=ip(addr))


def event_types(client, headers):
    return [event["type"] for event in client.get("/users/events", headers=headers).get_json()["data"]]


def subjects(app, smtp):
    send_due(app)
    return [message["Subject"] for message in smtp.messages]


# --- the flows ----------------------------------------------------------------------------------


def test_add_a_passkey_then_sign_in_with_it_without_an_email(app, client, auth, smtp):
    email = auth.signup()
    headers = auth.headers(email)
    authenticator = Authenticator()
    passkey = add_passkey(client, headers, authenticator, name="Laptop")
    assert passkey["name"] == "Laptop" and passkey["last_used_at"] is None and passkey["authenticator"] is None

    response = passkey_login(client, authenticator.get(login_options(client)))
    data = assert_envelope(response, 200, "Logged in.")
    assert data["email"] == email and data["refresh_token"] and data["token_type"] == "Bearer"
    assert client.get("/users/", headers=bearer(data["token"])).status_code == 200

    [listed] = assert_envelope(client.get("/users/passkeys", headers=headers), 200, "Passkeys.")
    assert listed["id"] == passkey["id"] and listed["last_used_at"] is not None
    assert event_types(client, headers)[:2] == ["login", "passkey_added"]
    assert "A passkey was added to your Book Library account" in subjects(app, smtp)


def test_a_passkey_is_both_factors_no_code_follows(client, auth, db):
    email = auth.signup()
    # Two-factor enrolment needs a proven address; the mailed link's test is elsewhere.
    db.users.update_one({"email": email}, {"$set": {"email_verified": True}})
    headers = auth.headers(email)
    enrolment = client.post("/users/mfa/totp", json={"password": PASSWORD}, headers=headers).get_json()["data"]
    code = pyotp.TOTP(enrolment["secret"]).now()
    assert client.post("/users/mfa/totp/verify", json={"code": code}, headers=headers).status_code == 200
    authenticator = Authenticator()
    add_passkey(client, headers, authenticator)

    data = assert_envelope(passkey_login(client, authenticator.get(login_options(client))), 200, "Logged in.")
    assert data["mfa_enabled"] is True and "mfa_ticket" not in data and data["token"]


@pytest.mark.each_database
def test_challenges_live_in_the_database_another_process_finishes_the_ceremony(client, auth, make_app):
    headers = auth.headers()
    authenticator = Authenticator()
    other = make_app().test_client()
    credential = authenticator.create(registration_options(client, headers))
    assert other.post("/users/passkeys", json={"credential": credential}, headers=headers).status_code == 201
    assert passkey_login(other, authenticator.get(login_options(client))).status_code == 200


# --- what is refused ----------------------------------------------------------------------------


def test_adding_a_passkey_needs_the_password_or_an_existing_passkey(client, auth):
    headers = auth.headers()
    response = client.post("/users/passkeys/registration/options", json={"password": WRONG_PASSWORD}, headers=headers)
    assert_envelope(response, 401, WRONG_CREDENTIALS, "Unauthorized")
    response = client.post("/users/passkeys/registration/options", json={}, headers=headers)
    confirm = "Send the password, or an assertion of one of your passkeys."
    assert_envelope(response, 400, INVALID_FIELDS, {"password": confirm})
    first = Authenticator()
    add_passkey(client, headers, first)
    # The second passkey, confirmed with the first instead of the password.
    add_passkey(client, headers, Authenticator(), passkey=first.get(login_options(client)))


def test_another_users_passkey_neither_confirms_nor_signs_in_as_someone_else(client, auth):
    ada, bob = auth.headers(), auth.headers()
    adas = Authenticator()
    add_passkey(client, ada, adas)
    response = client.post(
        "/users/passkeys/registration/options", json={"passkey": adas.get(login_options(client))}, headers=bob
    )
    assert_envelope(response, 401, NOT_VERIFIED, "Unauthorized")
    # Ada's credential, claiming Bob's account as its user handle.
    bobs = Authenticator()
    add_passkey(client, bob, bobs)
    credential = adas.get(login_options(client), handle=bobs.user_handle)
    assert_envelope(passkey_login(client, credential), 401, NOT_VERIFIED, "Unauthorized")


@pytest.mark.parametrize(
    ("change", "reason"),
    [({"origin": "https://evil.example"}, "origin"), ({"rp_id": "evil.example"}, "RP ID"), ({"uv": False}, "verif")],
)
def test_registration_from_another_origin_or_rp_or_without_user_verification_is_refused(client, auth, change, reason):
    headers = auth.headers()
    credential = Authenticator().create(registration_options(client, headers), **change)
    response = client.post("/users/passkeys", json={"credential": credential}, headers=headers)
    assert_envelope(response, 400, INVALID_FIELDS, {"credential": NOT_VERIFIED})
    assert client.get("/users/passkeys", headers=headers).get_json()["data"] == []
    events = client.get("/users/events", headers=headers).get_json()["data"]
    [event] = [e for e in events if e["type"].startswith("passkey")]
    assert event["type"] == "passkey_registration_failed" and reason.lower() in event["detail"]["reason"].lower()


@pytest.mark.parametrize("change", [{"origin": "https://evil.example"}, {"rp_id": "evil.example"}, {"uv": False}])
def test_an_assertion_from_another_origin_or_rp_or_without_user_verification_is_401(client, auth, change):
    headers = auth.headers()
    authenticator = Authenticator()
    add_passkey(client, headers, authenticator)
    response = passkey_login(client, authenticator.get(login_options(client), **change))
    assert_envelope(response, 401, NOT_VERIFIED, "Unauthorized")
    assert "passkey_check_failed" in event_types(client, headers)


@pytest.mark.each_database
def test_a_challenge_is_single_use(client, auth):
    authenticator = Authenticator()
    add_passkey(client, auth.headers(), authenticator)
    credential = authenticator.get(login_options(client))
    assert passkey_login(client, credential).status_code == 200
    assert_envelope(passkey_login(client, credential), 401, SPENT, "Unauthorized")


@pytest.mark.each_database
def test_a_challenge_expires_after_five_minutes(client, auth, clock):
    headers = auth.headers()
    authenticator = Authenticator()
    options = registration_options(client, headers)
    clock.shift(301)
    response = client.post("/users/passkeys", json={"credential": authenticator.create(options)}, headers=headers)
    assert_envelope(response, 400, INVALID_FIELDS, {"credential": SPENT})
    add_passkey(client, headers, authenticator)
    options = login_options(client)
    clock.shift(299)
    assert passkey_login(client, authenticator.get(options)).status_code == 200
    options = login_options(client)
    clock.shift(301)
    assert_envelope(passkey_login(client, authenticator.get(options)), 401, SPENT, "Unauthorized")


@pytest.mark.each_database
def test_a_counter_going_backwards_is_a_clone_signal_and_refused(client, auth):
    headers = auth.headers()
    authenticator = Authenticator(counter=5)
    add_passkey(client, headers, authenticator)
    assert passkey_login(client, authenticator.get(login_options(client))).status_code == 200  # counter 6
    authenticator.counter = 3
    assert_envelope(passkey_login(client, authenticator.get(login_options(client))), 401, NOT_VERIFIED, "Unauthorized")
    assert event_types(client, headers)[0] == "passkey_clone_signal"


def test_an_authenticator_without_a_counter_signs_in_every_time(client, auth):
    authenticator = Authenticator(counter=0, counting=False)
    add_passkey(client, auth.headers(), authenticator)
    for _ in range(2):
        assert passkey_login(client, authenticator.get(login_options(client))).status_code == 200


@pytest.mark.each_database
def test_failed_assertions_count_toward_the_password_lock_out(app, client, auth):
    email = auth.signup()
    authenticator = Authenticator()
    add_passkey(client, auth.headers(email), authenticator)
    threshold = app.config["LOGIN_LOCKOUT_THRESHOLD"]
    for _ in range(threshold):
        bad = authenticator.get(login_options(client), origin="https://evil.example")
        assert passkey_login(client, bad).status_code == 401
    assert_envelope(passkey_login(client, authenticator.get(login_options(client))), 429, LOCKED, "Too Many Requests")
    response = client.post("/users/login", json={"email": email, "password": PASSWORD}, environ_base=ip(1))
    assert_envelope(response, 429, LOCKED, "Too Many Requests")
    assert passkey_login(client, authenticator.get(login_options(client)), addr=2).status_code == 200


@pytest.fixture
def limited(make_app):
    return make_app(**limits(LOGIN_RATE_LIMIT="3 per minute")).test_client()


@pytest.mark.each_database
def test_passkey_logins_share_the_login_rate_limit_per_address(limited):
    for _ in range(3):
        assert limited.post("/users/login/passkey/options", environ_base=ip(7)).status_code == 200
    assert limited.post("/users/login/passkey/options", environ_base=ip(7)).status_code == 429


@pytest.mark.parametrize(
    "credential",
    [
        {},
        {"rawId": "!!", "response": {}},
        {"rawId": "AAAA", "response": {"clientDataJSON": "not base64 json"}},
        {"rawId": "AAAA", "response": "text"},
    ],
)
def test_a_malformed_credential_is_a_clear_4xx(client, auth, credential):
    headers = auth.headers()
    assert_envelope(passkey_login(client, credential), 401, NOT_VERIFIED, "Unauthorized")
    registration_options(client, headers)
    response = client.post("/users/passkeys", json={"credential": credential}, headers=headers)
    assert_envelope(response, 400, INVALID_FIELDS, {"credential": NOT_VERIFIED})
    response = client.post("/users/login/passkey", json={"credential": "text"})
    assert_envelope(response, 400, INVALID_FIELDS, {"credential": "Must be a JSON object."})


# --- the list -----------------------------------------------------------------------------------


def test_rename_and_delete_with_an_event_and_a_mail(app, client, auth, smtp):
    headers, other = auth.headers(), auth.headers()
    authenticator = Authenticator()
    passkey = add_passkey(client, headers, authenticator)
    assert passkey["name"] == "Passkey"
    url = f"/users/passkeys/{passkey['id']}"
    assert_envelope(client.patch(url, json={"name": "Phone"}, headers=other), 404, "Passkey not found.", "Not Found")
    renamed = assert_envelope(client.patch(url, json={"name": "Phone"}, headers=headers), 200, "Passkey renamed.")
    assert renamed["name"] == "Phone"
    assert_envelope(client.delete(url, headers=other), 404, "Passkey not found.", "Not Found")
    assert client.delete(url, headers=headers).status_code == 204
    assert_envelope(client.delete(url, headers=headers), 404, "Passkey not found.", "Not Found")
    assert client.get("/users/passkeys", headers=headers).get_json()["data"] == []
    assert event_types(client, headers)[0] == "passkey_removed"
    assert "A passkey was removed from your Book Library account" in subjects(app, smtp)
    assert_envelope(passkey_login(client, authenticator.get(login_options(client))), 401, NOT_VERIFIED, "Unauthorized")


def test_a_password_reset_ends_sessions_but_keeps_passkeys(app, client, auth, smtp):
    email = auth.signup()
    headers = auth.headers(email)
    authenticator = Authenticator()
    add_passkey(client, headers, authenticator)
    assert client.post("/users/password/forgot", json={"email": email}).status_code == 202
    send_due(app)
    token = link_token([m for m in smtp.messages if "Reset" in m["Subject"]][-1])
    response = client.post("/users/password/reset", json={"token": token, "new_password": "N3w!passphrase-ok"})
    assert response.status_code == 200, response.get_json()
    assert client.get("/users/passkeys", headers=headers).status_code == 401
    assert passkey_login(client, authenticator.get(login_options(client))).status_code == 200


# --- the relying party --------------------------------------------------------------------------


def test_the_relying_party_comes_from_the_configured_addresses(make_app):
    development = make_app(PUBLIC_URL="", MAIL_URL="").config
    assert development["PASSKEY_RP_ID"] == "localhost"  # not 127.0.0.1: browsers refuse IP addresses
    assert {"http://127.0.0.1:5000", "http://localhost:5000", "http://localhost:5173"} <= set(
        development["PASSKEY_ORIGINS"]
    )
    split = make_app(PUBLIC_URL="https://api.example.com", FRONTEND_URL="https://books.example.com/").config
    assert split["PASSKEY_RP_ID"] == "books.example.com"
    assert split["PASSKEY_ORIGINS"][:2] == ["https://books.example.com", "https://api.example.com"]
    production = make_app(APP_ENV="production", PUBLIC_URL="https://books.example.com").config
    assert production["PASSKEY_ORIGINS"] == ["https://books.example.com"]
    chosen = make_app(PASSKEY_RP_ID="example.com", PASSKEY_ORIGINS="https://a.example.com, https://b.example.com")
    assert chosen.config["PASSKEY_RP_ID"] == "example.com"
    assert chosen.config["PASSKEY_ORIGINS"] == ["https://a.example.com", "https://b.example.com"]


def test_the_options_name_the_configured_party_whatever_host_the_request_names(client, auth):
    headers = auth.headers()
    response = client.post("/users/login/passkey/options", headers={"Host": "localhost:8000"})
    assert response.get_json()["data"]["options"]["rpId"] == RP_ID
    assert registration_options(client, headers)["rp"]["id"] == RP_ID
