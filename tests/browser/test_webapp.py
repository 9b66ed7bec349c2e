"""The reference browser app (static/app) in headless Chromium, driven by Playwright.

The API runs in a real HTTP server in a thread; the app is loaded from the API (/app/, same
origin) or from a second origin served by http.server with its own config.js and the policy
docs/browser-app.md gives, in token mode and in cookie mode. The
page's clock is Playwright's; the server's clock is moved with time-machine, so expiry is
reached without waiting.
"""

from __future__ import annotations

import functools
import json
import os
import re
import secrets
import shutil
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pyotp
import pytest

CHROMIUM = shutil.which("chromium")
if CHROMIUM is None:
    pytest.skip("Chromium not found: apt-get install chromium", allow_module_level=True)

from playwright.sync_api import expect, sync_playwright  # noqa: E402
from werkzeug.serving import make_server  # noqa: E402

from database.client import state as database_state  # noqa: E402
from helpers import PASSWORD, ROOT, bearer, book_form, free_port, image_bytes, limits, text_body  # noqa: E402
from mail.sender import send_due  # noqa: E402

APP_FOLDER = os.path.join(ROOT, "static", "app")
ACCESS_SECONDS = 60
# Past the access token's lifetime and the server's leeway.
PAST_EXPIRY = timedelta(seconds=ACCESS_SECONDS + 10)
NAME, TITLE = "Ada Lovelace", "Dune"


# --- servers and the browser --------------------------------------------------------------------


def documented_policy() -> str:
    """The Content-Security-Policy docs/browser-app.md gives for serving the app elsewhere."""
    with open(os.path.join(ROOT, "docs", "browser-app.md"), encoding="utf-8") as doc:
        return re.search(r"^Content-Security-Policy: (.+)$", doc.read(), re.MULTILINE).group(1)


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class DeployedAppHandler(QuietHandler):
    """static/app as deployed apart from the API: its own config.js, naming the API, and the
    documented policy with the API's origin in it."""

    def do_GET(self):
        if urlsplit(self.path).path == "/config.js":
            body = f"export const config = {{ api: {json.dumps(self.server.api)} }};\n".encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/javascript")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            super().do_GET()

    def end_headers(self):
        self.send_header("Cache-Control", "no-store")  # the next test configures another API
        if self.server.policy:
            api = urlsplit(self.server.api)
            policy = self.server.policy.replace("https://api.example.com", f"{api.scheme}://{api.netloc}")
            self.send_header("Content-Security-Policy", policy)
        super().end_headers()


class SecondOrigin(ThreadingHTTPServer):
    """The second origin's server; each test sets what its config.js names and its policy."""

    api = ""
    policy = ""

    def configure(self, api: str, policy: bool = True) -> str:
        """Deploy the app here configured for `api`, under the documented policy or none; its address."""
        self.api, self.policy = api, documented_policy() if policy else ""
        return f"http://localhost:{self.server_port}/index.html"


@pytest.fixture(scope="module")
def second_origin():
    """static/app served by a plain static server: the app as deployed apart from the API."""
    server = SecondOrigin(("127.0.0.1", 0), functools.partial(DeployedAppHandler, directory=APP_FOLDER))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture(scope="module")
def other_origin(second_origin):
    return f"http://localhost:{second_origin.server_port}"


