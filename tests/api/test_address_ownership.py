"""Who owns an account whose address nobody has proved: a later sign-up's link, a password reset,
a second factor, and mails still waiting in the outbox (issue 17).
Over HTTP and real SMTP; the outbox is driven with mail.send_due and the clock is moved."""

from __future__ import annotations

import pyotp
import pytest

from helpers import PASSWORD, assert_envelope, bearer, ip, link_token, text_body
from mail.sender import send_due

FRONTEND_URL = "https://books.example.com"
ADA = "ada@example.com"
SQUATTER_PASSWORD = "Squ4tter-Lantern-Gravel!"
NEW_PASSWORD = "Tr1cky-Gl0ve-Harb0r!"
CHECK_EMAIL = "Check your email to finish signing up."
INVALID_LINK = "This link is invalid or has expired."
BAD_CREDENTIALS = "Invalid email or password."
CANCELLED = "mail_cancelled"
# What the link of a later sign-up says it does.
CLAIM_TEXT = "sets the account up with the name and the password chosen at this sign-up"
VERIFY_FIRST = "Verify your email address before turning on two-factor authentication."


@pytest.fixture
def app_config(smtp):
    return {"MAIL_URL": smtp.url, "PUBLIC_URL": "https://api.example.com", "FRONTEND_URL": FRONTEND_URL}


@pytest.fixture
def strict(app_factory):
    """An app with REQUIRE_VERIFIED_EMAIL on, on the same database as `app`."""
    return app_factory(REQUIRE_VERIFIED_EMAIL=True)


# --- helpers ---------------------------------------------------------------------------------


def sign_up(client, name="Ada Lovelace", password=PASSWORD, email=ADA):
    return client.post("/users/", json={"name": name, "email": email, "password": password})


def log_in(client, password=PASSWORD, email=ADA, addr=1):
    return client.post("/users/login", json={"email": email, "password": password}, environ_base=ip(addr))


def session(client, password=PASSWORD, email=ADA) -> dict:
    return bearer(assert_envelope(log_in(client, password, email), 200, "Logged in.")["token"])


def verify(client, token):
    return client.post("/users/email/verify", json={"token": token})


def confirmations(app, smtp, to=ADA) -> list:
    """Send what is due, then every "Confirm your email address" mail to `to`, oldest first."""
    send_due(app)
    return [m for m in smtp.to(to) if "Confirm your email address" in m["Subject"]]


def reset_via_mailbox(app, client, smtp, password=NEW_PASSWORD, email=ADA):
    """What the owner of the mailbox can always do: ask for a reset link and use it."""
    assert client.post("/users/password/forgot", json={"email": email}).status_code == 202
    send_due(app)
    token = link_token([m for m in smtp.to(email) if "Reset your" in m["Subject"]][-1])
    response = client.post("/users/password/reset", json={"token": token, "new_password": password})
    assert_envelope(response, 200, "Password changed. Log in with the new password.")


def turn_on_two_factor(client, headers) -> str:
    enrolment = client.post("/users/mfa/totp", json={"password": PASSWORD}, headers=headers)
    secret = assert_envelope(enrolment, 201, "Scan the QR code, then verify a code to turn it on.")["secret"]
    code = pyotp.TOTP(secret).now()
    assert client.post("/users/mfa/totp/verify", json={"code": code}, headers=headers).status_code == 200
    return secret


def event_list(client, headers) -> list[dict]:
    return assert_envelope(client.get("/users/events", headers=headers), 200, "Events.")


# --- 1. a later sign-up with an address nobody has verified ---------------------------------------


def test_a_later_sign_up_gets_the_unverified_account_with_the_name_and_password_it_chose(strict, smtp):
    client = strict.test_client()
    assert_envelope(sign_up(client, "Mallory Mask", SQUATTER_PASSWORD), 202, CHECK_EMAIL)
    assert_envelope(sign_up(client), 202, CHECK_EMAIL)  # the owner of the address, later

    message = confirmations(strict, smtp)[-1]
    assert CLAIM_TEXT in text_body(message) and "Mallory" not in text_body(message)
    account = assert_envelope(verify(client, link_token(message)), 200, "Email address verified.")

    assert (account["name"], account["email_verified"]) == ("Ada Lovelace", True)
    assert_envelope(log_in(client, SQUATTER_PASSWORD), 401, BAD_CREDENTIALS, "Unauthorized")
    session(client)


@pytest.mark.each_database
def test_the_first_sign_ups_link_stops_working_once_a_later_sign_up_waits(strict, smtp):
    client = strict.test_client()
    sign_up(client, "Mallory Mask", SQUATTER_PASSWORD)
    [first] = confirmations(strict, smtp)

    sign_up(client)

    assert_envelope(verify(client, link_token(first)), 400, INVALID_LINK, {"token": INVALID_LINK})


@pytest.mark.each_database
def test_a_first_link_still_waiting_in_the_outbox_is_not_sent_after_a_later_sign_up(strict, smtp):
    client = strict.test_client()
    smtp.stop()
    sign_up(client, "Mallory Mask", SQUATTER_PASSWORD)
    send_due(strict)  # refused: it waits for a retry
    sign_up(client)
    smtp.start()

    [message] = confirmations(strict, smtp)

    assert CLAIM_TEXT in text_body(message)


