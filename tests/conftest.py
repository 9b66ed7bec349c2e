"""Fixtures: every API test runs on mongomock and on a real SecantusDB server over the wire."""

from __future__ import annotations

import logging
import os
import uuid

import pytest
from pymongo import MongoClient

from database.client import state as database_state

# A developer's .env must not leak into the tests' configuration.
os.environ["PYTHON_DOTENV_DISABLED"] = "1"

from app import create_app  # noqa: E402
from config import DEFAULTS  # noqa: E402
from helpers import (  # noqa: E402
    AN_INSTANT,
    AuthActions,
    Launcher,
    MongomockClient,
    SmtpTestServer,
    book_form,
    config_for_tests,
    free_port,
)
from logs import NAMESPACE  # noqa: E402
from logs.json_lines import JsonLogFormatter  # noqa: E402


@pytest.fixture(scope="session")
def secantus_uri(tmp_path_factory):
    """One embedded SecantusDB server for the whole run; each test gets its own database."""
    from secantus import SecantusDBServer  # GPL-2.0: imported by tests and the launcher only

    server = SecantusDBServer(storage_path=str(tmp_path_factory.mktemp("secantus")), port=0)
    server.start()
    try:
        yield server.uri
    finally:
        server.stop()


@pytest.fixture(params=["mongomock", "secantus"])
def backend(request):
    return request.param


@pytest.fixture
def mongo_client(backend, request):
    if backend == "mongomock":
        client = MongomockClient(tz_aware=True)
        yield client
        client.close()
        return
    uri = request.getfixturevalue("secantus_uri")
    client = MongoClient(uri, serverSelectionTimeoutMS=2000, tz_aware=True)
    yield client
    client.close()


@pytest.fixture
def db_name():
    return f"test_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def rate_limit_uri(backend, request, db_name):
    """Rate-limit counters: in memory beside mongomock, in the real server beside SecantusDB."""
    if backend == "mongomock":
        return "memory://"
    return request.getfixturevalue("secantus_uri").rstrip("/") + f"/{db_name}"


@pytest.fixture
def app_config():
    """Extra configuration for the app; override this fixture in a test module to change it."""
    return {}


@pytest.fixture
def cover_storage():
    """Where covers are kept; test modules about covers run both storages."""
    return "local"


@pytest.fixture
def app_settings(mongo_client, tmp_path, app_config, db_name, rate_limit_uri, cover_storage):
    """The configuration of the test's app; app_factory and make_app build others from it."""
    return config_for_tests(
        tmp_path,
        MONGO_CLIENT=mongo_client,
        DATABASE_URL=f"mongodb://unused/{db_name}",
        RATELIMIT_STORAGE_URI=rate_limit_uri,
        COVER_STORAGE=cover_storage,
        **app_config,
    )


@pytest.fixture
def app_factory(app_settings, mongo_client, db_name):
    """Builds app processes on the test's database: the first is `app`; another is a restart,
    or a second process beside it."""
    made = []

    def make(**overrides):
        application = create_app({**app_settings, **overrides})
        made.append(application)
        return application

    yield make
    for application in made:
        application.extensions["book_library.mail"].sender.stop()
    mongo_client.drop_database(db_name)


@pytest.fixture
def app(app_factory):
    return app_factory()


@pytest.fixture
def make_app(app, app_factory, tmp_path):
    """Another app process on the same database (its own instance folder), with changes."""

    def make(**changes):
        folder = tmp_path / f"instance-{uuid.uuid4().hex[:6]}"
        return app_factory(INSTANCE_PATH=str(folder), **changes)

    return make


@pytest.fixture
def db(app):
    return database_state(app).db


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def auth(client):
    return AuthActions(client)


@pytest.fixture
def create_book(client):
    def _create(headers, **kwargs):
        response = client.post("/books/", data=book_form(**kwargs), headers=headers)
        assert response.status_code == 201, response.get_json()
        return response.get_json()["data"]

    return _create


@pytest.fixture
def clean_env(monkeypatch):
    """No configuration inherited from the shell running the tests."""
    for name in ("SECRET_KEY", "INSTANCE_PATH", *DEFAULTS):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.fixture
def log_lines():
    """Every line the app's loggers write during the test, as the production formatter writes it."""
    lines = []

    class Collect(logging.Handler):
        def emit(self, record):
            lines.append(self.format(record))

    handler = Collect()
    handler.setFormatter(JsonLogFormatter())
    loggers = [logging.getLogger(NAMESPACE)]
    for logger in loggers:
        logger.addHandler(handler)
    yield lines
    for logger in loggers:
        logger.removeHandler(handler)


@pytest.fixture
def clock(time_machine):
    """The clock that the app, the database and the rate limiter read, stopped at AN_INSTANT: it moves
    only when the test says, with clock.shift(seconds or timedelta)."""
    time_machine.move_to(AN_INSTANT, tick=False)
    return time_machine


@pytest.fixture
def smtp():
    """A real SMTP server on 127.0.0.1 for the test; stopped however the test ends."""
    server = SmtpTestServer(free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def launcher(tmp_path):
    """`make run` in a subprocess (not started yet: call .start()); always stopped afterwards."""
    server = Launcher(tmp_path)
    try:
        yield server
    finally:
        server.kill()
