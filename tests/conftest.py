"""Fixtures: every API test runs on mongomock and on a real SecantusDB server over the wire."""
from __future__ import annotations

import io
import os
import sys
import uuid

import mongomock
import pytest
from PIL import Image
from pymongo import MongoClient

# A developer's .env must not leak into the tests' configuration.
os.environ["PYTHON_DOTENV_DISABLED"] = "1"

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from app import create_app  # noqa: E402

TEST_SECRET = "test-secret-key-that-is-long-enough-for-hs256"
PASSWORD = "Str0ng!pass"


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
        client = mongomock.MongoClient(tz_aware=True)
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
def app(mongo_client, tmp_path, app_config, db_name, rate_limit_uri):
    application = create_app(
        {
            "TESTING": True,
            "INSTANCE_PATH": str(tmp_path / "instance"),
            "SECRET_KEY": TEST_SECRET,
            "MONGO_CLIENT": mongo_client,
            "DATABASE_URL": f"mongodb://unused/{db_name}",
            # A cheap Argon2id keeps the suite fast; production uses the OWASP parameters.
            "PASSWORD_HASH_TIME_COST": 1,
            "PASSWORD_HASH_MEMORY_KIB": 1024,
            # Limits are switched on by the tests that are about them.
            "RATELIMIT_ENABLED": False,
            "RATELIMIT_STORAGE_URI": rate_limit_uri,
            "UPLOAD_FOLDER": str(tmp_path / "covers"),
            **app_config,
        }
    )
    yield application
    mongo_client.drop_database(db_name)


@pytest.fixture
def db(app):
    return app.extensions["mongo"]["db"]


@pytest.fixture
def client(app):
    return app.test_client()


class AuthActions:
    """Sign up, log in, and hand back headers, as a client would."""

    def __init__(self, client):
        self._client = client
        self._count = 0

    def signup(self, name="Ada Lovelace", email=None, password=PASSWORD):
        self._count += 1
        email = email or f"user{self._count}-{uuid.uuid4().hex[:6]}@example.com"
        response = self._client.post("/users/", json={"name": name, "email": email, "password": password})
        assert response.status_code == 201, response.get_json()
        return email

    def login(self, email, password=PASSWORD):
        return self._client.post("/users/login", json={"email": email, "password": password})

    def headers(self, email=None, password=PASSWORD):
        """Headers of a new (or the given) user's access token."""
        email = email or self.signup(password=password)
        response = self.login(email, password)
        assert response.status_code == 200, response.get_json()
        return {"Authorization": f"Bearer {response.get_json()['data']['token']}"}


@pytest.fixture
def auth(client):
    return AuthActions(client)


def image_bytes(fmt="PNG", size=(300, 200), color=(200, 30, 30), mode="RGB", **save_options) -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, color).save(out, fmt, **save_options)
    return out.getvalue()


def book_form(title="Dune", category="science", description="Spice and sand.", cover=None, filename="cover.png"):
    """A multipart form as Postman's form-data sends it."""
    form = {"title": title, "category": category, "description": description}
    if cover is not False:
        form["cover_image"] = (io.BytesIO(cover or image_bytes()), filename)
    return form


@pytest.fixture
def create_book(client):
    def _create(headers, **kwargs):
        response = client.post("/books/", data=book_form(**kwargs), headers=headers)
        assert response.status_code == 201, response.get_json()
        return response.get_json()["data"]

    return _create
