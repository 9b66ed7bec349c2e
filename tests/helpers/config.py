"""The configuration of every app the tests build, in this process or in a subprocess: the test
constants (key, password, the stopped clock's instant), the one configuration factory, the environment
of a server in a subprocess, rate limits, and the mongomock client handed to in-process apps."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import mongomock
import mongomock.gridfs

from config import DEFAULTS

TEST_SECRET = "test-secret-key-that-is-long-enough-for-hs256"
PASSWORD = "Str0ng!pass"
WRONG_PASSWORD = "Wr0ng!password"
ACCESS_TOKEN_SECONDS = 15 * 60
AN_INSTANT = datetime(2031, 3, 14, 15, 9, 26, 535000, tzinfo=UTC)  # where the `clock` fixture stops time

# One factory for apps in this process and for servers in subprocesses.

OMIT = object()  # as an override's value: leave that setting out, so the app takes its default


def config_for_tests(tmp_path, **overrides) -> dict:
    """The configuration of every app the tests build: files under tmp_path, the test signing key, a cheap
    Argon2id (production uses the OWASP parameters) and rate limits off (the tests about them switch them
    on); then the overrides, where OMIT removes a setting."""
    config = {
        "TESTING": True,
        "SECRET_KEY": TEST_SECRET,
        "INSTANCE_PATH": str(Path(tmp_path) / "instance"),
        "UPLOAD_FOLDER": str(Path(tmp_path) / "covers"),
        "PASSWORD_HASH_TIME_COST": 1,
        "PASSWORD_HASH_MEMORY_KIB": 1024,
        "RATELIMIT_ENABLED": False,
        # The outbox waits: the tests about mail drive it with mail.send_due, and no thread writes mail files.
        "MAIL_SENDER": False,
        **overrides,
    }
    return {key: value for key, value in config.items() if value is not OMIT}


# Settings that only an app built in this process can take.
IN_PROCESS_ONLY = {"TESTING", "MONGO_CLIENT"}


def server_env(config: dict, **process_env) -> dict[str, str]:
    """The environment for a server in a subprocess that `config` describes: this process's environment
    with every app setting blanked (blank means default, and a developer's .env cannot fill it back in),
    then config's settings as the app reads them from the environment, then process_env as given (for
    the launcher and gunicorn, not the app)."""
    settable = set(DEFAULTS) | {"SECRET_KEY", "INSTANCE_PATH"}
    unknown = set(config) - settable - IN_PROCESS_ONLY
    assert not unknown, f"not settable from the environment: {sorted(unknown)}"
    env = {**os.environ, **{key: "" for key in settable}, "PYTHON_DOTENV_DISABLED": "1"}
    for key, value in config.items():
        if key in settable:
            env[key] = str(value).lower() if isinstance(value, bool) else str(value)
    env.update(process_env)
    return env


# Every rate-limit setting the app has, as config.DEFAULTS names them.
RATE_LIMIT_SETTINGS = tuple(key for key in DEFAULTS if key.endswith("_RATE_LIMIT"))


def limits(**settings) -> dict:
    """Rate limits on, every limit generous except the ones given."""
    generous = dict.fromkeys(RATE_LIMIT_SETTINGS, "1000 per minute")
    return {"RATELIMIT_ENABLED": True, **generous, **settings}


mongomock.gridfs.enable_gridfs_integration()


class MongomockClient(mongomock.MongoClient):
    options = SimpleNamespace(timeout=None)  # no client-wide operation timeout