class AttackerHandler(BaseHTTPRequestHandler):
    """Records every request and answers like an API that lets any origin call it."""

    def log_message(self, *args):
        pass

    def do_OPTIONS(self):
        self._answer(204)

    def do_GET(self):
        self._answer(200, {"message": "", "data": {}})

    def do_POST(self):
        self._answer(401, {"message": "Invalid email or password."})

    def _answer(self, status, body=None):
        sent = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        self.server.requests.append((self.command, self.path, sent))
        data = json.dumps(body).encode() if body else b""
        self.send_response(status)
        self.send_header("Access-Control-Allow-Origin", self.headers.get("Origin") or "*")
        self.send_header("Access-Control-Allow-Credentials", "true")
        self.send_header("Access-Control-Allow-Headers", "*")
        self.send_header("Access-Control-Allow-Methods", "GET, POST")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def attacker():
    """A server a link might name as the API; `requests` is what reached it."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), AttackerHandler)
    server.requests = []
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def backend():
    """A real database server: the HTTP server below answers the browser from several threads."""
    return "secantus"


@pytest.fixture(params=["token", "cookie"])
def mode(request):
    return request.param


@pytest.fixture
def settings():
    """Settings one test adds (it parametrises this): the app reads them once, when it is made."""
    return {}


@pytest.fixture
def app_config(mode, other_origin, settings):
    return {
        "REFRESH_TOKEN_COOKIE": mode == "cookie",
        "CORS_ORIGINS": other_origin,
        "ACCESS_TOKEN_EXPIRES_SECONDS": ACCESS_SECONDS,
        "REQUEST_LOG": False,
        **settings,
    }


@pytest.fixture
def api_port(app):
    """The API in a real HTTP server on 127.0.0.1; its port."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    # A short poll: shutdown() waits for it.
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server.server_port
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def api(api_port):
    # localhost, not 127.0.0.1: the second origin is on localhost too, so both are one site.
    return f"http://localhost:{api_port}"


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def server_clock(time_machine):
    """The server's clock (this process's), running, that a test moves forward; the page's clock
    is Playwright's."""
    time_machine.move_to(datetime.now(UTC), tick=True)
    return time_machine


class Traffic:
    """The API responses the page received, and the errors it logged."""

    def __init__(self, page, api: str):
        self.api, self.responses, self.errors = api, [], []
        page.on("response", self._response)
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.on("console", self._console)

    def _response(self, response):
        path = response.url[len(self.api) :] if response.url.startswith(self.api) else ""
        if path and not path.startswith(("/app/", "/static/")):  # API calls, not the app's files or covers
            self.responses.append((response.request.method, path, response.status))

    def _console(self, message):
        # Chromium logs every 4xx answer; the app's own errors and policy violations are what count.
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            self.errors.append(message.text)


@pytest.fixture
def page(browser, api):
    context = browser.new_context(viewport={"width": 1000, "height": 760})
    context.set_default_timeout(10_000)
    page = context.new_page()
    page.traffic = Traffic(page, api)
    yield page
    context.close()
    assert page.traffic.errors == []


def app_url(origin: str | SecondOrigin, api: str) -> str:
    if origin == "same":
        return f"{api}/app/"
    return origin.configure(api)


# --- what a user does -------------------------------------------------------------------------


def status(page):
    return page.get_by_role("status")


def sign_up(page, email, name=NAME):
    page.get_by_role("button", name="Create an account").click()
    page.get_by_label("Name").fill(name)
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Create account", exact=True).click()
    expect(page.get_by_role("heading", name="Your books")).to_be_visible()
    # The empty list has loaded: no request is in flight when a test moves the server's clock.
    expect(page.get_by_text("No books here yet.")).to_be_visible()


def log_in(page, email, password=PASSWORD):
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in", exact=True).click()


def fill_book(dialog, title=None, category=None, description=None, cover=None, filename="cover.png"):
    if title is not None:
        dialog.get_by_label("Title").fill(title)
    if category is not None:
        dialog.get_by_label("Category").select_option(category)
    if description is not None:
        dialog.get_by_label("Description").fill(description)
    if cover is not None:
        dialog.get_by_label("Cover image").set_input_files(
            files=[{"name": filename, "mimeType": "image/png", "buffer": cover}]
        )


def watch_progress(dialog):
    """Record every value the dialog's upload progress bar shows."""
    dialog.get_by_label("Upload progress").evaluate(
        """bar => {
            window.progressShown = [];
            new MutationObserver(() => window.progressShown.push(bar.value))
                .observe(bar, {attributes: true, attributeFilter: ["value"]});
        }"""
    )


