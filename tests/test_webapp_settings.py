"""The reference browser app (static/app) in headless Chromium: its messages, footer and file
picker, and the account settings (two-step verification, recovery codes, email, password).

The servers, the browser and the page come from test_webapp.py; mail is real (the `smtp`
fixture), and addresses are verified with the link from the sign-up mail, as a user would.
"""

from __future__ import annotations

import pytest
import test_webapp as webapp
from playwright.sync_api import expect
from test_webapp import TITLE, add_book, app_url, sign_up, status

# The servers, the browser and the page, as test_webapp.py makes them.
api, api_port, app_config, backend = webapp.api, webapp.api_port, webapp.app_config, webapp.backend
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
