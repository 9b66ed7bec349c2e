"""The reference browser app (static/app) in headless Chromium: its messages, footer and file
picker, and the account settings (two-step verification, recovery codes, email, password).

The servers, the browser and the page come from test_webapp.py; mail is real (the `smtp`
fixture), and addresses are verified with the link from the sign-up mail, as a user would.
"""

from __future__ import annotations

import re
import time

import pyotp
import pytest
import test_webapp as webapp
from playwright.sync_api import expect
from test_webapp import (
    NAME,
    TITLE,
    add_book,
    api_login,
    app_url,
    log_in,
    mailed_link,
    sign_up,
    sign_up_over_http,
    status,
)

from helpers import PASSWORD, WRONG_PASSWORD, bearer
from validate import RECOVERY_CODES

# The servers, the browser and the page, as test_webapp.py makes them.
api, api_port, app_config, backend = webapp.api, webapp.api_port, webapp.app_config, webapp.backend
settings = webapp.settings
browser, page, second_origin, other_origin = webapp.browser, webapp.page, webapp.second_origin, webapp.other_origin

# --- messages, footer, file picker -------------------------------------------------------------


@pytest.fixture
def mode():
    return "token"


def test_a_notice_stays_with_the_view_it_is_about(page, api):
    page.goto(app_url("same", api))
    sign_up(page, "notices@example.com")
    add_book(page)
    page.get_by_role("button", name=f"Delete {TITLE}", exact=True).click()
    page.get_by_role("dialog", name=f"Delete “{TITLE}”?").get_by_role("button", name="Delete book").click()
    expect(status(page)).to_have_text(f"Deleted “{TITLE}”.")

    page.get_by_role("button", name="Sessions", exact=True).click()

    expect(page.get_by_role("list", name="Sessions").get_by_role("listitem")).to_have_count(1)
    expect(status(page)).to_be_hidden()


def test_the_footer_speaks_to_users_not_developers(page, api):
    page.goto(app_url("same", api))
    footer = page.get_by_role("contentinfo")
    expect(footer.get_by_role("link", name="API documentation")).to_have_attribute("href", f"{api}/docs")
    expect(footer).not_to_contain_text("refresh token")
    expect(footer).not_to_contain_text(api)


def test_the_file_picker_is_drawn_like_the_other_buttons(page, api):
    page.goto(app_url("same", api))
    sign_up(page, "picker@example.com")
    page.get_by_role("button", name="Add a book").click()
    dialog = page.get_by_role("dialog", name="Add a book")
    look = """(element, pseudo) => {
        const style = getComputedStyle(element, pseudo);
        return [style.backgroundColor, style.borderTopColor, style.borderRadius, style.fontWeight, style.fontFamily];
    }"""

    picker = dialog.get_by_label("Cover image").evaluate(look, "::file-selector-button")

    assert picker == dialog.get_by_role("button", name="Cancel").evaluate(look, None)


# --- settings ----------------------------------------------------------------------------------

PUBLIC_URL = "https://books.example.com"


@pytest.fixture
def settings_config(smtp, other_origin):
    return {"MAIL_URL": smtp.url, "PUBLIC_URL": PUBLIC_URL, "CORS_ORIGINS": other_origin, "REQUEST_LOG": False}


def verified_account(app, smtp, api, email):
    """An account whose address is proved with the link from its sign-up mail."""
    client = app.test_client()
    sign_up_over_http(client, email)
    token = mailed_link(app, smtp, api, email, "Confirm your email address").split("#token=")[1]
    assert client.post("/users/email/verify", json={"token": token}).status_code == 200


def open_settings(page, origin, api, email, second_origin, recovery_code=None):
    page.goto(app_url(second_origin if origin == "other" else "same", api))
    log_in(page, email)
    if recovery_code:
        log_in_with_a_recovery_code(page, recovery_code)
    expect(status(page)).to_have_text(f"Welcome back, {NAME}.")
    page.get_by_role("button", name="Settings", exact=True).click()
    expect(page.get_by_role("heading", name="Settings", level=1)).to_be_focused()


def log_in_with_a_recovery_code(page, code):
    expect(page.get_by_role("heading", name="Two-step verification")).to_be_visible()
    page.get_by_label("Code").fill(code)
    page.get_by_role("button", name="Verify").click()


def next_code(totp):
    """The code of the next 30-second step: the API takes each step's code once."""
    return totp.at(time.time() + totp.interval)


