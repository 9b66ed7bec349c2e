"""Mail over real SMTP: the messages, the outbox that survives outages and restarts, the leases
that keep two app processes from sending one mail twice, and development's .eml files."""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import re
import ssl
import threading
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from database.client import state as database_state
from helpers import PASSWORD, SmtpTestServer, bearer, free_port, html_body, link_token, text_body
from mail.sender import send_due

PUBLIC_URL = "https://api.example.com"
FRONTEND_URL = "https://books.example.com"


@pytest.fixture
def app_config(smtp):
    return {"MAIL_URL": smtp.url, "PUBLIC_URL": PUBLIC_URL, "FRONTEND_URL": FRONTEND_URL}


def sign_up(client, email="ada@example.com"):
    response = client.post("/users/", json={"name": "Ada Lovelace", "email": email, "password": PASSWORD})
    assert response.status_code == 201, response.get_json()
    return response.get_json()["data"]


def events(client, email="ada@example.com"):
    token = client.post("/users/login", json={"email": email, "password": PASSWORD}).get_json()["data"]["token"]
    return [event for event in client.get("/users/events", headers=bearer(token)).get_json()["data"]]


# --- the message ---------------------------------------------------------------------------


def test_sign_up_mails_a_verification_link_with_standard_headers_and_two_bodies(app, client, smtp):
    sign_up(client)

    assert send_due(app) == 1
    [message] = smtp.messages
    token = link_token(message)
    assert message["To"] == "ada@example.com"
    assert message["From"] == "Book Library <no-reply@api.example.com>"
    assert message["Subject"] == "Confirm your email address for Book Library"
    assert token not in message["Subject"]
    assert re.fullmatch(r"<[^@<>]+@api\.example\.com>", message["Message-ID"])
    assert parsedate_to_datetime(message["Date"]).tzinfo is not None
    assert message["Auto-Submitted"] == "auto-generated"
    assert f"{FRONTEND_URL}/verify-email#token={token}" in text_body(message)
    assert f'href="{FRONTEND_URL}/verify-email#token={token}"' in html_body(message)
    assert "Hello," in text_body(message)  # no name: the address is not proven yet
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", token)  # 32 random bytes, URL-safe


def test_the_database_holds_only_the_link_tokens_hash_and_no_copy_of_the_link(app, client, db, smtp):
    sign_up(client)
    send_due(app)
    token = link_token(smtp.messages[0])

    stored = db.link_tokens.find_one()
    assert stored["hash"] == hashlib.sha256(token.encode()).hexdigest()
    everything = json.dumps([*db.link_tokens.find(), *db.outbox.find()], default=str)
    assert token not in everything


def test_html_body_escapes_what_the_user_typed(app, client, smtp):
    client.post("/users/", json={"name": "Ada <b>Lovelace</b>", "email": "ada@example.com", "password": PASSWORD})
    send_due(app)
    client.post("/users/email/verify", json={"token": link_token(smtp.messages[0])})
    token = client.post("/users/login", json={"email": "ada@example.com", "password": PASSWORD}).get_json()
    new_password = {"current_password": PASSWORD, "new_password": "Tr1cky-Gl0ve-Harb0r!"}
    client.put("/users/password", json=new_password, headers=bearer(token["data"]["token"]))

    send_due(app)  # the notice goes to the verified address: it greets the account by name

    assert "Ada &lt;b&gt;Lovelace&lt;/b&gt;" in html_body(smtp.messages[-1])
    assert "Hello Ada <b>Lovelace</b>," in text_body(smtp.messages[-1])


# --- the outbox --------------------------------------------------------------------------------


@pytest.mark.each_database
def test_a_mail_queued_while_smtp_is_down_arrives_after_it_is_back_and_the_app_restarted(
    app, app_factory, client, db, smtp, clock
):
    smtp.stop()
    sign_up(client)  # the client sees 201 although mail is down

    assert send_due(app) == 0
    assert db.outbox.find_one()["last_error"] == "ConnectionRefusedError"
    smtp.start()
    restarted = app_factory()
    clock.shift(14)
    assert send_due(restarted) == 0  # not due yet
    clock.shift(1)
    assert send_due(restarted) == 1  # the first retry comes 15 s after the failure
    assert [m["To"] for m in smtp.messages] == ["ada@example.com"]
    assert send_due(restarted) == 0  # delivered once, never again


