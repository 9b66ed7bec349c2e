"""Requests as a client sends them: headers, logins, an account's token, tokens re-signed."""

from __future__ import annotations

import uuid

import jwt

from helpers.config import PASSWORD, TEST_SECRET


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def ip(n: int) -> dict:
    return {"REMOTE_ADDR": f"10.0.0.{n}"}


def login(client, email, password=PASSWORD, addr=1):
    return client.post("/users/login", json={"email": email, "password": password}, environ_base=ip(addr))


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


def reissued(token: str, key: str = TEST_SECRET, typ: str = "at+jwt", algorithm="HS256", **changes) -> str:
    """The same token's claims with changes, signed as asked (by default as an access token with the test key)."""
    claims = jwt.decode(token, options={"verify_signature": False})
    return jwt.encode({**claims, **changes}, key, algorithm=algorithm, headers={"typ": typ})
