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
    NEW_PASSWORD,
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
from mail.sender import send_due
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
    expect(status(page)).to_contain_text(f"Welcome back, {NAME}.")
    page.get_by_role("button", name="Settings", exact=True).click()
    expect(page.get_by_role("heading", name="Settings", level=1)).to_be_focused()


def log_in_with_a_recovery_code(page, code):
    expect(page.get_by_role("heading", name="Two-step verification")).to_be_visible()
    page.get_by_role("button", name="Use a recovery code instead").click()
    page.get_by_label("Recovery code", exact=True).fill(code)
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

    def test_a_refusal_is_the_apis_message_in_the_section(self, page, app, api, smtp, second_origin):
        email = "refused@example.com"
        verified_account(app, smtp, api, email)
        open_settings(page, "same", api, email, second_origin)
        two_factor_over_http(app, email)  # meanwhile, elsewhere
        section = page.get_by_role("region", name="Two-factor authentication")
        section.get_by_label("Password").fill(PASSWORD)
        section.get_by_role("button", name="Set up two-factor authentication").click()

        expect(section.get_by_role("alert")).to_have_text("Two-factor authentication is already on.")
        expect(page.get_by_role("alert")).to_have_count(1)  # in the section only

    def test_an_unverified_address_is_told_to_verify_first(self, page, app, api, second_origin):
        sign_up_over_http(app.test_client(), "unproved@example.com")
        open_settings(page, "same", api, "unproved@example.com", second_origin)
        section = page.get_by_role("region", name="Two-factor authentication")
        section.get_by_label("Password").fill(PASSWORD)
        section.get_by_role("button", name="Set up two-factor authentication").click()

        expect(section.get_by_role("alert")).to_have_text(
            "Verify your email address before turning on two-factor authentication."
        )


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


class TestRecoveryCodeLogin:
    @pytest.fixture
    def app_config(self, settings_config):
        return settings_config

    def test_a_recovery_code_logs_in_once(self, page, app, api, smtp):
        email = "recovery@example.com"
        verified_account(app, smtp, api, email)
        _, codes = two_factor_over_http(app, email)
        page.goto(app_url("same", api))
        log_in(page, email)
        expect(page.get_by_label("Authenticator code", exact=True)).to_be_visible()
        page.get_by_role("button", name="Use a recovery code instead").click()
        code = page.get_by_label("Recovery code", exact=True)
        expect(code).to_be_focused()
        expect(code).to_have_accessible_description(
            "One of the recovery codes you saved when you turned two-factor authentication on. Each works once."
        )
        code.fill("not-a-code")
        page.get_by_role("button", name="Verify").click()
        expect(page.get_by_role("alert")).to_have_text("The code is not valid.")
        code.fill(codes[0])
        page.get_by_role("button", name="Verify").click()

        expect(status(page)).to_have_text(
            f"Welcome back, {NAME}. That recovery code is used up: new ones are in Settings."
        )
        page.get_by_role("button", name="Log out", exact=True).click()
        log_in(page, email)
        log_in_with_a_recovery_code(page, codes[0])
        expect(page.get_by_role("alert")).to_have_text("The code is not valid.")

        page.get_by_role("button", name="Use your authenticator app instead").click()
        expect(page.get_by_label("Authenticator code", exact=True)).to_be_focused()
        expect(page.get_by_role("alert")).to_be_hidden()


