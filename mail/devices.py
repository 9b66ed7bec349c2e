"""The "Device:" line of a notice: the browser and system a User-Agent header names, in words
from a fixed list. Never the header's own text: the client chose it, and a mail would carry it
to the account's owner ("Device: Your account is locked, unlock it at ...").

A table of tokens rather than a parsing library: such libraries name some agents with text
captured from the header itself, which would bring the header's words back into the mail."""

from __future__ import annotations

# First match wins: browsers name the engines and browsers they are built on as well
# (Edge says "Chrome/" and "Safari/", Chrome says "Safari/").
BROWSERS: tuple[tuple[str, str], ...] = (
    ("Edg/", "Edge"),
    ("EdgA/", "Edge"),
    ("EdgiOS/", "Edge"),
    ("OPR/", "Opera"),
    ("SamsungBrowser/", "Samsung Internet"),
    ("YaBrowser/", "Yandex Browser"),
    ("Vivaldi/", "Vivaldi"),
    ("Firefox/", "Firefox"),
    ("FxiOS/", "Firefox"),
    ("CriOS/", "Chrome"),
    ("Chromium/", "Chromium"),
    ("Chrome/", "Chrome"),
    ("Safari/", "Safari"),
    ("PostmanRuntime/", "Postman"),
    ("curl/", "curl"),
    ("python-requests/", "Python requests"),
    ("okhttp/", "OkHttp"),
)
# Android and ChromeOS say "Linux" too, iOS says "like Mac OS X".
SYSTEMS: tuple[tuple[str, str], ...] = (
    ("Windows", "Windows"),
    ("iPhone", "iOS"),
    ("iPad", "iPadOS"),
    ("CrOS", "ChromeOS"),
    ("Android", "Android"),
    ("Mac OS X", "macOS"),
    ("Macintosh", "macOS"),
    ("Linux", "Linux"),
    ("FreeBSD", "FreeBSD"),
)


def _first(user_agent: str, table: tuple[tuple[str, str], ...]) -> str | None:
    return next((name for token, name in table if token in user_agent), None)


def describe(user_agent: str | None) -> str:
    """ "Chrome on Linux", "Firefox", "A browser on Android", or "Unknown": words from the
    tables above only."""
    browser = _first(user_agent or "", BROWSERS)
    system = _first(user_agent or "", SYSTEMS)
    if browser and system:
        return f"{browser} on {system}"
    if system:
        return f"A browser on {system}"
    return browser or "Unknown"
