"""Settings the app refuses at start-up, before it serves anything: create_app raises, naming
the setting, and leaves nothing behind (no generated key)."""

from __future__ import annotations

import mongomock
import pytest

from app import create_app
from helpers import OMIT, TEST_SECRET, config_for_tests


def build(tmp_path, **settings):
    return create_app(config_for_tests(tmp_path, MONGO_CLIENT=mongomock.MongoClient(tz_aware=True), **settings))


def build_without_key(instance, **config):
    """An app as the suite builds them, with its instance folder here and, unless given, no signing key."""
    return build(instance.parent, INSTANCE_PATH=str(instance), **{"SECRET_KEY": OMIT, **config})


def files_under(path) -> list:
    return [p for p in path.rglob("*") if p.is_file()] if path.exists() else []


# --- the signing key -----------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["config", "environment"])
def test_production_without_secret_key_refuses_to_start(tmp_path, clean_env, how):
    instance = tmp_path / "instance"
    if how == "environment":
        clean_env.setenv("APP_ENV", "production")
        config = {}
    else:
        config = {"APP_ENV": "production"}

    with pytest.raises(RuntimeError, match="SECRET_KEY"):
        build_without_key(instance, **config)

    assert files_under(instance) == []  # no key was generated behind the operator's back


@pytest.mark.parametrize("env", ["production", "development"])
def test_tutorial_default_secret_is_refused(tmp_path, clean_env, env):
    with pytest.raises(RuntimeError, match="tutorial"):
        build_without_key(tmp_path / "instance", APP_ENV=env, SECRET_KEY="this is a secret")


@pytest.mark.parametrize(
    "key",
    [
        pytest.param("k" * 31, id="31-bytes"),
        pytest.param("short", id="5-bytes"),
    ],
)
def test_production_refuses_a_secret_key_shorter_than_32_bytes(tmp_path, clean_env, key):
    with pytest.raises(RuntimeError, match="32"):
        build_without_key(tmp_path / "instance", APP_ENV="production", SECRET_KEY=key)


# --- PUBLIC_URL ----------------------------------------------------------------------------------


def test_production_refuses_to_start_without_public_url(tmp_path):
    with pytest.raises(RuntimeError, match="PUBLIC_URL must be set in production"):
        build(tmp_path, APP_ENV="production")


@pytest.mark.parametrize("url", ["books.example.com", "ftp://books.example.com", "https://", "https://x.example/?a=1"])
def test_a_public_url_that_is_not_an_http_url_is_refused_at_start_up(tmp_path, url):
    with pytest.raises(RuntimeError, match="PUBLIC_URL must be an http"):
        build(tmp_path, PUBLIC_URL=url)


# --- mail ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    ["http://mail.example.com", "smtp://", "mail.example.com:25", "smtps:///nohost"],
)
def test_a_malformed_mail_url_stops_the_start(url):
    with pytest.raises(ValueError, match="MAIL_URL must look like"):
        create_app({"SECRET_KEY": TEST_SECRET, "MAIL_URL": url, "TESTING": True})


def test_production_with_mail_on_and_no_public_url_refuses_to_start():
    with pytest.raises(RuntimeError, match="PUBLIC_URL must be set in production"):
        create_app({"APP_ENV": "production", "SECRET_KEY": TEST_SECRET, "MAIL_URL": "smtp://127.0.0.1:25"})


# --- the refresh cookie --------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["none-at-all", "Stricter"])
def test_an_unknown_same_site_value_stops_the_app_at_start_up(value, tmp_path):
    config = {"SECRET_KEY": TEST_SECRET, "INSTANCE_PATH": str(tmp_path), "REFRESH_COOKIE_SAMESITE": value}
    with pytest.raises(RuntimeError, match="REFRESH_COOKIE_SAMESITE must be one of Strict, Lax, None"):
        create_app(config)
