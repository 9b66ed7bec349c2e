"""A way back in, over HTTP and real SMTP: password reset, email verification, email change,
REQUIRE_VERIFIED_EMAIL, and the security notices. Mails are read from the test SMTP server;
the outbox is driven with mail.send_due and the clock is moved, never waited for."""

from __future__ import annotations

import json
import secrets
import time

import pyotp
import pytest

from helpers import (
    INVALID_FIELDS,
    LOCKED,
    PASSWORD,
    WRONG_PASSWORD,
    Fragment,
    assert_429,
    assert_envelope,
    bearer,
    ip,
    limits,
    link_token,
    text_body,
)
from mail.sender import send_due

FRONTEND_URL = "https://books.example.com"
NEW_PASSWORD = "Tr1cky-Gl0ve-Harb0r!"
INVALID_LINK = "This link is invalid or has expired."
FORGOT_SENT = "If an account has this address, a link to reset its password is on its way there."
CHECK_EMAIL = "Check your email to finish signing up."
UNVERIFIED = (
    "Verify your email address first: open the link in the mail we sent you. "
    "For a new link, sign up again with the same address."
)
BAD_CREDENTIALS = "Invalid email or password."
RESET_DONE = "Password changed. Log in with the new password."


@pytest.fixture
def app_config(smtp):
    return {"MAIL_URL": smtp.url, "PUBLIC_URL": "https://api.example.com", "FRONTEND_URL": FRONTEND_URL}


# --- helpers ---------------------------------------------------------------------------------


def sign_up(client, email="ada@example.com", name="Ada Lovelace"):
    return client.post("/users/", json={"name": name, "email": email, "password": PASSWORD})


def log_in(client, email="ada@example.com", password=PASSWORD):
    return client.post("/users/login", json={"email": email, "password": password})


def tokens(client, email="ada@example.com", password=PASSWORD) -> dict:
    return assert_envelope(log_in(client, email, password), 200, "Logged in.")


def forgot(client, email="ada@example.com", addr=1):
    return client.post("/users/password/forgot", json={"email": email}, environ_base=ip(addr))


def reset(client, token, new_password=NEW_PASSWORD):
    return client.post("/users/password/reset", json={"token": token, "new_password": new_password})


def verify(client, token):
    return client.post("/users/email/verify", json={"token": token})


def latest(app, smtp, to="ada@example.com", subject_part=""):
    """Send what is due, then the newest mail to `to` whose subject contains `subject_part`."""
    send_due(app)
    found = [m for m in smtp.to(to) if subject_part in m["Subject"]]
    assert found, [(m["To"], m["Subject"]) for m in smtp.messages]
    return found[-1]


def reset_token(app, client, smtp, email="ada@example.com") -> str:
    assert forgot(client, email).status_code == 202
    return link_token(latest(app, smtp, email, "Reset your"))


def verification_token(app, smtp, email="ada@example.com") -> str:
    return link_token(latest(app, smtp, email, "Confirm your email address"))


@pytest.fixture
def account(client):
    assert sign_up(client).status_code == 201
    return "ada@example.com"


@pytest.fixture
def verified_account(app, client, smtp, account):
    """The account, its address proven with the sign-up's link (a second factor needs that)."""
    assert_envelope(verify(client, verification_token(app, smtp)), 200, "Email address verified.")
    return account


def event_types(client, token) -> list[str]:
    return [event["type"] for event in client.get("/users/events", headers=bearer(token)).get_json()["data"]]


# --- forgot and reset ------------------------------------------------------------------------


@pytest.mark.each_database
def test_forgot_mails_a_reset_link_and_the_token_sets_a_new_password(app, client, smtp, account):
    response = forgot(client)
    assert_envelope(response, 202, FORGOT_SENT)
    message = latest(app, smtp, subject_part="Reset your")
    token = link_token(message)
    assert message["Subject"] == "Reset your Book Library password"
    assert f"{FRONTEND_URL}/reset-password#token={token}" in text_body(message)

    data = assert_envelope(reset(client, token), 200, RESET_DONE)

    assert data is None  # no tokens: the user logs in, with the second factor if it is on
    assert_envelope(log_in(client), 401, BAD_CREDENTIALS, "Unauthorized")
    tokens(client, password=NEW_PASSWORD)