@pytest.mark.each_database
def test_retries_back_off_doubling_from_15_seconds(app, client, smtp, clock):
    smtp.stop()
    sign_up(client)
    send_due(app)  # fails; retry at +15 s

    waits = []
    for expected in (15, 30, 60, 120):
        clock.shift(expected - 1)
        assert send_due(app) == 0  # not yet due: nothing tried
        clock.shift(1)
        assert send_due(app) == 0  # due, tried, failed
        waits.append(expected)
    smtp.start()
    clock.shift(240)

    assert send_due(app) == 1
    assert waits == [15, 30, 60, 120]


@pytest.mark.each_database
def test_a_mail_that_cannot_be_sent_for_a_day_is_given_up_and_that_is_an_event(app, client, db, smtp, clock):
    smtp.stop()
    sign_up(client)
    for _ in range(40):  # an hour at most between tries: 40 rounds pass a day
        send_due(app)
        clock.shift(3600)
    smtp.start()

    assert send_due(app) == 0
    assert smtp.messages == []
    [entry] = db.outbox.find()
    assert entry["status"] == "given_up"
    given_up = [e for e in events(client) if e["type"] == "mail_given_up"]
    assert given_up and given_up[0]["detail"]["mail"] == "verify_email"


@pytest.mark.each_database
def test_a_mail_for_an_address_the_account_no_longer_has_is_not_sent(app, client, db, smtp):
    sign_up(client)
    db.users.update_one({"email": "ada@example.com"}, {"$set": {"email": "ada@example.org"}})

    assert send_due(app) == 0
    assert smtp.messages == []
    assert db.outbox.find_one()["status"] == "dropped"


def test_a_sent_mail_records_an_event_without_its_address_or_link(app, client, smtp):
    sign_up(client)
    send_due(app)

    sent = [e for e in events(client) if e["type"] == "mail_sent"]
    assert [e["detail"] for e in sent] == [{"mail": "verify_email"}]


# --- two processes ---------------------------------------------------------------------------


@pytest.mark.each_database
def test_two_app_processes_never_send_one_mail_twice(app, app_factory, client, smtp):
    other = app_factory()
    sign_up(client)
    smtp.hold = threading.Event()
    first = threading.Thread(target=send_due, args=(app,))
    first.start()
    try:
        assert smtp.receiving.wait(10)  # the first process is mid-send, holding the lease
        assert send_due(other) == 0  # the second finds nothing to send
    finally:
        smtp.hold.set()
        first.join(10)

    assert send_due(other) == 0
    assert send_due(app) == 0
    assert len(smtp.messages) == 1