class TestEmailAndPassword:
    @pytest.fixture
    def app_config(self, settings_config, mode):
        return {**settings_config, "REFRESH_TOKEN_COOKIE": mode == "cookie"}

    def test_the_email_address_is_changed_from_settings(self, page, app, api, smtp, second_origin):
        verified_account(app, smtp, api, "old@example.com")
        open_settings(page, "same", api, "old@example.com", second_origin)
        section = page.get_by_role("region", name="Email address")
        expect(section).to_contain_text("Your address is old@example.com. It is verified.")
        expect(section.get_by_label("Authenticator code or recovery code")).to_be_hidden()
        section.get_by_label("New email address").fill("old@example.com")
        section.get_by_label("Password").fill(PASSWORD)
        section.get_by_role("button", name="Change email address").click()
        expect(section.get_by_label("New email address")).to_have_accessible_description(
            "This is already your address. We mail it a link; the change happens when you open it."
        )
        section.get_by_label("New email address").fill("new@example.com")
        section.get_by_label("Password").fill(WRONG_PASSWORD)
        section.get_by_role("button", name="Change email address").click()
        expect(section.get_by_role("alert")).to_have_text("Invalid email or password.")
        # A wrong password is not an expired token: sent once, with no refresh.
        assert page.traffic.responses[-1] == ("PUT", "/users/email", 401)
        assert ("POST", "/users/token/refresh", 200) not in page.traffic.responses
        section.get_by_label("Password").fill(PASSWORD)
        section.get_by_role("button", name="Change email address").click()

        expect(section.get_by_role("status")).to_have_text(
            "Open the link we sent to the new address to finish the change."
        )
        expect(section.get_by_label("Password")).to_have_value("")
        page.goto(mailed_link(app, smtp, api, "new@example.com", "Confirm your new email address"))
        page.get_by_role("button", name="Verify email address").click()
        expect(status(page)).to_have_text("Email address changed.")
        page.get_by_role("button", name="Settings", exact=True).click()
        expect(section).to_contain_text("Your address is new@example.com. It is verified.")

    def test_an_unverified_address_can_be_sent_a_new_link(self, page, app, api, smtp, second_origin):
        sign_up_over_http(app.test_client(), "unverified@example.com")
        open_settings(page, "same", api, "unverified@example.com", second_origin)
        section = page.get_by_role("region", name="Email address")
        expect(section).to_contain_text("Your address is unverified@example.com. It is not verified yet")

        section.get_by_role("button", name="Send a new link").click()

        expect(section.get_by_role("status")).to_have_text("A new link to verify your address is on its way.")
        send_due(app)
        assert len([m for m in smtp.to("unverified@example.com") if "Confirm your email" in m["Subject"]]) == 2

    @pytest.mark.parametrize("mode", ["token", "cookie"])
    def test_the_password_is_changed_from_settings(self, page, app, api, smtp, second_origin, mode):
        email = f"password-{mode}@example.com"
        verified_account(app, smtp, api, email)
        client = app.test_client()
        other_session = api_login(client, email)
        open_settings(page, "same", api, email, second_origin)
        section = page.get_by_role("region", name="Password")
        section.get_by_label("Current password").fill(WRONG_PASSWORD)
        section.get_by_label("New password").fill("password")
        section.get_by_role("button", name="Change password").click()
        expect(section.get_by_label("New password")).to_have_attribute("aria-invalid", "true")
        section.get_by_label("Current password").fill(WRONG_PASSWORD)
        section.get_by_label("New password").fill(NEW_PASSWORD)
        section.get_by_role("button", name="Change password").click()
        expect(section.get_by_label("Current password")).to_have_accessible_description(
            "Current password is incorrect."
        )
        section.get_by_label("Current password").fill(PASSWORD)
        section.get_by_role("button", name="Change password").click()

        expect(section.get_by_role("status")).to_have_text("Password changed.")
        assert client.get("/users/", headers=bearer(other_session)).status_code == 401
        # This tab holds the session's new tokens: a reload resumes it.
        page.reload()
        expect(page.get_by_role("heading", name="Settings", level=1)).to_be_visible()
        expect(page.get_by_role("region", name="Email address")).to_contain_text(email)
        page.get_by_role("button", name="Log out", exact=True).click()
        expect(page.get_by_role("heading", name="Log in")).to_be_visible()
        log_in(page, email, NEW_PASSWORD)
        expect(status(page)).to_have_text(f"Welcome back, {NAME}.")

    def test_with_two_factor_on_a_code_is_asked_for_too(self, page, app, api, smtp, second_origin):
        email = "both@example.com"
        verified_account(app, smtp, api, email)
        totp, codes = two_factor_over_http(app, email)
        open_settings(page, "same", api, email, second_origin, recovery_code=codes[0])
        section = page.get_by_role("region", name="Password")
        section.get_by_label("Current password").fill(PASSWORD)
        section.get_by_label("New password").fill(NEW_PASSWORD)
        section.get_by_role("button", name="Change password").click()
        expect(section.get_by_label("Authenticator code or recovery code")).to_have_accessible_description(
            "A current authenticator code or an unused recovery code is required. "
            "Two-factor authentication is on: the 6-digit code your app shows now, or one of your recovery codes."
        )
        section.get_by_label("Authenticator code or recovery code").fill(codes[1])
        section.get_by_role("button", name="Change password").click()
        expect(section.get_by_role("status")).to_have_text("Password changed.")

        # Turned off here, the other sections stop asking for it.
        turn_off = page.get_by_role("region", name="Turn off two-factor authentication")
        turn_off.get_by_label("Password").fill(NEW_PASSWORD)
        turn_off.get_by_label("Authenticator code or recovery code").fill(next_code(totp))
        turn_off.get_by_role("button", name="Turn off two-factor authentication").click()
        expect(status(page)).to_have_text("Two-factor authentication is off.")
        expect(section.get_by_label("Authenticator code or recovery code")).to_be_hidden()
        email_section = page.get_by_role("region", name="Email address")
        expect(email_section.get_by_label("Authenticator code or recovery code")).to_be_hidden()