def test_forgot_answers_the_same_for_an_unknown_address_and_mails_nothing(app, client, smtp, account):
    known = forgot(client, "ada@example.com")
    unknown = forgot(client, "nobody@example.com")

    assert (unknown.status_code, unknown.get_json()) == (known.status_code, known.get_json())
    send_due(app)
    assert [m["To"] for m in smtp.messages if "Reset" in m["Subject"]] == ["ada@example.com"]


def test_forgot_for_a_disabled_account_mails_nothing(app, client, smtp, account):
    token = tokens(client)["token"]
    client.delete("/users/", json={"password": PASSWORD}, headers=bearer(token))
    send_due(app)
    smtp.messages.clear()

    assert_envelope(forgot(client), 202, FORGOT_SENT)
    send_due(app)

    assert smtp.messages == []


@pytest.mark.each_database
def test_a_reset_ends_every_session(app, client, smtp, account):
    first, second = tokens(client), tokens(client)

    assert_envelope(reset(client, reset_token(app, client, smtp)), 200, RESET_DONE)

    for session in (first, second):
        assert client.get("/users/", headers=bearer(session["token"])).status_code == 401
        refreshed = client.post("/users/token/refresh", json={"refresh_token": session["refresh_token"]})
        assert refreshed.status_code == 401


def wrong_token(app, client, smtp):
    reset_token(app, client, smtp)
    return secrets.token_urlsafe(32)


def used_token(app, client, smtp):
    token = reset_token(app, client, smtp)
    assert_envelope(reset(client, token), 200, RESET_DONE)
    return token


def expired_token(app, client, smtp, clock):
    token = reset_token(app, client, smtp)
    clock.shift(30 * 60 + 1)
    return token


def replaced_token(app, client, smtp):
    older = reset_token(app, client, smtp)
    reset_token(app, client, smtp)
    return older


def verification_token_used_for_reset(app, client, smtp):
    return verification_token(app, smtp)


@pytest.mark.parametrize(
    "make_token",
    [wrong_token, used_token, expired_token, replaced_token, verification_token_used_for_reset],
    ids=["wrong", "used", "expired", "replaced-by-a-newer-one", "meant-for-verification"],
)
def test_a_bad_reset_token_is_400_with_one_message_for_every_kind(app, client, smtp, clock, account, make_token):
    args = (app, client, smtp, clock) if make_token is expired_token else (app, client, smtp)
    token = make_token(*args)

    assert_envelope(reset(client, token, "An0ther-Fine-Passw0rd!"), 400, INVALID_LINK, {"token": INVALID_LINK})
    tokens(client, password=NEW_PASSWORD if make_token is used_token else PASSWORD)


@pytest.mark.each_database
def test_a_reset_link_lives_30_minutes(app, client, smtp, clock, account):
    token = reset_token(app, client, smtp)
    clock.shift(30 * 60 - 5)

    assert_envelope(reset(client, token), 200, RESET_DONE)


@pytest.mark.each_database
def test_a_password_change_by_another_route_kills_the_reset_link(app, client, smtp, account):
    token = reset_token(app, client, smtp)
    session = tokens(client)["token"]
    changed = client.put(
        "/users/password", json={"current_password": PASSWORD, "new_password": NEW_PASSWORD}, headers=bearer(session)
    )
    assert changed.status_code == 200

    assert_envelope(reset(client, token, "An0ther-Fine-Passw0rd!"), 400, INVALID_LINK, {"token": INVALID_LINK})


@pytest.mark.parametrize(
    "new_password, fragment",
    [
        ("short1!", "Password must have 8 to 128 characters"),
        ("Password1!", "Password is not allowed: it is a common or breached password"),
        ("Lovelace1!", "Password is not allowed: it is too easy to guess"),
    ],
)
def test_a_reset_password_follows_the_sign_up_rules_and_a_refused_one_leaves_the_link_usable(
    app, client, smtp, account, new_password, fragment
):
    token = reset_token(app, client, smtp)

    assert_envelope(
        reset(client, token, new_password),
        400,
        INVALID_FIELDS,
        {"new_password": Fragment(fragment)},
    )
    assert_envelope(reset(client, token), 200, RESET_DONE)


