"""What the service's own mails say: nothing a client typed reaches an address the account has
not proven, the device line is a few fixed words rather than the User-Agent header, and each
kind of mail reaches one address a limited number of times, the requests answered as usual."""

from __future__ import annotations

import os

import pytest

from helpers import (
    PASSWORD,
    SmtpTestServer,
    assert_envelope,
    bearer,
    free_port,
    html_body,
    limits,
    link_token,
    text_body,
)
from mail.devices import describe
from mail.sender import send_due

LURE = "Your account is locked. Unlock it at http://evil.example"
HOSTILE_AGENT = "Your account is locked. Unlock it at http://evil.example/unlock"
CHECK_EMAIL = "Check your email to finish signing up."


@pytest.fixture
def app_config(smtp):
    return {"MAIL_URL": smtp.url, "PUBLIC_URL": "https://api.example.com", "FRONTEND_URL": "https://books.example.com"}


def sign_up(client, email="ada@example.com", name="Ada Lovelace", **headers):
    return client.post("/users/", json={"name": name, "email": email, "password": PASSWORD}, headers=headers)


def token_for(client, email="ada@example.com"):
    login = client.post("/users/login", json={"email": email, "password": PASSWORD})
    return assert_envelope(login, 200, "Logged in.")["token"]


def verify_address(app, client, smtp, email="ada@example.com"):
    send_due(app)
    [mail] = [m for m in smtp.to(email) if "Confirm your email" in m["Subject"]][-1:]
    assert_envelope(
        client.post("/users/email/verify", json={"token": link_token(mail)}), 200, "Email address verified."
    )


def greeting(message) -> str:
    return text_body(message).splitlines()[0]


def both_bodies(message) -> str:
    return text_body(message) + html_body(message)


def assert_no_lure(message):
    body = both_bodies(message)
    assert "locked" not in body and "evil.example" not in body, body


# --- greetings: the account's name only to a proven address -----------------------------------


def test_the_verification_mail_to_an_unproven_address_does_not_carry_the_sign_up_name(app, client, smtp):
    assert sign_up(client, name=LURE).status_code == 201

    send_due(app)

    [mail] = smtp.to("ada@example.com")
    assert "Confirm your email" in mail["Subject"]
    assert greeting(mail) == "Hello,"
    assert_no_lure(mail)


def test_the_email_change_link_to_the_new_address_does_not_carry_the_name(app, client, smtp):
    sign_up(client, name=LURE)
    verify_address(app, client, smtp)
    token = token_for(client)

    response = client.put(
        "/users/email", json={"email": "victim@example.org", "password": PASSWORD}, headers=bearer(token)
    )

    assert response.status_code == 202
    send_due(app)
    [link] = smtp.to("victim@example.org")
    assert greeting(link) == "Hello,"
    assert_no_lure(link)


def test_notices_to_an_address_never_verified_name_neither_the_account_nor_the_new_address(app, client, smtp):
    # Someone signs up with the victim's address, never verifies it, and moves the account away.
    sign_up(client, email="victim@example.com", name=LURE)
    token = token_for(client, "victim@example.com")
    new = "locked-unlock-at-evil@evil.example"

    client.put("/users/email", json={"email": new, "password": PASSWORD}, headers=bearer(token))
    send_due(app)
    [requested] = [m for m in smtp.to("victim@example.com") if "was requested" in m["Subject"]]
    client.post("/users/email/verify", json={"token": link_token(smtp.to(new)[-1])})
    send_due(app)

    [changed] = [m for m in smtp.to("victim@example.com") if "was changed" in m["Subject"]]
    for notice in (requested, changed):
        assert greeting(notice) == "Hello,"
        assert_no_lure(notice)
    assert "The address of your Book Library account was changed. Mail" in text_body(changed)


def test_notices_to_a_verified_address_greet_the_owner_and_name_the_new_address(app, client, smtp):
    sign_up(client)
    verify_address(app, client, smtp)
    token = token_for(client)

    client.put("/users/email", json={"email": "ada@example.org", "password": PASSWORD}, headers=bearer(token))
    send_due(app)
    client.post("/users/email/verify", json={"token": link_token(smtp.to("ada@example.org")[-1])})
    send_due(app)

    [changed] = [m for m in smtp.to("ada@example.com") if "was changed" in m["Subject"]]
    assert greeting(changed) == "Hello Ada Lovelace,"
    assert "was changed to ada@example.org." in text_body(changed)


# --- the device line ----------------------------------------------------------------------------


@pytest.fixture
def registered(app, client, smtp, make_app):
    """A verified account at ada@example.com, on an app where sign-up with it mails its owner."""
    sign_up(client)
    verify_address(app, client, smtp)
    smtp.messages.clear()
    return make_app(REQUIRE_VERIFIED_EMAIL=True)


def test_the_sign_up_attempt_notice_names_the_device_not_the_raw_user_agent(registered, smtp):
    agent = f"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/126.0 Safari/537.36 {HOSTILE_AGENT}"
    response = sign_up(registered.test_client(), **{"User-Agent": agent})

    assert_envelope(response, 202, CHECK_EMAIL)
    send_due(registered)
    [notice] = smtp.to("ada@example.com")
    assert "Device: Chrome on Linux" in text_body(notice)
    assert "<td>Chrome on Linux</td>" in html_body(notice)
    assert_no_lure(notice)


