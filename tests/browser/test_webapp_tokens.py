"""The reference browser app's Tokens page (issue 20) in headless Chromium: create a personal
access token, see its secret once and copy it, list it, revoke it. The page and the API are
served as in test_webapp.py, whose fixtures this module uses."""

from __future__ import annotations

import re

import pytest

pytest.importorskip("playwright")

import test_webapp as webapp  # noqa: E402
from playwright.sync_api import expect  # noqa: E402

from helpers import PASSWORD, bearer  # noqa: E402

# test_webapp's fixtures: the API in a real HTTP server on a real database, Chromium, a page.
backend, api_port, api, browser, page = webapp.backend, webapp.api_port, webapp.api, webapp.browser, webapp.page
sign_up, status = webapp.sign_up, webapp.status


@pytest.fixture
def app_config():
    return {"REQUEST_LOG": False}


def open_tokens(page, api):
    page.goto(f"{api}/app/")
    sign_up(page, "ada@example.com")
    page.get_by_role("navigation", name="Main").get_by_role("button", name="Tokens").click()
    expect(page.get_by_role("heading", name="Personal access tokens")).to_be_focused()


def test_a_token_is_created_shown_once_copied_listed_and_revoked(page, api, app):
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    open_tokens(page, api)
    expect(page.get_by_text("No tokens yet.")).to_be_visible()
    page.get_by_label("Name").fill("nightly backup")
    page.get_by_label("Add, change and delete your books (books:write)").check()
    page.get_by_label("Expires after").select_option("7")
    page.get_by_label("Your password").fill(PASSWORD)
    page.get_by_role("button", name="Create token").click()

    secret_field = page.get_by_label("Your new token")
    expect(secret_field).to_be_focused()
    expect(secret_field).to_have_value(re.compile(r"^blpat_[0-9A-Za-z]{46}$"))
    secret = secret_field.input_value()
    expect(status(page)).to_contain_text("Copy it now: it is not shown again.")
    page.get_by_role("button", name="Copy token").click()
    expect(status(page)).to_have_text("Token copied.")
    assert page.evaluate("navigator.clipboard.readText()") == secret

    # The secret works for a script, within its scopes.
    client = app.test_client()
    assert client.get("/books/", headers=bearer(secret)).status_code == 200

    tokens = page.get_by_role("list", name="Tokens").get_by_role("listitem")
    expect(tokens).to_have_count(1)
    expect(tokens.first).to_contain_text("nightly backup")
    expect(tokens.first).to_contain_text("books:read, books:write · " + secret[:10] + "…")
    expect(tokens.first).to_contain_text("Expires within a week")
    # Shown once: a reload lists the token, never its secret again.
    page.reload()
    page.get_by_role("navigation", name="Main").get_by_role("button", name="Tokens").click()
    expect(tokens).to_have_count(1)
    assert secret not in page.content()

    tokens.first.get_by_role("button", name="Revoke nightly backup").click()
    expect(status(page)).to_have_text("Revoked the token “nightly backup”.")
    expect(tokens).to_have_count(0)
    assert client.get("/books/", headers=bearer(secret)).status_code == 401


def test_a_wrong_password_or_no_scope_is_said_beside_the_form(page, api):
    open_tokens(page, api)
    page.get_by_label("Name").fill("backup")
    page.get_by_label("Your password").fill("Wr0ng!password")
    page.get_by_role("button", name="Create token").click()
    expect(page.get_by_role("alert")).to_have_text("Invalid email or password.")
    page.get_by_label("Read your books (books:read)").uncheck()
    page.get_by_label("Your password").fill(PASSWORD)
    page.get_by_role("button", name="Create token").click()
    expect(page.get_by_role("alert")).to_contain_text("Give one or more scopes")
    expect(page.get_by_role("list", name="Tokens").get_by_role("listitem")).to_have_count(0)