@pytest.mark.parametrize(
    "body, message",
    [
        ({"new_password": NEW_PASSWORD}, "This field is required."),
        ({"token": "", "new_password": NEW_PASSWORD}, "Must not be empty."),
        ({"token": "x" * 129, "new_password": NEW_PASSWORD}, "Must be at most 128 characters."),
        ({"token": 12, "new_password": NEW_PASSWORD}, "Must be a string."),
    ],
)
def test_reset_names_a_missing_or_malformed_token(client, body, message):
    assert_envelope(client.post("/users/password/reset", json=body), 400, INVALID_FIELDS, {"token": message})


def test_forgot_checks_the_address_and_the_content_type(client):
    assert_envelope(
        client.post("/users/password/forgot", json={"email": "not-an-address"}),
        400,
        INVALID_FIELDS,
        {"email": "Email address is not valid."},
    )
    assert_envelope(
        client.post("/users/password/forgot", json={}), 400, INVALID_FIELDS, {"email": "This field is required."}
    )
    assert_envelope(
        client.post("/users/password/forgot", data="email=a@example.com", content_type="text/plain"),
        415,
        "Content-Type must be application/json.",
        "Unsupported Media Type",
    )


def test_a_reset_with_two_factor_on_still_needs_the_code_to_log_in(app, client, smtp, verified_account):
    session = bearer(tokens(client)["token"])
    secret = client.post("/users/mfa/totp", json={"password": PASSWORD}, headers=session).get_json()["data"]["secret"]
    assert (
        client.post("/users/mfa/totp/verify", json={"code": pyotp.TOTP(secret).now()}, headers=session).status_code
        == 200
    )

    assert_envelope(reset(client, reset_token(app, client, smtp)), 200, RESET_DONE)
    data = assert_envelope(log_in(client, password=NEW_PASSWORD), 200, "Enter the code from your authenticator app.")

    assert data["mfa_required"] is True and "token" not in data


def test_a_reset_proves_the_address(app, client, smtp, account):
    assert_envelope(reset(client, reset_token(app, client, smtp)), 200, RESET_DONE)

    assert tokens(client, password=NEW_PASSWORD)["email_verified"] is True


@pytest.mark.each_database
def test_a_reset_mail_is_given_up_once_its_link_would_have_expired(app, client, db, smtp, clock, account):
    send_due(app)  # the sign-up's verification mail
    smtp.stop()
    assert_envelope(forgot(client), 202, FORGOT_SENT)
    for _ in range(12):  # retries at 15 s, 30 s, 1, 2, 4, 8, 16 minutes...: past 30 minutes
        send_due(app)
        clock.shift(4 * 60)
    smtp.start()

    assert send_due(app) == 0
    assert db.outbox.find_one({"kind": "password_reset"})["status"] == "given_up"
    events = client.get("/users/events", headers=bearer(tokens(client)["token"])).get_json()["data"]
    [given_up] = [event["detail"] for event in events if event["type"] == "mail_given_up"]
    assert (given_up["mail"], given_up["reason"]) == ("password_reset", "expired")


@pytest.mark.each_database
def test_smtp_down_during_a_reset_request_then_back_the_mail_arrives(app, client, smtp, clock, account):
    send_due(app)
    smtp.stop()

    assert_envelope(forgot(client), 202, FORGOT_SENT)  # never a 5xx because mail is down
    assert send_due(app) == 0
    smtp.start()
    clock.shift(30)  # the first retry comes within 30 seconds

    assert send_due(app) == 1
    message = [m for m in smtp.messages if "Reset" in m["Subject"]][-1]
    assert_envelope(reset(client, link_token(message)), 200, RESET_DONE)


@pytest.mark.parametrize(
    "app_config_extra, email_for",
    [
        ({"PASSWORD_FORGOT_EMAIL_RATE_LIMIT": "2 per hour"}, lambda n: "ada@example.com"),
        ({"PASSWORD_FORGOT_RATE_LIMIT": "2 per hour"}, lambda n: f"reader{n}@example.com"),
    ],
    ids=["per-address", "per-ip"],
)
def test_forgot_is_limited_per_address_and_per_ip(app_factory, smtp, app_config_extra, email_for):
    client = app_factory(**limits(**app_config_extra)).test_client()
    for n in range(2):
        assert forgot(client, email_for(n)).status_code == 202

    assert_429(forgot(client, email_for(2)))