class TestTwoFactor:
    @pytest.fixture
    def app_config(self, settings_config):
        return settings_config

    @pytest.mark.parametrize("origin", ["same", "other"])
    def test_two_factor_is_set_up_with_a_code_gives_recovery_codes_once_and_is_turned_off(
        self, page, app, api, smtp, origin, second_origin
    ):
        email = f"two-factor-{origin}@example.com"
        verified_account(app, smtp, api, email)
        open_settings(page, origin, api, email, second_origin)
        section = page.get_by_role("region", name="Two-factor authentication")
        section.get_by_label("Password").fill(PASSWORD)
        section.get_by_role("button", name="Set up two-factor authentication").click()

        qr = section.get_by_role("img", name="QR code to scan with your authenticator app")
        expect(qr).to_be_visible()
        page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=qr.element_handle())
        key = section.get_by_text("Cannot scan it?").inner_text()
        totp = pyotp.TOTP(re.search(r"instead: ([A-Z2-7]{32})$", key).group(1))
        section.get_by_label("Code from the app").fill("000000" if totp.now() != "000000" else "111111")
        section.get_by_role("button", name="Turn on two-factor authentication").click()
        expect(section.get_by_label("Code from the app")).to_have_accessible_description(
            "The code is not valid. The 6-digit code it shows now."
        )
        section.get_by_label("Code from the app").fill(totp.now())
        section.get_by_role("button", name="Turn on two-factor authentication").click()

        expect(status(page)).to_have_text("Two-factor authentication is on. Keep these recovery codes safe.")
        codes = section.get_by_role("list", name="Recovery codes").get_by_role("listitem")
        expect(codes).to_have_count(RECOVERY_CODES)
        shown = codes.all_inner_texts()
        assert_downloads_the_codes(section, email, shown)
        section.get_by_role("button", name="I have saved my codes").click()
        expect(section.get_by_role("list", name="Recovery codes")).to_be_hidden()
        page.reload()  # shown once: not again
        expect(section.get_by_role("heading", name="New recovery codes")).to_be_visible()
        expect(section.get_by_role("list", name="Recovery codes")).to_be_hidden()

        turn_off = section.get_by_role("region", name="Turn off two-factor authentication")
        turn_off.get_by_label("Password").fill(WRONG_PASSWORD)
        turn_off.get_by_label("Authenticator code or recovery code").fill(shown[0])
        turn_off.get_by_role("button", name="Turn off two-factor authentication").click()
        expect(turn_off.get_by_label("Password")).to_have_accessible_description("Password is incorrect.")
        turn_off.get_by_label("Password").fill(PASSWORD)
        turn_off.get_by_role("button", name="Turn off two-factor authentication").click()

        expect(status(page)).to_have_text("Two-factor authentication is off.")
        expect(section.get_by_role("button", name="Set up two-factor authentication")).to_be_visible()
        client = app.test_client()
        assert client.post("/users/login", json={"email": email, "password": PASSWORD}).get_json()["data"]["token"]

    def test_new_recovery_codes_replace_the_old_ones(self, page, app, api, smtp, second_origin):
        email = "new-codes@example.com"
        verified_account(app, smtp, api, email)
        totp, old_codes = two_factor_over_http(app, email)
        open_settings(page, "same", api, email, second_origin, recovery_code=old_codes[0])
        new_codes = page.get_by_role("region", name="New recovery codes")
        new_codes.get_by_label("Authenticator code or recovery code").fill(next_code(totp))
        new_codes.get_by_role("button", name="Get new recovery codes").click()

        expect(status(page)).to_have_text("New recovery codes; the old ones no longer work.")
        codes = page.get_by_role("list", name="Recovery codes").get_by_role("listitem")
        expect(codes).to_have_count(RECOVERY_CODES)
        assert not set(codes.all_inner_texts()) & set(old_codes)
        expect(page.get_by_role("heading", name="Your recovery codes")).to_be_focused()
        expect(new_codes.get_by_label("Authenticator code or recovery code")).to_have_value("")


def assert_downloads_the_codes(section, email, shown):
    """The codes as a text file made in the page (a blob: URL), under the page's policy."""
    with section.page.expect_download() as download:
        section.get_by_role("link", name="Download recovery codes").click()
    assert download.value.suggested_filename == "book-library-recovery-codes.txt"
    assert download.value.url.startswith("blob:")
    with open(download.value.path(), encoding="utf-8") as file:
        text = file.read()
    assert text.startswith(f"Book Library recovery codes for {email}, made ")
    assert text.split("\n\n", 1)[1].split() == shown


def two_factor_over_http(app, email):
    """Two-factor on for the account, through the API; its TOTP and recovery codes."""
    client = app.test_client()
    token = api_login(client, email)
    enrolment = client.post("/users/mfa/totp", json={"password": PASSWORD}, headers=bearer(token))
    assert enrolment.status_code == 201, enrolment.get_json()
    totp = pyotp.TOTP(enrolment.get_json()["data"]["secret"])
    verified = client.post("/users/mfa/totp/verify", json={"code": totp.now()}, headers=bearer(token))
    assert verified.status_code == 200, verified.get_json()
    return totp, verified.get_json()["data"]["recovery_codes"]
