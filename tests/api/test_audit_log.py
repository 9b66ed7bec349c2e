"""The audit log an account's owner reads (GET /users/events): a page at a time, and failed
logins, which anyone who types the address can cause, kept apart from the owner's own events
(issue 17)."""

from __future__ import annotations

import pytest

from helpers import INVALID_FIELDS, PASSWORD, WRONG_PASSWORD, assert_envelope, bearer, ip

# Pages of events are queries: each test runs on both databases.
pytestmark = pytest.mark.each_database

ADA = "ada@example.com"
BAD_CURSOR = "This cursor is not valid for your events; start again without it."


def log_in(client, password=PASSWORD, addr=1):
    return client.post("/users/login", json={"email": ADA, "password": password}, environ_base=ip(addr))


def session(client) -> dict:
    return bearer(assert_envelope(log_in(client), 200, "Logged in.")["token"])


def events(client, headers, **params):
    return client.get("/users/events", headers=headers, query_string=params)


def event_list(client, headers, **params) -> list[dict]:
    return assert_envelope(events(client, headers, **params), 200, "Events.")


@pytest.fixture
def owner(client):
    body = {"name": "Ada Lovelace", "email": ADA, "password": PASSWORD}
    assert client.post("/users/", json=body).status_code == 201
    return session(client)


def test_failed_logins_by_strangers_do_not_push_the_owners_events_off_the_list(client, owner):
    for n in range(120):  # from many addresses, so that no lock-out stops them
        assert log_in(client, WRONG_PASSWORD, addr=n + 2).status_code == 401

    own = [event["type"] for event in event_list(client, owner)]
    refused = event_list(client, owner, failed_logins="only", limit=100)

    assert own == ["login", "signup"]
    assert len(refused) == 100 and {event["type"] for event in refused} == {"login_failed"}
    assert [event["type"] for event in event_list(client, owner, failed_logins="include", limit=3)] == [
        "login_failed"
    ] * 3


def test_events_come_a_page_at_a_time_newest_first(client, owner):
    for _ in range(6):
        session(client)
    everything = [(event["type"], event["at"]) for event in event_list(client, owner, limit=100)]

    pages, before = [], None
    while True:
        params = {"limit": 3, **({"before": before} if before else {})}
        body = events(client, owner, **params).get_json()
        pages.append([(event["type"], event["at"]) for event in body["data"]])
        before = body["meta"]["next_before"]
        if before is None:
            break

    assert len(everything) == 8  # the sign-up and seven logins
    assert [len(page) for page in pages] == [3, 3, 2]
    assert [item for page in pages for item in page] == everything


def test_an_events_cursor_not_made_by_the_server_is_400(client, owner):
    for before in ("nonsense", "AAAA", "x" * 100):
        assert_envelope(events(client, owner, before=before), 400, INVALID_FIELDS, {"before": BAD_CURSOR})


def test_an_unknown_failed_logins_choice_is_400(client, owner):
    response = events(client, owner, failed_logins="some")
    assert_envelope(response, 400, INVALID_FIELDS, {"failed_logins": "Must be one of: exclude, include, only."})


def test_before_has_no_documented_default_so_clients_and_importers_leave_it_out(client, owner):
    """A generated client sends a schema's default with every call, and Postman's import fills in a
    placeholder for it: `before` has none, and its description says what leaving it out means."""
    operation = client.get("/openapi.json").get_json()["paths"]["/users/events"]["get"]
    [before] = [parameter for parameter in operation["parameters"] if parameter["name"] == "before"]

    assert "default" not in before["schema"] and not before["required"]
    assert "leave out for the newest events" in before["description"]
    assert event_list(client, owner)
