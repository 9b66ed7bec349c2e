"""Screenshots of the reference browser app's main screens, into docs/screenshots/.

    .venv/bin/python docs/screenshots.py

Starts the API on an embedded database in a temporary folder, fills a library, drives the app
in headless Chromium (the system's `chromium`, as the browser tests do) and writes small
palette PNGs, 1000 pixels wide (the phone view 390).
"""

from __future__ import annotations

import io
import os
import shutil
import sys
import tempfile
import threading

from PIL import Image, ImageDraw, ImageFont
from playwright.sync_api import expect, sync_playwright
from secantus import SecantusDBServer  # GPL-2.0: a development tool, like the tests
from werkzeug.serving import make_server

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ["PYTHON_DOTENV_DISABLED"] = "1"

from app import create_app  # noqa: E402
from database.client import state as database_state  # noqa: E402

OUT = os.path.join(ROOT, "docs", "screenshots")
PASSWORD = "Str0ng!pass"
EMAIL = "ada@example.com"
BOOKS = [
    ("Where the Wild Things Are", "picture book", "Max sails to where the wild things are.", (214, 120, 52)),
    ("Gone Girl", "thriller", "A marriage, a disappearance, two unreliable narrators.", (40, 44, 52)),
    ("The Prince", "politics", "Machiavelli on getting and keeping power.", (120, 30, 40)),
    ("Pride and Prejudice", "romance", "Elizabeth Bennet and Mr Darcy misjudge each other.", (196, 140, 160)),
    ("Dracula", "horror", "Letters and diaries from Transylvania to Whitby.", (70, 10, 20)),
    ("Leaves of Grass", "poetry", "Whitman's song of himself, revised for a lifetime.", (90, 130, 70)),
    ("The Hobbit", "fantasy", "There and back again, with a dragon in between.", (30, 90, 60)),
    ("A Brief History of Time", "science", "From the Big Bang to black holes.", (20, 40, 90)),
    ("The Left Hand of Darkness", "fantasy", "An envoy on a planet of ice.", (150, 170, 190)),
    ("Beloved", "romance", "A house haunted by what was done to survive.", (110, 70, 40)),
    ("Cosmos", "science", "Carl Sagan's personal voyage.", (50, 20, 80)),
    ("The Raven", "poetry", "Quoth the Raven, nevermore.", (25, 25, 30)),
    ("Rebecca", "thriller", "Last night I dreamt I went to Manderley again.", (60, 90, 110)),
    ("Dune", "science", "Spice, sand and the fate of an empire.", (200, 150, 80)),
]


