"""Fixtures shared by every test directory: tests/unit (no app, no database), tests/api (the
Flask test client), tests/e2e (real servers in subprocesses) and tests/browser (Chromium).

Which database, which cover storage. An API test runs once, on mongomock with covers in a
folder, unless what it asserts is decided by the database: queries (filters, order, pages,
counts), unique indexes, atomic updates and races, single-use tokens, TTL and purge indexes,
explain() plans, the outbox's claims, rate-limit and lock-out counters. Such a test, class or
module is marked `@pytest.mark.each_database` and runs on mongomock and on a real SecantusDB
server over the wire. A test that stores, serves, replaces or removes covers and asserts on
them is marked `@pytest.mark.each_cover_storage` and runs three times: covers in a folder (on
mongomock: the folder does not depend on the database) and covers in GridFS on each database
(GridFS lives in it). Validation, the error envelope, headers, tokens, image decoding and
whatever else the app decides alone run once. A test that needs the real server only (explain
plans, concurrent claims, the driver's command log, a browser's threads) is parametrised with
backend="secantus" (indirect), or its module overrides the `backend` fixture.

Isolation. Each process (each xdist worker) keeps one database per backend, whose indexes are
built once; before each test every document of every collection is deleted, so every test
starts on an empty database that has every index (apps get INDEXES_READY). Apps are released
when their test ends, while the database still runs.
"""

from __future__ import annotations

import gc
import logging
import os
import uuid

import pytest
from pymongo import MongoClient

from database.client import state as database_state

# A developer's .env must not leak into the tests' configuration.
os.environ["PYTHON_DOTENV_DISABLED"] = "1"

from app import create_app  # noqa: E402
from auth.state import EXTENSION as AUTH_STATE  # noqa: E402
from config import DEFAULTS  # noqa: E402
from database.documents import ensure_indexes  # noqa: E402
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
from mail.settings import EXTENSION as MAIL_STATE  # noqa: E402

DATABASES = ("mongomock", "secantus")
# Covers in a folder do not depend on the database; covers in GridFS live in it.
STORAGE_RUNS = [("mongomock", "local"), ("mongomock", "gridfs"), ("secantus", "gridfs")]
# The one database of each backend in this process; DATABASE_URL names it, as an app expects.
DATABASE_NAME = "book_library_tests"


def pytest_generate_tests(metafunc):
    """Parametrise what the markers ask for (see the module's docstring)."""
    marked = [m for m in ("each_database", "each_cover_storage") if metafunc.definition.get_closest_marker(m)]
    if marked and "backend" not in metafunc.fixturenames:
        raise pytest.UsageError(f"{metafunc.definition.nodeid} is marked {marked[0]} but uses no app")
    if "each_cover_storage" in marked:
        metafunc.parametrize(["backend", "cover_storage"], STORAGE_RUNS, indirect=True)
    elif marked:
        metafunc.parametrize("backend", DATABASES, indirect=True)


def pytest_collection_modifyitems(items):
    """Under xdist (--dist loadgroup) each module of real servers stays on one worker, so that its
    module-scoped servers start once; the API tests are spread one by one."""
    for item in items:
        if item.path.parent.name in ("e2e", "browser"):
            item.add_marker(pytest.mark.xdist_group(item.path.stem))


# --- databases: one per backend and process, emptied before each test --------------------------


@pytest.fixture(scope="session")
def secantus_uri(tmp_path_factory):
    """One embedded SecantusDB server for the process."""
    from secantus import SecantusDBServer  # GPL-2.0: imported by tests and the launcher only

    server = SecantusDBServer(storage_path=str(tmp_path_factory.mktemp("secantus")), port=0)
    server.start()
    try:
        yield server.uri
    finally:
        gc.collect()  # an app still unreleased closes its clients now, while the server answers
        server.stop()


@pytest.fixture(scope="session")
def mongomock_database():
    client = MongomockClient(tz_aware=True)
    yield client[DATABASE_NAME]
    client.close()


@pytest.fixture(scope="session")
def secantus_database(secantus_uri):
    client = MongoClient(secantus_uri, serverSelectionTimeoutMS=2000, tz_aware=True)
    yield client[DATABASE_NAME]
    client.close()


@pytest.fixture
def backend(request):
    """The database the test's apps use: mongomock, or SecantusDB where the test asks for both."""
    return getattr(request, "param", "mongomock")


@pytest.fixture
def cover_storage(request):
    """Where the test's apps keep covers: a folder, or GridFS too where the test asks for both."""
    return getattr(request, "param", "local")


@pytest.fixture(scope="session")
def indexed_backends() -> set[str]:
    """The backends whose database has every index built, in this process."""
    return set()


@pytest.fixture
def empty_database(backend, request, indexed_backends, tmp_path_factory):
    """The backend's database for this process, every index built (once) and every document gone."""
    database = request.getfixturevalue(f"{backend}_database")
    if backend not in indexed_backends:
        settings = config_for_tests(tmp_path_factory.mktemp("indexes"), MONGO_CLIENT=database.client)
        builder = create_app({**settings, "DATABASE_URL": f"mongodb://unused/{database.name}", "INDEXES_READY": True})
        with builder.app_context():
            ensure_indexes()
        indexed_backends.add(backend)
    for name in database.list_collection_names():
        if not name.startswith("system."):
            database[name].delete_many({})
    return database


@pytest.fixture
def mongo_client(empty_database):
    """The client the test's apps are handed."""
    return empty_database.client


@pytest.fixture
def db_name(empty_database):
    return empty_database.name


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
def app_settings(mongo_client, tmp_path, app_config, db_name, rate_limit_uri, cover_storage):
    """The configuration of the test's app; app_factory and make_app build others from it."""
    return config_for_tests(
        tmp_path,
        MONGO_CLIENT=mongo_client,
        DATABASE_URL=f"mongodb://unused/{db_name}",
        INDEXES_READY=True,
        RATELIMIT_STORAGE_URI=rate_limit_uri,
        COVER_STORAGE=cover_storage,
        **app_config,
    )


def release(application) -> None:
    """What an app's end does, done while the database still runs: its mail sender stops, and its
    rate-limit store goes, which closes the store's MongoDB client. Left to interpreter exit, each
    store waited there for a server long gone (DATABASE_TIMEOUT_MS each: over a minute a run)."""
    application.extensions[MAIL_STATE].sender.stop()
    application.extensions[AUTH_STATE].rate_limiter = None


@pytest.fixture
def app_factory(app_settings):
    """Builds app processes on the test's database: the first is `app`; another is a restart,
    or a second process beside it."""
    made = []

    def make(**overrides):
        application = create_app({**app_settings, **overrides})
        made.append(application)
        return application

    yield make
    for application in made:
        release(application)


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