def add_book(page, title=TITLE, category="science", description="Spice and sand.", cover=None):
    page.get_by_role("button", name="Add a book").click()
    dialog = page.get_by_role("dialog", name="Add a book")
    fill_book(dialog, title, category, description, cover or image_bytes(size=(300, 200)))
    watch_progress(dialog)
    dialog.get_by_role("button", name="Save book").click()
    expect(dialog).to_be_hidden()
    expect(status(page)).to_have_text(f"Added “{title}”.")
    assert page.evaluate("Math.max(...window.progressShown)") == 100


def book(page, title):
    return page.get_by_role("list", name="Books").get_by_role("article", name=title, exact=True)


def expect_cover_shown(page, title):
    cover = book(page, title).get_by_role("img", name=f"Cover of {title}")
    expect(cover).to_be_visible()
    cover.element_handle().wait_for_element_state("stable")
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=cover.element_handle())


def api_login(client, email) -> str:
    """A second session of the same user, from another client; its access token."""
    response = client.post(
        "/users/login", json={"email": email, "password": PASSWORD}, headers={"User-Agent": "curl/8.5.0"}
    )
    assert response.status_code == 200, response.get_json()
    return response.get_json()["data"]["token"]


def add_books_over_http(client, token, count):
    for number in range(count):
        form = book_form(title=f"Book {number:02d}", category="poetry", description="")
        assert client.post("/books/", data=form, headers=bearer(token)).status_code == 201


# --- the whole flow ---------------------------------------------------------------------------------


def edit_the_book(page):
    page.get_by_role("button", name=f"Edit {TITLE}", exact=True).click()
    dialog = page.get_by_role("dialog", name=f"Edit “{TITLE}”")
    expect(dialog.get_by_label("Title")).to_have_value(TITLE)
    fill_book(dialog, title="Dune Messiah", category="fantasy", cover=image_bytes(color=(20, 90, 200)))
    watch_progress(dialog)
    dialog.get_by_role("button", name="Save book").click()
    expect(status(page)).to_have_text("Saved “Dune Messiah”.")
    assert page.evaluate("Math.max(...window.progressShown)") == 100
    expect(book(page, "Dune Messiah")).to_contain_text("fantasy")
    expect_cover_shown(page, "Dune Messiah")


def outlive_the_access_token(page, server_clock):
    """The laptop slept past the access token's expiry: the next request is refused, the app
    refreshes once and repeats it, and the user sees nothing of it."""
    pages = page.get_by_role("navigation", name="Pages")
    server_clock.shift(PAST_EXPIRY)
    pages.get_by_role("button", name="Next page").click()
    expect(pages).to_contain_text("Page 2")
    expect(book(page, "Dune Messiah")).to_be_visible()
    expect(pages.get_by_role("button", name="Next page")).to_be_disabled()
    # The second page by cursor: the first page's meta.next_cursor.
    (method, second_page, status), refreshed, again = page.traffic.responses[-3:]
    assert (method, status) == ("GET", 401)
    assert second_page.startswith("/books/?limit=12&after=")
    assert refreshed == ("POST", "/users/token/refresh", 200)
    assert again == ("GET", second_page, 200)


def end_the_other_session(page, client, other_token):
    page.get_by_role("button", name="Sessions", exact=True).click()
    sessions = page.get_by_role("list", name="Sessions").get_by_role("listitem")
    expect(sessions).to_have_count(2)
    expect(sessions.filter(has_text="(this session)")).to_contain_text("Chrome on Linux")
    sessions.filter(has_text="curl").get_by_role("button", name="End this session").click()
    expect(status(page)).to_have_text("Ended the session of curl.")
    expect(sessions).to_have_count(1)
    assert client.get("/users/", headers=bearer(other_token)).status_code == 401


def delete_the_last_book_of_page_two(page):
    pages = page.get_by_role("navigation", name="Pages")
    page.get_by_role("button", name="Books", exact=True).click()
    expect(pages).to_contain_text("Page 2")  # where the user left the list
    page.get_by_role("button", name="Delete Dune Messiah", exact=True).click()
    page.get_by_role("dialog", name="Delete “Dune Messiah”?").get_by_role("button", name="Delete book").click()
    expect(status(page)).to_have_text("Deleted “Dune Messiah”.")
    # The second page emptied: the app shows the first.
    expect(pages).to_be_hidden()
    expect(page.get_by_role("list", name="Books").get_by_role("article")).to_have_count(12)