def cover(title: str, colour: tuple[int, int, int]) -> bytes:
    """A simple book cover: a coloured board with the title."""
    image = Image.new("RGB", (200, 300), colour)
    draw = ImageDraw.Draw(image)
    draw.rectangle((12, 12, 187, 287), outline=(255, 255, 255), width=2)
    font = ImageFont.load_default(size=34)
    words, lines = title.split(), [""]
    for word in words:
        candidate = f"{lines[-1]} {word}".strip()
        if draw.textlength(candidate, font=font) > 160 and lines[-1]:
            lines.append(word)
        else:
            lines[-1] = candidate
    y = 150 - 22 * len(lines)
    for line in lines:
        draw.text((100, y), line, font=font, fill=(255, 255, 255), anchor="mt")
        y += 44
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def fill_library(app) -> None:
    client = app.test_client()
    account = {"name": "Ada Lovelace", "email": EMAIL, "password": PASSWORD}
    assert client.post("/users/", json=account).status_code == 201
    devices = [
        ("Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0", "192.0.2.10"),
        ("curl/8.5.0", "198.51.100.7"),
    ]
    token = None
    for agent, address in devices:
        response = client.post(
            "/users/login",
            json={"email": EMAIL, "password": PASSWORD},
            headers={"User-Agent": agent},
            environ_base={"REMOTE_ADDR": address},
        )
        token = response.get_json()["data"]["token"]
    for title, category, description, colour in BOOKS:
        form = {
            "title": title,
            "category": category,
            "description": description,
            "cover_image": (io.BytesIO(cover(title, colour)), "cover.png"),
        }
        response = client.post("/books/", data=form, headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 201, response.get_json()


def save(page, name: str, **options) -> None:
    """A screenshot as a palette PNG: a fraction of the size, no visible loss for flat UI."""
    raw = Image.open(io.BytesIO(page.screenshot(**options))).convert("RGB")
    small = raw.quantize(colors=128, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    path = os.path.join(OUT, f"{name}.png")
    small.save(path, optimize=True)
    print(f"{os.path.relpath(path, ROOT)}: {raw.width}x{raw.height}, {os.path.getsize(path) // 1024} KiB")


def shoot(browser, base: str) -> None:
    context = browser.new_context(viewport={"width": 1000, "height": 720}, color_scheme="light")
    page = context.new_page()
    page.goto(f"{base}/app/")
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    page.get_by_label("Email").fill(EMAIL)
    save(page, "login")

    page.get_by_role("button", name="Create an account").click()
    page.get_by_label("Name").fill("Ada")
    page.get_by_label("Email").fill("ada@example")
    page.get_by_label("Password").fill("password")
    page.get_by_role("button", name="Create account", exact=True).click()
    expect(page.get_by_label("Password")).to_have_attribute("aria-invalid", "true")
    page.locator("body").click(position={"x": 5, "y": 700})  # no focus ring in the picture
    save(page, "sign-up-errors")

    page.get_by_role("button", name="Log in instead").click()
    page.get_by_label("Email").fill(EMAIL)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in", exact=True).click()
    expect(page.get_by_role("list", name="Books").get_by_role("article")).to_have_count(12)
    page.wait_for_load_state("networkidle")
    save(page, "books", full_page=True)

    page.get_by_role("button", name="Edit Dune", exact=True).click()
    dialog = page.get_by_role("dialog", name="Edit “Dune”")
    dialog.get_by_label("Description").fill("Spice, sand and the fate of an empire. Book one of six.")
    new_cover = cover("Dune", (170, 110, 50))
    dialog.get_by_label("Cover image").set_input_files(
        files=[{"name": "dune.png", "mimeType": "image/png", "buffer": new_cover}]
    )
    expect(dialog.get_by_role("img", name="Preview of the chosen cover")).to_be_visible()
    save(page, "edit-book")
    dialog.get_by_role("button", name="Cancel").click()

    page.get_by_role("button", name="Sessions", exact=True).click()
    expect(page.get_by_role("list", name="Sessions").get_by_role("listitem")).to_have_count(3)
    save(page, "sessions")

    page.get_by_role("button", name="Settings", exact=True).click()
    expect(page.get_by_role("region", name="Email address")).to_contain_text(EMAIL)
    save(page, "settings", full_page=True)
    context.close()

    phone = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=1, is_mobile=True)
    page = phone.new_page()
    page.goto(f"{base}/app/")
    page.get_by_label("Email").fill(EMAIL)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in", exact=True).click()
    expect(page.get_by_role("list", name="Books").get_by_role("article")).to_have_count(12)
    page.wait_for_load_state("networkidle")
    save(page, "books-phone")
    phone.close()


def main() -> None:
    chromium = shutil.which("chromium")
    if chromium is None:
        sys.exit("Chromium not found: apt-get install chromium")
    os.makedirs(OUT, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder, SecantusDBServer(storage_path=folder, port=0) as database:
        app = create_app(
            {
                "SECRET_KEY": "screenshots-only-key-" + "x" * 32,
                "INSTANCE_PATH": os.path.join(folder, "instance"),
                "DATABASE_URL": database.uri.rstrip("/") + "/screenshots",
                "UPLOAD_FOLDER": os.path.join(folder, "covers"),
                "RATELIMIT_ENABLED": False,
                "REQUEST_LOG": False,
            }
        )
        fill_library(app)
        server = make_server("127.0.0.1", 0, app, threaded=True)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=chromium, headless=True)
                try:
                    shoot(browser, f"http://localhost:{server.server_port}")
                finally:
                    browser.close()
        finally:
            server.shutdown()
            server.server_close()
            client = database_state(app).client
            if client is not None:
                client.close()


if __name__ == "__main__":
    main()