def test_no_token_or_password_reaches_a_log_line_or_an_event(app, client, smtp, account, log_lines):
    token = reset_token(app, client, smtp)
    reset(client, token)
    send_due(app)
    session = tokens(client, password=NEW_PASSWORD)["token"]

    events = json.dumps(client.get("/users/events", headers=bearer(session)).get_json())
    for secret in (token, NEW_PASSWORD, PASSWORD):
        assert not [line for line in log_lines if secret in line]
        assert secret not in events
    assert {"password_reset_requested", "password_reset", "mail_sent"} <= set(event_types(client, session))


# --- verification --------------------------------------------------------------------------


def test_sign_up_mails_a_verification_link_that_verifies_the_address(app, client, smtp):
    data = assert_envelope(sign_up(client), 201, "Account created.")
    assert data["email_verified"] is False
    token = verification_token(app, smtp)

    verified = assert_envelope(verify(client, token), 200, "Email address verified.")

    assert verified["email_verified"] is True and verified["email"] == "ada@example.com"
    assert tokens(client)["email_verified"] is True
    assert_envelope(verify(client, token), 400, INVALID_LINK, {"token": INVALID_LINK})  # used


@pytest.mark.each_database
def test_a_verification_link_lives_24_hours(app, client, smtp, clock):
    sign_up(client)
    token = verification_token(app, smtp)
    clock.shift(24 * 3600 + 1)

    assert_envelope(verify(client, token), 400, INVALID_LINK, {"token": INVALID_LINK})


@pytest.mark.parametrize("token", ["", "x" * 129, None, 5])
def test_verify_refuses_a_malformed_token_field(client, token):
    response = client.post("/users/email/verify", json={} if token is None else {"token": token})

    assert response.status_code == 400
    assert set(response.get_json()["error"]) == {"token"}


def test_verify_with_a_made_up_token_is_400(client):
    assert_envelope(verify(client, secrets.token_urlsafe(32)), 400, INVALID_LINK, {"token": INVALID_LINK})


@pytest.mark.each_database
def test_resend_mails_a_new_link_and_the_old_one_stops_working(app, client, smtp, account):
    old = verification_token(app, smtp)
    session = bearer(tokens(client)["token"])

    assert_envelope(
        client.post("/users/email/verify/resend", headers=session),
        202,
        "A new link to verify your address is on its way.",
    )
    new = verification_token(app, smtp)

    assert new != old
    assert_envelope(verify(client, old), 400, INVALID_LINK, {"token": INVALID_LINK})
    assert_envelope(verify(client, new), 200, "Email address verified.")
    assert_envelope(
        client.post("/users/email/verify/resend", headers=session),
        409,
        "Your email address is already verified.",
        "Conflict",
    )


def test_resend_needs_a_bearer_token_and_is_limited(app_factory, smtp):
    client = app_factory(**limits(VERIFY_RESEND_RATE_LIMIT="1 per hour")).test_client()
    sign_up(client)
    session = bearer(tokens(client)["token"])

    assert client.post("/users/email/verify/resend").status_code == 401
    assert client.post("/users/email/verify/resend", headers=session).status_code == 202
    assert_429(client.post("/users/email/verify/resend", headers=session))


# --- REQUIRE_VERIFIED_EMAIL ------------------------------------------------------------------


@pytest.fixture
def strict(app_factory):
    """An app with REQUIRE_VERIFIED_EMAIL on."""
    return app_factory(REQUIRE_VERIFIED_EMAIL=True)


def test_strict_sign_up_answers_the_same_202_for_a_new_and_a_registered_address(strict, smtp):
    client = strict.test_client()
    new = sign_up(client)
    again = sign_up(client, name="Someone Else")

    assert_envelope(new, 202, CHECK_EMAIL)
    assert (again.status_code, again.get_json()) == (new.status_code, new.get_json())


def test_strict_sign_up_with_a_verified_address_tells_its_owner(strict, smtp):
    client = strict.test_client()
    sign_up(client)
    verify(client, verification_token(strict, smtp))

    sign_up(client, name="Someone Else")
    message = latest(strict, smtp, subject_part="tried to sign up")

    assert "Someone tried to sign up" in text_body(message)
    assert "#token=" not in text_body(message)


def test_strict_sign_up_again_with_an_unverified_address_mails_a_fresh_link(strict, smtp):
    client = strict.test_client()
    sign_up(client)
    first = verification_token(strict, smtp)

    sign_up(client)
    second = verification_token(strict, smtp)

    assert second != first
    assert_envelope(verify(client, second), 200, "Email address verified.")