def log_out_and_in_again(page, email):
    page.get_by_role("button", name="Log out", exact=True).click()
    expect(status(page)).to_have_text("You are logged out.")
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    assert not [c for c in page.context.cookies() if c["name"] == "refresh_token"]
    page.reload()
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()

    log_in(page, email)
    expect(status(page)).to_have_text(f"Welcome back, {NAME}.")
    expect(page.get_by_role("list", name="Books").get_by_role("article")).to_have_count(12)


@pytest.mark.parametrize("origin", ["same", "other"])
def test_full_flow(page, app, api, mode, origin, second_origin, server_clock):
    """Sign up, add, edit, page, outlive the access token, end a session, delete, reload, log out, log in."""
    email = f"ada-{mode}-{origin}@example.com"
    page.goto(app_url(second_origin if origin == "other" else "same", api))
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    sign_up(page, email)
    expect(status(page)).to_have_text(f"Account created. Welcome, {NAME}.")
    expect(page.get_by_role("navigation", name="Main")).to_contain_text(NAME)

    add_book(page)
    expect_cover_shown(page, TITLE)
    expect(book(page, TITLE)).to_contain_text("Spice and sand.")
    edit_the_book(page)

    # Another client of the same user adds twelve books: two pages of twelve.
    client = app.test_client()
    other_token = api_login(client, email)
    add_books_over_http(client, other_token, 12)
    page.get_by_role("button", name="Books", exact=True).click()
    expect(page.get_by_role("navigation", name="Pages")).to_contain_text("Page 1")

    outlive_the_access_token(page, server_clock)
    end_the_other_session(page, client, other_token)
    delete_the_last_book_of_page_two(page)
    page.reload()  # the session survives a reload
    expect(page.get_by_role("heading", name="Your books")).to_be_visible()
    log_out_and_in_again(page, email)


# --- tokens ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("origin", ["same", "other"])
def test_access_token_is_renewed_before_it_expires(page, api, mode, origin, second_origin, server_clock):
    page.clock.install()
    page.goto(app_url(second_origin if origin == "other" else "same", api))
    sign_up(page, f"renew-{mode}-{origin}@example.com")

    # Four fifths of the token's lifetime pass on both clocks: the app renews it on its own.
    server_clock.shift(timedelta(seconds=ACCESS_SECONDS * 0.8))
    with page.expect_response(lambda response: response.url.endswith("/users/token/refresh")) as refreshed:
        page.clock.fast_forward(ACCESS_SECONDS * 800)
    assert refreshed.value.status == 200

    # Past the first token's expiry, the new one is what the app sends: no request is refused.
    server_clock.shift(PAST_EXPIRY - timedelta(seconds=ACCESS_SECONDS * 0.8))
    page.get_by_role("button", name="Sessions", exact=True).click()
    expect(page.get_by_role("list", name="Sessions").get_by_role("listitem")).to_have_count(1)
    assert [status for *_, status in page.traffic.responses if status >= 400] == []


@pytest.mark.parametrize("mode", ["token"])
def test_refresh_token_is_kept_by_the_tab_in_token_mode(page, api):
    page.goto(app_url("same", api))
    sign_up(page, "tab@example.com")

    stored = page.evaluate("[sessionStorage.getItem('book-library.refresh-token'), JSON.stringify(localStorage)]")
    assert stored[0] and stored[1] == "{}"


@pytest.mark.parametrize("mode", ["cookie"])
@pytest.mark.parametrize("origin", ["same", "other"])
def test_refresh_token_is_out_of_the_pages_reach_in_cookie_mode(page, api, origin, second_origin):
    page.goto(app_url(second_origin if origin == "other" else "same", api))
    sign_up(page, f"cookie-{origin}@example.com")

    cookie = next(c for c in page.context.cookies(f"{api}/users/token/refresh") if c["name"] == "refresh_token")
    assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Strict"
    readable = page.evaluate("document.cookie + JSON.stringify(sessionStorage) + JSON.stringify(localStorage)")
    assert cookie["value"] not in readable


