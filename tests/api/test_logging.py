"""Request logs: one JSON line per request, with ids, and nothing secret in any line."""

import json

import pytest

from helpers import PASSWORD


def test_each_request_writes_one_json_line_with_its_fields(client, auth, log_lines):
    headers = auth.headers()
    log_lines.clear()

    response = client.get("/users/", headers={**headers, "X-Request-ID": "req-42"})

    assert response.status_code == 200
    assert response.headers["X-Request-ID"] == "req-42"
    assert len(log_lines) == 1
    entry = json.loads(log_lines[0])
    assert entry["message"] == "request"
    assert entry["method"] == "GET"
    assert entry["path"] == "/users/"
    assert entry["status"] == 200
    assert entry["request_id"] == "req-42"
    assert entry["user_id"] == response.get_json()["data"]["id"]
    assert isinstance(entry["duration_ms"], float)


@pytest.mark.parametrize("incoming", ["", "has spaces", "x" * 129, "<script>"])
def test_a_missing_or_unsafe_request_id_is_replaced_by_a_generated_one(client, incoming, log_lines):
    response = client.get("/", headers={"X-Request-ID": incoming})

    generated = response.headers["X-Request-ID"]
    assert generated != incoming
    assert len(generated) == 32
    assert json.loads(log_lines[-1])["request_id"] == generated


def test_logs_never_contain_passwords_tokens_or_query_strings(client, auth, log_lines):
    email = auth.signup()
    login = auth.login(email).get_json()["data"]
    headers = {"Authorization": f"Bearer {login['token']}"}
    client.post("/users/token/refresh", json={"refresh_token": login["refresh_token"]})
    client.get("/books/?page=1&secret=hunter2", headers=headers)
    client.post("/users/login", json={"email": email, "password": "Wr0ng!password"})
    client.get("/users/", headers={"Authorization": "Bearer " + login["token"][:-3] + "abc"})

    text = "\n".join(log_lines)
    assert len(log_lines) >= 5
    for secret in (PASSWORD, "Wr0ng!password", login["token"], login["refresh_token"], "hunter2"):
        assert secret not in text
    assert all(json.loads(line)["path"].startswith("/") for line in log_lines)


def test_a_refresh_token_in_a_path_is_redacted_whole_from_the_request_line(client, auth, log_lines):
    login = auth.login(auth.signup()).get_json()["data"]
    refresh_token = login["refresh_token"]  # <user id>.<session id>.<secret>
    secret = refresh_token.rsplit(".", 1)[1]
    log_lines.clear()

    client.get(f"/books/{refresh_token}", headers={"Authorization": f"Bearer {login['token']}"})

    assert len(log_lines) == 1
    assert json.loads(log_lines[0])["path"] == "/books/[REDACTED]"
    assert secret not in log_lines[0]