@pytest.mark.parametrize(
    ("agent", "device"),
    [
        (
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
            "Chrome on Linux",
        ),
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 "
            "Safari/537.36 Edg/126.0.2592.56",
            "Edge on Windows",
        ),
        (
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 "
            "Safari/605.1.15",
            "Safari on macOS",
        ),
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
            "Version/17.5 Mobile/15E148 Safari/604.1",
            "Safari on iOS",
        ),
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
            "CriOS/126.0.6478.54 Mobile/15E148 Safari/604.1",
            "Chrome on iOS",
        ),
        (
            "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.6478.71 "
            "Mobile Safari/537.36",
            "Chrome on Android",
        ),
        (
            "Mozilla/5.0 (Linux; Android 14; SM-S921B) AppleWebKit/537.36 (KHTML, like Gecko) "
            "SamsungBrowser/25.0 Chrome/121.0.0.0 Mobile Safari/537.36",
            "Samsung Internet on Android",
        ),
        ("Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0", "Firefox on Linux"),
        ("Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:127.0) Gecko/20100101 Firefox/127.0", "Firefox on Windows"),
        (
            "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 "
            "Safari/537.36",
            "Chrome on ChromeOS",
        ),
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 "
            "Safari/537.36 OPR/111.0.0.0",
            "Opera on Windows",
        ),
        ("curl/8.5.0", "curl"),
        ("PostmanRuntime/7.39.0", "Postman"),
        ("python-requests/2.32.3", "Python requests"),
        ("Mozilla/5.0 (Linux; Android 14) SomethingNew/1.0", "A browser on Android"),
        (HOSTILE_AGENT, "Unknown"),
        ("", "Unknown"),
        (None, "Unknown"),
    ],
)
def test_a_user_agent_is_described_in_words_from_a_fixed_list(agent, device):
    assert describe(agent) == device


# --- at most so many mails of one kind to one address --------------------------------------------


@pytest.fixture
def capped(registered, make_app):
    return make_app(REQUIRE_VERIFIED_EMAIL=True, **limits(MAIL_RECIPIENT_RATE_LIMIT="5 per hour"))


@pytest.mark.each_database
def test_fifteen_sign_ups_with_a_registered_address_bring_its_owner_five_notices(capped, db, smtp):
    client = capped.test_client()

    for _ in range(15):
        assert_envelope(sign_up(client), 202, CHECK_EMAIL)  # the same answer, mailed or not

    send_due(capped)
    assert len(smtp.to("ada@example.com")) == 5
    refused = [e for e in db.auth_events.find({"type": "mail_refused"})]
    assert len(refused) == 10
    assert {e["detail"]["mail"] for e in refused} == {"signup_attempt"}


@pytest.mark.each_database
def test_the_limit_counts_each_kind_and_each_address_apart_and_frees_up_after_its_window(clock, capped, smtp):
    client = capped.test_client()
    for _ in range(5):
        sign_up(client)
    for _ in range(5):
        client.post("/users/password/forgot", json={"email": "ada@example.com"})
    sign_up(client, email="grace@example.com", name="Grace Hopper")
    sign_up(client)  # the sixth notice of its kind to ada: dropped

    send_due(capped)
    subjects = [m["Subject"] for m in smtp.to("ada@example.com")]
    assert sum("tried to sign up" in s for s in subjects) == 5
    assert sum("Reset your" in s for s in subjects) == 5
    assert len(smtp.to("grace@example.com")) == 1
    clock.shift(3601)
    sign_up(client)
    send_due(capped)
    assert sum("tried to sign up" in m["Subject"] for m in smtp.to("ada@example.com")) == 6


# --- addresses beyond ASCII ----------------------------------------------------------------------


@pytest.fixture
def plain_smtp():
    """A server that does not offer SMTPUTF8 (the `smtp` one does)."""
    server = SmtpTestServer(free_port(), enable_SMTPUTF8=False)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def plain(make_app, plain_smtp):
    return make_app(MAIL_URL=plain_smtp.url)


def test_a_non_ascii_domain_travels_in_its_ascii_form_through_a_server_without_smtputf8(plain, plain_smtp, db):
    assert sign_up(plain.test_client(), email="ada@bücher.example").status_code == 201

    assert send_due(plain) == 1

    [mail] = plain_smtp.messages
    assert mail["To"] == "ada@xn--bcher-kva.example"
    assert plain_smtp.recipients == [["ada@xn--bcher-kva.example"]]


def test_a_non_ascii_local_part_is_given_up_at_once_by_a_server_without_smtputf8(plain, plain_smtp, db):
    assert sign_up(plain.test_client(), email="josé@example.com").status_code == 201

    assert send_due(plain) == 0

    entry = db.outbox.find_one()
    assert (entry["status"], entry["reason"], entry["attempts"]) == ("given_up", "smtputf8_unsupported", 1)
    assert plain_smtp.messages == []
    [event] = db.auth_events.find({"type": "mail_given_up"})
    assert event["detail"]["reason"] == "smtputf8_unsupported"


def test_a_non_ascii_local_part_is_sent_with_smtputf8_when_the_server_offers_it(app, client, smtp):
    assert sign_up(client, email="josé@bücher.example").status_code == 201

    assert send_due(app) == 1

    [mail] = smtp.messages
    assert mail["To"] == "josé@xn--bcher-kva.example"
    assert smtp.recipients == [["josé@xn--bcher-kva.example"]]


def test_an_eml_file_writes_a_non_ascii_address_in_utf8_not_as_an_encoded_word(app_factory, tmp_path):
    application = app_factory(MAIL_URL="")
    assert sign_up(application.test_client(), email="josé@example.com").status_code == 201

    assert send_due(application) == 1

    [name] = os.listdir(tmp_path / "instance" / "mail")
    headers = (tmp_path / "instance" / "mail" / name).read_bytes().split(b"\n\n")[0]
    assert "To: josé@example.com".encode() in headers.splitlines()
    assert b"=?utf-8?" not in headers.lower()