# Concurrent claims need a real server's atomic find_one_and_update.
@pytest.mark.parametrize("backend", ["secantus"], indirect=True)
def test_many_mails_from_two_processes_at_once_each_arrive_exactly_once(app, app_factory, client, smtp):
    other = app_factory()
    for n in range(12):
        sign_up(client, f"reader{n}@example.com")
    threads = [threading.Thread(target=send_due, args=(each,)) for each in (app, other)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    ids = [m["Message-ID"] for m in smtp.messages]
    assert len(ids) == 12 and len(set(ids)) == 12


# --- the sender thread -------------------------------------------------------------------------


def test_the_sender_thread_sends_a_queued_mail_without_being_driven(app_factory, smtp):
    threaded = app_factory(MAIL_SENDER=True)
    sign_up(threaded.test_client())

    assert smtp.arrived.wait(10)  # woken by the queue, not by a poll
    assert smtp.messages[0]["To"] == "ada@example.com"
    threaded.extensions["book_library.mail"].sender.stop()


# --- SMTP settings ---------------------------------------------------------------------------


@pytest.fixture
def smtp_with_login():
    from helpers import SmtpTestServer, free_port

    logins = []

    def authenticator(server, session, envelope, mechanism, auth_data):
        from aiosmtpd.smtp import AuthResult

        logins.append((auth_data.login.decode(), auth_data.password.decode()))
        return AuthResult(success=auth_data.password == b"p@ss word")

    server = SmtpTestServer(free_port(), authenticator=authenticator, auth_require_tls=False)
    server.logins = logins
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_credentials_in_mail_url_log_in_to_the_smtp_server(app_factory, smtp_with_login):
    url = f"smtp://mailer:p%40ss%20word@127.0.0.1:{smtp_with_login.port}"
    application = app_factory(MAIL_URL=url)
    sign_up(application.test_client())

    assert send_due(application) == 1
    assert smtp_with_login.logins == [("mailer", "p@ss word")]
    assert len(smtp_with_login.messages) == 1


@pytest.fixture
def certificates(tmp_path):
    """A certificate authority of the test's own and a server certificate it signed for 127.0.0.1:
    (server context, path of the CA's certificate)."""
    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test mail CA")])
    now = datetime.now(UTC)

    def build(subject, key, issuer_key, ca: bool, san=None):
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(hours=1))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if san:
            builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
        return builder.sign(issuer_key, hashes.SHA256())

    ca_cert = build(ca_name, ca_key, ca_key, ca=True)
    server_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    server_cert = build(
        server_name, server_key, ca_key, ca=False, san=[x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    )
    pem = serialization.Encoding.PEM
    (tmp_path / "ca.pem").write_bytes(ca_cert.public_bytes(pem))
    (tmp_path / "server.pem").write_bytes(server_cert.public_bytes(pem))
    (tmp_path / "server.key").write_bytes(
        server_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tmp_path / "server.pem", tmp_path / "server.key")
    return context, str(tmp_path / "ca.pem")


@pytest.fixture
def tls_server(request, certificates):
    """An SMTP server that speaks STARTTLS (and insists on it) or implicit TLS, as the test asks."""
    context, _ = certificates
    options = (
        {"tls_context": context, "require_starttls": True} if request.param == "starttls" else {"ssl_context": context}
    )
    server = SmtpTestServer(free_port(), **options)
    server.mode = request.param
    server.start()
    try:
        yield server
    finally:
        server.stop()


def tls_url(server) -> str:
    return f"smtps://127.0.0.1:{server.port}" if server.mode == "implicit" else f"{server.url}?starttls=true"


@pytest.mark.parametrize("tls_server", ["starttls", "implicit"], indirect=True)
def test_mail_goes_over_starttls_or_implicit_tls_to_a_trusted_server(
    app_factory, tls_server, certificates, monkeypatch
):
    monkeypatch.setenv("SSL_CERT_FILE", certificates[1])  # the machine's trust store, as OpenSSL reads it
    application = app_factory(MAIL_URL=tls_url(tls_server))
    sign_up(application.test_client())

    assert send_due(application) == 1
    assert [m["To"] for m in tls_server.messages] == ["ada@example.com"]


@pytest.mark.parametrize("tls_server", ["starttls", "implicit"], indirect=True)
def test_a_server_whose_certificate_is_not_trusted_gets_nothing_and_the_mail_waits(app_factory, tls_server):
    application = app_factory(MAIL_URL=tls_url(tls_server))
    sign_up(application.test_client())

    assert send_due(application) == 0
    assert tls_server.messages == []
    entry = database_state(application).db.outbox.find_one()
    assert (entry["status"], entry["last_error"]) == ("pending", "SSLCertVerificationError")


def test_links_use_the_configured_addresses_never_the_requests_host(app, client, smtp):
    body = {"name": "Ada Lovelace", "email": "ada@example.com", "password": PASSWORD}
    # A host outside TRUSTED_HOSTS is refused outright; a trusted one is not where links point either.
    assert client.post("/users/", json=body, headers={"Host": "evil.example.net"}).status_code == 400
    client.post("/users/", json=body, headers={"Host": "127.0.0.1:5000"})
    send_due(app)

    assert "127.0.0.1" not in smtp.messages[0].as_string()
    assert f"{FRONTEND_URL}/verify-email#token=" in text_body(smtp.messages[0])


# --- development: .eml files -------------------------------------------------------------------


def test_development_without_mail_url_writes_eml_files_and_logs_their_name_not_the_token(
    app_factory, tmp_path, log_lines
):
    application = app_factory(MAIL_URL="", PUBLIC_URL="", FRONTEND_URL="")
    sign_up(application.test_client())

    assert send_due(application) == 1
    [name] = os.listdir(tmp_path / "instance" / "mail")
    with open(tmp_path / "instance" / "mail" / name, "rb") as handle:
        from email import message_from_binary_file, policy

        message = message_from_binary_file(handle, policy=policy.default)
    token = link_token(message)
    # Links default to the browser app that ships at PUBLIC_URL/app, PUBLIC_URL being where `make run` serves.
    assert "http://127.0.0.1:5000/app/verify-email#token=" in text_body(message)
    assert [line for line in log_lines if name in line]
    assert not [line for line in log_lines if token in line]


def test_production_without_mail_url_sends_nothing_and_sign_up_still_works(app_factory):
    application = app_factory(
        APP_ENV="production", MAIL_URL="", PUBLIC_URL="https://api.example.com", TRUSTED_HOSTS="localhost"
    )
    sign_up(application.test_client())

    assert database_state(application).db.outbox.count_documents({}) == 0