def test_strict_login_of_an_unverified_account_is_403_only_after_a_correct_password(strict, smtp):
    client = strict.test_client()
    sign_up(client)

    assert_envelope(log_in(client, password=WRONG_PASSWORD), 401, BAD_CREDENTIALS, "Unauthorized")
    assert_envelope(log_in(client), 403, UNVERIFIED, "Forbidden")
    verify(client, verification_token(strict, smtp))
    assert tokens(client)["email_verified"] is True


# --- email change ----------------------------------------------------------------------------


def change_email(client, session, **body):
    return client.put("/users/email", json={"password": PASSWORD, **body}, headers=session)


@pytest.mark.each_database
def test_an_email_change_happens_when_the_new_address_confirms_it(app, client, smtp, account):
    # Verified: notices name the new address only to an address the account has proven.
    verify(client, link_token(latest(app, smtp, subject_part="Confirm your email")))
    staying, other = tokens(client), tokens(client)
    session = bearer(staying["token"])

    response = change_email(client, session, email="Ada@Example.org")
    assert_envelope(response, 202, "Open the link we sent to the new address to finish the change.")
    confirm = latest(app, smtp, "ada@example.org", "Confirm your new email address")
    notice = latest(app, smtp, "ada@example.com", "change of your Book Library email address")
    assert "ada@example.org" in text_body(notice) and "#token=" not in text_body(notice)
    assert client.get("/users/", headers=session).get_json()["data"]["email"] == "ada@example.com"  # not yet

    changed = assert_envelope(verify(client, link_token(confirm)), 200, "Email address changed.")

    assert (changed["email"], changed["email_verified"]) == ("ada@example.org", True)
    assert client.get("/users/", headers=session).status_code == 200  # the session that asked stays
    assert client.get("/users/", headers=bearer(other["token"])).status_code == 401  # every other ends
    assert_envelope(log_in(client, "ada@example.com"), 401, BAD_CREDENTIALS, "Unauthorized")
    tokens(client, "ada@example.org")
    done = latest(app, smtp, "ada@example.com", "email address was changed")
    assert "ada@example.org" in text_body(done)


def test_an_email_change_with_a_wrong_password_is_401_like_login_and_counts_towards_the_lockout(app_factory, smtp):
    client = app_factory(LOGIN_LOCKOUT_THRESHOLD=3).test_client()
    sign_up(client)
    session = bearer(tokens(client)["token"])

    for _ in range(3):
        assert_envelope(
            change_email(client, session, email="ada@example.org", password=WRONG_PASSWORD),
            401,
            BAD_CREDENTIALS,
            "Unauthorized",
        )

    assert_429(change_email(client, session, email="ada@example.org"), LOCKED)


@pytest.mark.each_database
def test_a_password_reset_kills_a_pending_email_change_link(app, client, smtp, account):
    """Whoever asked to move the account elsewhere is evicted by the owner's reset, link and all."""
    send_due(app)
    assert change_email(client, bearer(tokens(client)["token"]), email="intruder@example.org").status_code == 202
    pending = link_token(latest(app, smtp, "intruder@example.org", "Confirm your new email address"))

    assert_envelope(reset(client, reset_token(app, client, smtp)), 200, RESET_DONE)

    assert_envelope(verify(client, pending), 400, INVALID_LINK, {"token": INVALID_LINK})
    me = client.get("/users/", headers=bearer(tokens(client, password=NEW_PASSWORD)["token"]))
    assert me.get_json()["data"]["email"] == "ada@example.com"


def test_an_email_change_with_two_factor_on_needs_a_code(app, client, smtp, verified_account):
    session = bearer(tokens(client)["token"])
    secret = client.post("/users/mfa/totp", json={"password": PASSWORD}, headers=session).get_json()["data"]["secret"]
    client.post("/users/mfa/totp/verify", json={"code": pyotp.TOTP(secret).now()}, headers=session)

    missing = change_email(client, session, email="ada@example.org")
    assert_envelope(
        missing, 400, INVALID_FIELDS, {"code": "A current authenticator code or an unused recovery code is required."}
    )
    next_code = pyotp.TOTP(secret).at(time.time() + 30)

    assert change_email(client, session, email="ada@example.org", code=next_code).status_code == 202


