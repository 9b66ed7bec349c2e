"""Passkeys in the reference browser app, in headless Chromium with the DevTools WebAuthn virtual
authenticator (CTAP2, resident keys, user verification): add a passkey in the settings, log out,
sign in with it (no email, no password), rename it, then delete it.

The browser and the page come from test_webapp.py; the API listens on a port chosen first, so
that its PUBLIC_URL, and from it the passkeys' relying party and origin, is the page's address.
"""

from __future__ import annotations

import threading

import pytest
import test_webapp as webapp
from playwright.sync_api import expect
from test_webapp import NAME, log_in, sign_up, status
from werkzeug.serving import make_server

from helpers import PASSWORD, free_port

browser, page, backend = webapp.browser, webapp.page, webapp.backend


@pytest.fixture
def port():
    return free_port()


@pytest.fixture
def app_config(port):
    # localhost, not 127.0.0.1: browsers refuse an IP address as a relying party id.
    return {"PUBLIC_URL": f"http://localhost:{port}", "REQUEST_LOG": False}


@pytest.fixture
def api(app, port):
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://localhost:{port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def authenticator(page):
    """A platform authenticator in the browser, as DevTools' WebAuthn domain makes one."""
    devtools = page.context.new_cdp_session(page)
    devtools.send("WebAuthn.enable")
    options = {
        "protocol": "ctap2",
        "transport": "internal",
        "hasResidentKey": True,
        "hasUserVerification": True,
        "isUserVerified": True,
        "automaticPresenceSimulation": True,
    }
    added = devtools.send("WebAuthn.addVirtualAuthenticator", {"options": options})

    def credentials():
        return devtools.send("WebAuthn.getCredentials", {"authenticatorId": added["authenticatorId"]})["credentials"]

    return credentials


def passkeys_section(page):
    return page.get_by_role("region", name="Passkeys")


def test_add_a_passkey_log_out_sign_in_with_it_rename_and_delete_it(page, api, app, authenticator):
    email = "passkey@example.com"
    page.goto(f"{api}/app/")
    sign_up(page, email)

    # 1. Settings: add a passkey (the password first, then the authenticator's dialog).
    page.get_by_role("button", name="Settings", exact=True).click()
    section = passkeys_section(page)
    expect(section.get_by_role("list", name="Your passkeys")).to_contain_text("No passkeys yet.")
    section.get_by_label("Name (optional)").fill("Test laptop")
    section.get_by_label("Password").fill(PASSWORD)
    section.get_by_role("button", name="Add a passkey").click()
    expect(section.get_by_role("status")).to_have_text('Passkey "Test laptop" added: you can sign in with it.')
    items = section.get_by_role("list", name="Your passkeys").get_by_role("listitem")
    expect(items).to_have_count(1)
    expect(items.first).to_contain_text("Test laptop")
    expect(items.first).to_contain_text("not used yet")
    [credential] = authenticator()
    assert credential["isResidentCredential"] is True

    # 2. Log out.
    page.get_by_role("button", name="Log out", exact=True).click()
    expect(status(page)).to_have_text("You are logged out.")

    # 3. Sign in with the passkey: no email, no password.
    page.get_by_role("button", name="Sign in with a passkey").click()
    expect(status(page)).to_have_text(f"Welcome back, {NAME}.")
    expect(page.get_by_role("heading", name="Your books")).to_be_visible()
    assert authenticator()[0]["signCount"] >= 1

    # 4. Settings again: the passkey was used; rename it, then delete it.
    page.get_by_role("button", name="Settings", exact=True).click()
    section = passkeys_section(page)
    items = section.get_by_role("list", name="Your passkeys").get_by_role("listitem")
    expect(items.first).to_contain_text("last used")
    section.get_by_label("New name for Test laptop").fill("Work laptop")
    section.get_by_role("button", name="Rename").click()
    expect(section.get_by_role("status")).to_have_text("Passkey renamed.")
    expect(items.first.locator(".device")).to_have_text("Work laptop")
    section.get_by_role("button", name="Delete the passkey Work laptop").click()
    expect(section.get_by_role("status")).to_have_text('Passkey "Work laptop" deleted.')
    expect(section.get_by_role("list", name="Your passkeys")).to_contain_text("No passkeys yet.")

    # 5. The authenticator still holds it, but the API no longer knows it: refused, with a message.
    page.get_by_role("button", name="Log out", exact=True).click()
    page.get_by_role("button", name="Sign in with a passkey").click()
    expect(page.get_by_role("alert")).to_have_text("The passkey could not be verified.")
    log_in(page, email)
    expect(status(page)).to_have_text(f"Welcome back, {NAME}.")