@pytest.mark.parametrize("mode", ["cookie"])
def test_cookie_mode_across_sites_says_why_the_session_cannot_be_renewed(page, api_port, second_origin, server_clock):
    """127.0.0.1 and localhost are different sites: the SameSite refresh cookie is never sent."""
    page.goto(second_origin.configure(f"http://127.0.0.1:{api_port}"))
    sign_up(page, "cross-site@example.com")

    server_clock.shift(PAST_EXPIRY)
    page.get_by_role("button", name="Sessions", exact=True).click()

    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    expect(page.get_by_role("alert")).to_contain_text(
        f"Your browser did not send the refresh cookie to http://127.0.0.1:{api_port}. "
        "In cookie mode the app and the API must be on the same site"
    )


def test_a_link_cannot_send_the_login_or_the_session_elsewhere(page, app, api, mode, second_origin, attacker):
    """Deployed elsewhere without the policy's help, the app still talks only to the API it was
    configured with: the password and the tokens never reach the origin a link names."""
    email = f"link-{mode}@example.com"
    sign_up_over_http(app.test_client(), email)
    elsewhere = f"http://127.0.0.1:{attacker.server_port}"
    page.goto(f"{second_origin.configure(api, policy=False)}?api={elsewhere}")

    with page.expect_response(lambda response: response.url.endswith("/users/login")) as login:
        log_in(page, email)
    assert attacker.requests == []
    assert (login.value.url, login.value.status) == (f"{api}/users/login", 200)
    expect(status(page)).to_have_text(f"Welcome back, {NAME}.")

    # A logged-in tab opened again from the link resumes its session with the same API.
    with page.expect_response(lambda response: response.url.endswith("/users/token/refresh")) as refreshed:
        page.reload()
    expect(page.get_by_role("heading", name="Your books")).to_be_visible()
    assert (refreshed.value.url, refreshed.value.status) == (f"{api}/users/token/refresh", 200)
    assert attacker.requests == []


# --- second factor --------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["token"])
def test_login_with_the_second_factor(page, app, api):
    client = app.test_client()
    email = "mfa@example.com"
    assert client.post("/users/", json={"name": NAME, "email": email, "password": PASSWORD}).status_code == 201
    # Two-factor needs a proven address (the verification link's page is tested below).
    database_state(app).db.users.update_one({"email": email}, {"$set": {"email_verified": True}})
    token = api_login(client, email)
    enrolment = client.post("/users/mfa/totp", json={"password": PASSWORD}, headers=bearer(token))
    secret = enrolment.get_json()["data"]["secret"]
    totp = pyotp.TOTP(secret)
    assert client.post("/users/mfa/totp/verify", json={"code": totp.now()}, headers=bearer(token)).status_code == 200

    page.goto(app_url("same", api))
    log_in(page, email)
    expect(page.get_by_role("heading", name="Two-step verification")).to_be_visible()
    page.get_by_label("Code").fill("000000" if totp.now() != "000000" else "111111")
    page.get_by_role("button", name="Verify").click()
    expect(page.get_by_role("alert")).to_have_text("The code is not valid.")

    # The code of the next 30-second step: the one enrolment used cannot be used twice.
    page.get_by_label("Code").fill(totp.at(time.time() + totp.interval))
    page.get_by_role("button", name="Verify").click()
    expect(status(page)).to_have_text(f"Welcome back, {NAME}.")
    expect(page.get_by_role("heading", name="Your books")).to_be_visible()


# --- errors ------------------------------------------------------------------------------------


@pytest.fixture
def signed_up(page, api):
    page.goto(app_url("same", api))
    sign_up(page, "errors@example.com")
    return page