@pytest.mark.each_database
def test_a_later_sign_ups_link_ends_the_sessions_of_whoever_held_the_account(app, strict, smtp):
    """An account made while REQUIRE_VERIFIED_EMAIL was off can have sessions before anyone proved
    its address: the link of the sign-up that proves it ends them."""
    held = app.test_client()
    assert sign_up(held, "Mallory Mask", SQUATTER_PASSWORD).status_code == 201
    squatter = session(held, SQUATTER_PASSWORD)
    client = strict.test_client()
    sign_up(client)

    verify(client, link_token(confirmations(strict, smtp)[-1]))

    assert held.get("/users/", headers=squatter).status_code == 401
    assert "account_claimed" in [event["type"] for event in event_list(client, session(client))]


# --- 2. a second factor needs a proven address ---------------------------------------------------


def test_two_factor_enrolment_needs_a_verified_address(app, client, smtp):
    sign_up(client, "Mallory Mask", SQUATTER_PASSWORD)
    squatter = session(client, SQUATTER_PASSWORD)

    response = client.post("/users/mfa/totp", json={"password": SQUATTER_PASSWORD}, headers=squatter)

    assert_envelope(response, 403, VERIFY_FIRST, "Forbidden")
    verify(client, link_token(confirmations(app, smtp)[-1]))
    assert client.post("/users/mfa/totp", json={"password": SQUATTER_PASSWORD}, headers=squatter).status_code == 201


def test_a_reset_of_an_account_nobody_verified_clears_its_second_factor(app, client, db, smtp):
    """An account that turned the second factor on before enrolment needed a verified address."""
    sign_up(client)
    verify(client, link_token(confirmations(app, smtp)[-1]))
    turn_on_two_factor(client, session(client))
    db.users.update_one({"email": ADA}, {"$set": {"email_verified": False}})

    reset_via_mailbox(app, client, smtp)

    me = assert_envelope(log_in(client, NEW_PASSWORD), 200, "Logged in.")
    assert (me["mfa_enabled"], me["email_verified"]) == (False, True)


def test_a_reset_of_a_verified_account_keeps_its_second_factor(app, client, smtp):
    sign_up(client)
    verify(client, link_token(confirmations(app, smtp)[-1]))
    turn_on_two_factor(client, session(client))

    reset_via_mailbox(app, client, smtp)

    assert assert_envelope(log_in(client, NEW_PASSWORD), 200, "Enter the code from your authenticator app.")[
        "mfa_required"
    ]


# --- 3. a mail still waiting in the outbox outlives nothing ------------------------------------


@pytest.mark.each_database
def test_a_password_reset_cancels_an_email_change_mail_still_waiting(app, client, db, smtp, clock):
    sign_up(client)
    intruder = session(client)  # someone who has the password
    smtp.stop()
    body = {"email": "intruder@example.org", "password": PASSWORD}
    assert client.put("/users/email", json=body, headers=intruder).status_code == 202
    send_due(app)  # refused for now: retried in 15 seconds
    smtp.start()

    reset_via_mailbox(app, client, smtp)
    clock.shift(60)  # the retry is due, the link not yet expired
    send_due(app)

    assert [m["Subject"] for m in smtp.to("intruder@example.org")] == []
    entry = db.outbox.find_one({"kind": "change_email"})
    assert (entry["status"], entry["reason"]) == ("dropped", "cancelled")
    cancelled = [e["detail"] for e in event_list(client, session(client, NEW_PASSWORD)) if e["type"] == CANCELLED]
    assert {"mail": "change_email", "reason": "password_reset"} in cancelled


@pytest.mark.each_database
def test_a_password_change_cancels_a_reset_mail_still_waiting(app, client, db, smtp, clock):
    sign_up(client)
    smtp.stop()
    assert client.post("/users/password/forgot", json={"email": ADA}).status_code == 202
    send_due(app)
    smtp.start()

    change = {"current_password": PASSWORD, "new_password": NEW_PASSWORD}
    assert client.put("/users/password", json=change, headers=session(client)).status_code == 200
    clock.shift(60)  # the retry is due, the link not yet expired
    send_due(app)

    assert [m["Subject"] for m in smtp.to(ADA) if "Reset your" in m["Subject"]] == []
    cancelled = [e["detail"] for e in event_list(client, session(client, NEW_PASSWORD)) if e["type"] == CANCELLED]
    assert cancelled == [{"mail": "password_reset", "reason": "password_changed"}]


@pytest.mark.each_database
def test_an_email_change_cancels_an_older_change_mail_still_waiting(app, client, db, smtp, clock):
    sign_up(client)
    owner = session(client)
    smtp.stop()
    body = {"email": "old-plan@example.org", "password": PASSWORD}
    assert client.put("/users/email", json=body, headers=owner).status_code == 202
    send_due(app)  # refused for now: retried in 15 seconds
    smtp.start()
    body = {"email": "ada@example.org", "password": PASSWORD}
    assert client.put("/users/email", json=body, headers=owner).status_code == 202
    send_due(app)
    confirm = [m for m in smtp.to("ada@example.org") if "Confirm your new" in m["Subject"]][-1]
    assert verify(client, link_token(confirm)).status_code == 200

    clock.shift(60)  # the older mail's retry is due, its link not yet expired
    send_due(app)

    assert smtp.to("old-plan@example.org") == []
    cancelled = [e["detail"] for e in event_list(client, owner) if e["type"] == CANCELLED]
    assert {"mail": "change_email", "reason": "email_changed"} in cancelled