@pytest.mark.each_database
def test_an_address_taken_meanwhile_is_409_when_the_link_is_used(app, client, smtp, account):
    session = bearer(tokens(client)["token"])
    change_email(client, session, email="ada@example.org")
    confirm = latest(app, smtp, "ada@example.org", "Confirm your new email address")
    assert sign_up(client, "ada@example.org", "Another Ada").status_code == 201

    assert_envelope(verify(client, link_token(confirm)), 409, "An account with this email already exists.", "Conflict")
    assert client.get("/users/", headers=session).get_json()["data"]["email"] == "ada@example.com"


@pytest.mark.parametrize(
    "body, errors",
    [
        ({"email": "ada@example.com"}, {"email": "This is already your address."}),
        ({"email": "nope"}, {"email": "Email address is not valid."}),
        ({"password": None}, {"email": "This field is required.", "password": "Must be a string."}),
    ],
)
def test_an_email_change_names_bad_fields(client, account, body, errors):
    session = bearer(tokens(client)["token"])

    assert_envelope(change_email(client, session, **body), 400, INVALID_FIELDS, errors)


def test_an_email_change_needs_a_bearer_token(client):
    assert client.put("/users/email", json={"email": "ada@example.org", "password": PASSWORD}).status_code == 401


# --- security notices ------------------------------------------------------------------------


def change_password(client, session, secret):
    client.put("/users/password", json={"current_password": PASSWORD, "new_password": NEW_PASSWORD}, headers=session)


def turn_on_two_factor(client, session, secret):
    client.post("/users/mfa/totp/verify", json={"code": pyotp.TOTP(secret).now()}, headers=session)


def turn_off_two_factor(client, session, secret):
    turn_on_two_factor(client, session, secret)
    code = pyotp.TOTP(secret).at(time.time() + 30)
    client.delete("/users/mfa/totp", json={"password": PASSWORD, "code": code}, headers=session)


def new_recovery_codes(client, session, secret):
    turn_on_two_factor(client, session, secret)
    code = pyotp.TOTP(secret).at(time.time() + 30)
    client.post("/users/mfa/recovery-codes", json={"code": code}, headers=session)


def disable_account(client, session, secret):
    client.delete("/users/", json={"password": PASSWORD}, headers=session)


@pytest.mark.parametrize(
    "action, subject",
    [
        (change_password, "Your Book Library password was changed"),
        (turn_on_two_factor, "Two-factor authentication is on for your Book Library account"),
        (turn_off_two_factor, "Two-factor authentication is off for your Book Library account"),
        (new_recovery_codes, "New recovery codes for your Book Library account"),
        (disable_account, "Your Book Library account was disabled"),
    ],
    ids=["password-changed", "two-factor-on", "two-factor-off", "recovery-codes", "account-disabled"],
)
def test_a_security_change_mails_a_notice_to_the_account(app, client, smtp, verified_account, action, subject):
    send_due(app)
    session = bearer(tokens(client)["token"])
    secret = client.post("/users/mfa/totp", json={"password": PASSWORD}, headers=session).get_json()["data"]["secret"]

    action(client, session, secret)
    notice = latest(app, smtp, "ada@example.com", subject)

    assert "When:" in text_body(notice) and "From: 127.0.0.1" in text_body(notice)
    assert "#token=" not in text_body(notice)


def test_a_reset_mails_a_notice_that_the_password_was_reset(app, client, smtp, account):
    reset(client, reset_token(app, client, smtp))

    latest(app, smtp, "ada@example.com", "Your Book Library password was reset")


# --- the document --------------------------------------------------------------------------


def test_the_openapi_document_describes_every_new_operation_with_examples(client):
    document = client.get("/openapi.json").get_json()
    paths, schemas = document["paths"], document["components"]["schemas"]
    operations = {
        ("/users/password/forgot", "post"): "202",
        ("/users/password/reset", "post"): "200",
        ("/users/email/verify", "post"): "200",
        ("/users/email/verify/resend", "post"): "202",
        ("/users/email", "put"): "202",
    }
    for (path, method), status in operations.items():
        operation = paths[path][method]
        assert status in operation["responses"], (path, method)
        assert operation.get("summary") or operation.get("description")
        if path != "/users/email/verify/resend":
            body = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
            assert schemas[body]["examples"], body