@pytest.mark.parametrize("mode", ["token"])
def test_book_errors_are_shown_beside_their_fields(signed_up, app):
    page = signed_up
    page.get_by_role("button", name="Add a book").click()
    dialog = page.get_by_role("dialog", name="Add a book")
    fill_book(dialog, title="  ", description="x" * 10)
    dialog.get_by_role("button", name="Save book").click()

    expect(dialog.get_by_label("Title")).to_have_attribute("aria-invalid", "true")
    expect(dialog.get_by_label("Title")).to_have_accessible_description("Title must be 1 to 200 characters.")
    expect(dialog.get_by_label("Category")).to_have_accessible_description(
        "Category must be one of: romance, poetry, politics, picture book, science, fantasy, horror, thriller."
    )
    expect(dialog.get_by_label("Cover image")).to_have_accessible_description(
        "A cover image file is required. JPEG, PNG, GIF or WebP, up to 5 MB."
    )
    expect(dialog.get_by_label("Title")).to_be_focused()
    # The marked fields say it all: no "The request has invalid fields." above them.
    expect(dialog.get_by_role("alert")).to_be_hidden()

    fill_book(dialog, title=TITLE, category="science", cover=b"not an image", filename="cover.txt")
    dialog.get_by_role("button", name="Save book").click()
    expect(dialog.get_by_label("Cover image")).to_have_accessible_description(
        "Cover image must be a JPEG, PNG, GIF or WebP image. JPEG, PNG, GIF or WebP, up to 5 MB."
    )
    expect(dialog.get_by_label("Title")).not_to_have_attribute("aria-invalid", "true")

    app.config["MAX_CONTENT_LENGTH"] = 50_000
    fill_book(dialog, cover=os.urandom(100_000))
    dialog.get_by_role("button", name="Save book").click()
    expect(dialog.get_by_role("alert")).to_have_text(
        "The data value transmitted exceeds the capacity limit. Choose a smaller file."
    )
    dialog.get_by_role("button", name="Cancel").click()

    add_book(page)
    page.get_by_role("button", name="Add a book").click()
    fill_book(dialog, TITLE.upper(), "fantasy", "", image_bytes())
    dialog.get_by_role("button", name="Save book").click()
    expect(dialog.get_by_role("alert")).to_have_text("You already have a book with this title.")


@pytest.mark.parametrize("mode", ["token"])
def test_account_errors_are_the_apis_messages(page, api):
    page.goto(app_url("same", api))
    sign_up(page, "taken@example.com")
    page.get_by_role("button", name="Log out", exact=True).click()

    log_in(page, "taken@example.com", password="Wr0ng!password")
    expect(page.get_by_role("alert")).to_have_text("Invalid email or password.")

    page.get_by_role("button", name="Create an account").click()
    page.get_by_label("Name").fill("Ada")
    page.get_by_label("Email").fill("taken@example.com")
    page.get_by_label("Password").fill("password")
    page.get_by_role("button", name="Create account", exact=True).click()
    expect(page.get_by_label("Name")).to_have_accessible_description(
        "Name must be 2 to 30 words and at most 300 characters. Your first and last name."
    )
    expect(page.get_by_label("Password")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_role("alert")).to_be_hidden()

    page.get_by_label("Name").fill(NAME)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Create account", exact=True).click()
    expect(page.get_by_role("alert")).to_have_text("An account with this email already exists.")


@pytest.mark.parametrize("mode", ["token"])
@pytest.mark.parametrize("settings", [limits(LOGIN_RATE_LIMIT="2 per minute")], ids=["limits"])
def test_too_many_logins_say_when_to_try_again(page, api):
    page.goto(app_url("same", api))
    for _ in range(2):
        log_in(page, "nobody@example.com")
        expect(page.get_by_role("alert")).to_have_text("Invalid email or password.")

    log_in(page, "nobody@example.com")

    expect(page.get_by_role("alert")).to_have_text(
        re.compile(r"Too many requests; try again later\. You can try again in \d+ seconds?\.")
    )


@pytest.mark.parametrize("mode", ["token"])
def test_an_api_that_cannot_be_reached_is_named(page, second_origin, other_origin):
    closed = f"http://localhost:{free_port()}"
    page.goto(second_origin.configure(closed))

    expect(page.get_by_role("alert")).to_have_text(
        f"Cannot reach the API at {closed}. Check that it is running and that its CORS_ORIGINS lists {other_origin}."
    )
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()


# --- mailed links ------------------------------------------------------------------------------

PUBLIC_URL = "https://books.example.com"
NEW_PASSWORD = "Tr1cky-Gl0ve-Harb0r!"
FORGOT_SENT = "If an account has this address, a link to reset its password is on its way there."
RESET_DONE = "Password changed. Log in with the new password."
INVALID_LINK = "This link is invalid or has expired."
# A link as mailed: the default FRONTEND_URL (PUBLIC_URL + "/app"), a path, and the token in the fragment.
MAILED_LINK = re.compile(re.escape(PUBLIC_URL) + r"(/app/[a-z-]+#token=[\w-]+)")


def mailed_link(app, smtp, api, to, subject_part) -> str:
    """The outbox sends what is due; the link in the newest mail to `to` about `subject_part`,
    on the test server rather than the public address."""
    send_due(app)
    message = [m for m in smtp.to(to) if subject_part in m["Subject"]][-1]
    return api + MAILED_LINK.search(text_body(message)).group(1)


def sign_up_over_http(client, email):
    response = client.post("/users/", json={"name": NAME, "email": email, "password": PASSWORD})
    assert response.status_code == 201, response.get_json()


class TestMailedLinks:
    """The pages mailed links open, with real mail: the outbox is driven with mail.send_due."""

    @pytest.fixture
    def app_config(self, smtp):
        return {"MAIL_URL": smtp.url, "PUBLIC_URL": PUBLIC_URL, "REQUEST_LOG": False}

    @pytest.fixture
    def mode(self):
        return "token"

    def test_a_forgotten_password_is_reset_from_the_mailed_link(self, page, app, api, smtp):
        sign_up_over_http(app.test_client(), "forgot@example.com")
        page.goto(app_url("same", api))
        page.get_by_role("button", name="Forgot your password?").click()
        expect(page.get_by_role("heading", name="Reset your password")).to_be_focused()
        page.get_by_label("Email").fill("forgot@example.com")
        page.get_by_role("button", name="Send reset link").click()
        expect(status(page)).to_have_text(FORGOT_SENT)

        link = mailed_link(app, smtp, api, "forgot@example.com", "Reset your")
        assert link.startswith(f"{api}/app/reset-password#token=")
        page.goto(link)
        expect(page.get_by_role("heading", name="Choose a new password")).to_be_visible()
        assert page.url == f"{api}/app/#/reset-password"  # the token left the address bar

        page.get_by_label("New password", exact=True).fill("password")
        page.get_by_role("button", name="Set new password").click()
        expect(page.get_by_label("New password", exact=True)).to_have_attribute("aria-invalid", "true")
        expect(page.get_by_role("alert")).to_be_hidden()

        page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
        page.get_by_role("button", name="Set new password").click()
        expect(page.get_by_role("heading", name="Log in")).to_be_visible()
        expect(status(page)).to_have_text(RESET_DONE)
        log_in(page, "forgot@example.com", NEW_PASSWORD)
        expect(status(page)).to_have_text(f"Welcome back, {NAME}.")

        # The link works once; logged in or not, a new one is a click away.
        page.goto(link)
        page.get_by_label("New password", exact=True).fill("An0ther-Fine-Passw0rd!")
        page.get_by_role("button", name="Set new password").click()
        expect(page.get_by_role("alert")).to_have_text(INVALID_LINK)
        page.get_by_role("button", name="Ask for a new link").click()
        expect(page.get_by_role("heading", name="Reset your password")).to_be_visible()

    @pytest.mark.parametrize("kind", ["wrong", "expired"])
    def test_a_bad_reset_link_says_so_and_offers_a_new_one(self, page, app, api, smtp, server_clock, kind):
        client = app.test_client()
        sign_up_over_http(client, "bad@example.com")
        assert client.post("/users/password/forgot", json={"email": "bad@example.com"}).status_code == 202
        link = mailed_link(app, smtp, api, "bad@example.com", "Reset your")
        if kind == "wrong":
            link = link.split("#")[0] + "#token=" + secrets.token_urlsafe(32)
        else:
            server_clock.shift(timedelta(minutes=31))  # a reset link lives 30 minutes

        page.goto(link)
        page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
        page.get_by_role("button", name="Set new password").click()

        expect(page.get_by_role("alert")).to_have_text(INVALID_LINK)
        expect(page.get_by_label("New password", exact=True)).to_be_hidden()
        page.get_by_role("button", name="Ask for a new link").click()
        expect(page.get_by_role("heading", name="Reset your password")).to_be_visible()

    def test_a_reset_page_without_its_token_asks_for_a_new_link(self, page, api):
        page.goto(f"{api}/app/reset-password")
        expect(page.get_by_text("This page opens from the link in the mail we sent you")).to_be_visible()
        expect(page.get_by_label("New password", exact=True)).to_be_hidden()
        expect(page.get_by_role("button", name="Ask for a new link")).to_be_visible()

    def test_the_sign_up_mail_verifies_the_address(self, page, app, api, smtp):
        page.goto(app_url("same", api))
        sign_up(page, "verify@example.com")

        link = mailed_link(app, smtp, api, "verify@example.com", "Confirm your email address")
        assert link.startswith(f"{api}/app/verify-email#token=")
        page.goto(link)
        expect(page.get_by_role("heading", name="Verify your email address")).to_be_visible()
        assert page.url == f"{api}/app/#/verify-email"
        page.get_by_role("button", name="Verify email address").click()

        expect(status(page)).to_have_text("Email address verified.")
        page.get_by_role("button", name="Go to your books").click()  # still logged in
        expect(page.get_by_role("heading", name="Your books")).to_be_visible()
        client = app.test_client()
        account = client.get("/users/", headers=bearer(api_login(client, "verify@example.com")))
        assert account.get_json()["data"]["email_verified"] is True

    def test_a_used_verification_link_says_so(self, page, app, api, smtp):
        sign_up_over_http(app.test_client(), "twice@example.com")
        link = mailed_link(app, smtp, api, "twice@example.com", "Confirm your email address")
        assert app.test_client().post("/users/email/verify", json={"token": link.split("=")[-1]}).status_code == 200

        page.goto(link)
        page.get_by_role("button", name="Verify email address").click()

        expect(page.get_by_role("alert")).to_have_text(INVALID_LINK)
        expect(page.get_by_role("button", name="Verify email address")).to_be_hidden()
        expect(page.get_by_role("button", name="Log in")).to_be_focused()

    def test_the_new_address_confirms_an_email_change(self, page, app, api, smtp):
        client = app.test_client()
        sign_up_over_http(client, "old@example.com")
        change = {"email": "new@example.com", "password": PASSWORD}
        assert (
            client.put("/users/email", json=change, headers=bearer(api_login(client, "old@example.com"))).status_code
            == 202
        )

        page.goto(mailed_link(app, smtp, api, "new@example.com", "Confirm your new email address"))
        page.get_by_role("button", name="Verify email address").click()

        expect(status(page)).to_have_text("Email address changed.")
        page.get_by_role("button", name="Log in").click()
        # The verify panel ("...email address") is labelled "Email" too until the login form replaces it.
        expect(page.get_by_role("heading", name="Log in")).to_be_visible()
        log_in(page, "new@example.com")
        expect(status(page)).to_have_text(f"Welcome back, {NAME}.")


# --- keyboard ------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["token"])
def test_the_app_can_be_used_with_the_keyboard_alone(page, api):
    page.goto(app_url("same", api))
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    page.get_by_role("button", name="Create an account").focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Create an account")).to_be_focused()
    for label, text in (("Name", NAME), ("Email", "keys@example.com"), ("Password", PASSWORD)):
        page.keyboard.press("Tab")
        expect(page.get_by_label(label)).to_be_focused()
        page.keyboard.type(text)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Your books")).to_be_visible()

    add = page.get_by_role("button", name="Add a book")
    add.focus()
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog", name="Add a book")
    expect(dialog.get_by_label("Title")).to_be_focused()
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(add).to_be_focused()
