"""Sessions over HTTP: refresh-token rotation and reuse, logout, the session list,
password change, audit events, access-token expiry, and the refresh-token cookie."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

import jwt
import pytest
from bson import ObjectId

from helpers import (
    ACCESS_TOKEN_SECONDS,
    COMMON,
    GUESSABLE,
    INVALID_FIELDS,
    JSON_ONLY,
    NOT_A_STRING,
    NOT_ALLOWED,
    PASSWORD,
    REFRESH_INVALID,
    REFRESH_REUSED,
    REQUIRED,
    SESSION_ENDED,
    TOKEN_EXPIRED,
    WRONG_CREDENTIALS,
    WRONG_PASSWORD,
    assert_envelope,
    bearer,
)

REFRESH_TOKEN_SECONDS = 30 * 86400
LEEWAY_SECONDS = 5  # how long past its expiry an access token is still taken, for clock skew
REUSE_INTERVAL = 10  # REFRESH_REUSE_INTERVAL_SECONDS's default
TOKEN_BEFORE_PASSWORD_CHANGE = "Token was issued before the password was changed."
NEW_PASSWORD = "N3w!Horse-Battery"
CSRF_REFUSED = "The X-CSRF-Token header must match the csrf_token cookie."
SESSION_NOT_FOUND = "Session not found."
USER_AGENT = "pytest-session-tests/1.0"


class Session(NamedTuple):
    """What a client holds after logging in or refreshing."""

    token: str
    refresh_token: str
    id: str  # the session id, from the access token's `sid` claim


def sid_of(token: str) -> str:
    return jwt.decode(token, options={"verify_signature": False})["sid"]


def session_from(data: dict, refresh_token: str | None = None) -> Session:
    token = data["token"]
    return Session(token, refresh_token or data["refresh_token"], sid_of(token))


def log_in(client, email: str, password: str = PASSWORD, user_agent: str = USER_AGENT) -> Session:
    response = client.post(
        "/users/login", json={"email": email, "password": password}, headers={"User-Agent": user_agent}
    )
    assert response.status_code == 200, response.get_json()
    return session_from(response.get_json()["data"])


def refresh(client, refresh_token, user_agent: str = USER_AGENT):
    return client.post(
        "/users/token/refresh", json={"refresh_token": refresh_token}, headers={"User-Agent": user_agent}
    )


def refreshed(client, session: Session) -> Session:
    response = refresh(client, session.refresh_token)
    assert response.status_code == 200, response.get_json()
    return session_from(response.get_json()["data"])


def me(client, token: str):
    return client.get("/users/", headers=bearer(token))


def events(client, session: Session, **params) -> list[dict]:
    response = client.get("/users/events", headers=bearer(session.token), query_string=params)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["data"]


def event_types(client, session: Session, **params) -> list[str]:
    return [event["type"] for event in events(client, session, **params)]


def sessions_of(client, session: Session) -> list[dict]:
    response = client.get("/users/sessions", headers=bearer(session.token))
    assert response.status_code == 200, response.get_json()
    return response.get_json()["data"]


def assert_session_ended(response):
    """The access token is well formed and unexpired, but its session is over: 401 with a challenge."""
    assert_envelope(response, 401, SESSION_ENDED, "Unauthorized")
    assert response.www_authenticate.type == "bearer"
    assert response.www_authenticate.parameters["error"] == "invalid_token"


def assert_works(client, session: Session):
    assert_envelope(me(client, session.token), 200, "Current user.")


@pytest.fixture
def email(auth):
    """A signed-up account's email (password helpers.PASSWORD)."""
    return auth.signup()


@pytest.fixture
def other_email(auth):
    """Another account, to prove nothing crosses between users."""
    return auth.signup(name="Grace Hopper")


# --- login --------------------------------------------------------------------


def test_login_returns_an_access_token_a_refresh_token_expires_in_and_token_type(client, email):
    response = client.post("/users/login", json={"email": email, "password": PASSWORD})

    data = assert_envelope(response, 200, "Logged in.")
    assert data["email"] == email
    assert data["expires_in"] == ACCESS_TOKEN_SECONDS
    assert data["token_type"] == "Bearer"
    assert isinstance(data["token"], str) and data["token"].count(".") == 2
    assert isinstance(data["refresh_token"], str) and len(data["refresh_token"]) >= 32
    assert data["refresh_token"] != data["token"]
    assert_works(client, session_from(data))


@pytest.mark.each_database
def test_each_login_starts_its_own_session(client, email):
    first, second = log_in(client, email), log_in(client, email)

    assert first.id != second.id
    assert first.refresh_token != second.refresh_token
    assert {s["id"] for s in sessions_of(client, first)} == {first.id, second.id}


def test_refresh_token_is_stored_only_as_a_hash(client, db, email):
    session = log_in(client, email)

    stored = db.sessions.find_one({"_id": ObjectId(session.id)})

    assert stored is not None
    assert session.refresh_token not in str(stored)
    assert secret(session) not in str(stored)


# --- refresh ------------------------------------------------------------------


@pytest.mark.each_database
def test_refresh_gives_new_tokens_for_the_same_session_and_the_old_refresh_token_stops_working(client, email, clock):
    session = log_in(client, email)

    response = refresh(client, session.refresh_token)

    data = assert_envelope(response, 200, "Tokens refreshed.")
    assert data["expires_in"] == ACCESS_TOKEN_SECONDS
    assert data["token_type"] == "Bearer"
    new = session_from(data)
    assert new.token != session.token
    assert new.refresh_token != session.refresh_token
    assert new.id == session.id
    assert_works(client, new)
    # Rotation: the exchanged refresh token is spent, once the reuse interval (another tab) is over.
    clock.shift(REUSE_INTERVAL + 1)
    assert_envelope(refresh(client, session.refresh_token), 401, REFRESH_REUSED, "Unauthorized")


@pytest.mark.each_database
def test_refresh_can_be_repeated_along_the_chain(client, email):
    session = log_in(client, email)

    for _ in range(3):
        session = refreshed(client, session)

    assert_works(client, session)


@pytest.mark.each_database
def test_reused_refresh_token_revokes_the_whole_session_and_is_recorded(client, email):
    bystander = log_in(client, email, user_agent="other-device")
    stolen = log_in(client, email)
    rotated = refreshed(client, stolen)
    newest = refreshed(client, rotated)

    response = refresh(client, stolen.refresh_token)

    assert_envelope(response, 401, REFRESH_REUSED, "Unauthorized")
    # Every token of that session is dead: the newest refresh token and all its access tokens.
    assert_envelope(refresh(client, newest.refresh_token), 401, REFRESH_INVALID, "Unauthorized")
    for token in (stolen.token, rotated.token, newest.token):
        assert_session_ended(me(client, token))
    # The user's other session is untouched, and shows what happened.
    assert_works(client, bystander)
    assert [s["id"] for s in sessions_of(client, bystander)] == [bystander.id]
    reuse = [e for e in events(client, bystander) if e["type"] == "refresh_token_reused"]
    assert len(reuse) == 1
    assert reuse[0]["detail"]["session_id"] == stolen.id


@pytest.mark.each_database
def test_refresh_token_used_twice_in_a_row_is_refused_the_second_time(client, email, clock):
    session = log_in(client, email)
    assert refresh(client, session.refresh_token).status_code == 200
    clock.shift(REUSE_INTERVAL + 1)

    assert_envelope(refresh(client, session.refresh_token), 401, REFRESH_REUSED, "Unauthorized")
    assert_envelope(refresh(client, session.refresh_token), 401, REFRESH_INVALID, "Unauthorized")


def owner(session) -> str:
    """The user id a refresh token starts with ("<user id>.<session id>.<secret>")."""
    return session.refresh_token.split(".", 2)[0]


def secret(session) -> str:
    return session.refresh_token.split(".", 2)[2]


# --- refresh from several tabs: the reuse interval ------------------------------------------


@pytest.mark.each_database
def test_a_repeat_within_the_interval_gets_the_same_refresh_token_and_the_session_goes_on(client, email, clock):
    """Two tabs refresh with the same token; the second answer must not end the session."""
    session = log_in(client, email)
    first = refreshed(client, session)
    clock.shift(REUSE_INTERVAL - 1)

    second = session_from(assert_envelope(refresh(client, session.refresh_token), 200, "Tokens refreshed."))

    assert second.refresh_token == first.refresh_token
    assert second.id == session.id
    for tab in (first, second):
        assert_works(client, tab)
    assert_works(client, refreshed(client, second))
    assert [e["detail"] for e in events(client, second) if e["type"] == "refresh"][1:3] == [
        {"session_id": session.id, "repeated": True},
        {"session_id": session.id},
    ]


@pytest.mark.each_database
def test_a_repeat_at_the_end_of_the_interval_still_counts_as_another_tab(client, email, clock):
    session = log_in(client, email)
    first = refreshed(client, session)
    clock.shift(REUSE_INTERVAL)

    assert refreshed(client, session).refresh_token == first.refresh_token


@pytest.mark.each_database
def test_a_repeat_after_the_interval_is_theft_and_ends_the_session(client, email, clock):
    session = log_in(client, email)
    first = refreshed(client, session)
    clock.shift(REUSE_INTERVAL + 0.001)

    assert_envelope(refresh(client, session.refresh_token), 401, REFRESH_REUSED, "Unauthorized")

    assert_session_ended(me(client, first.token))
    assert_envelope(refresh(client, first.refresh_token), 401, REFRESH_INVALID, "Unauthorized")


@pytest.mark.each_database
def test_only_the_token_exchanged_last_may_be_repeated(client, email, clock):
    session = log_in(client, email)
    first = refreshed(client, session)
    second = refreshed(client, first)

    assert_envelope(refresh(client, session.refresh_token), 401, REFRESH_REUSED, "Unauthorized")

    assert_session_ended(me(client, second.token))


@pytest.mark.each_database
class TestNoReuseInterval:
    @pytest.fixture
    def app_config(self):
        return {"REFRESH_REUSE_INTERVAL_SECONDS": 0}

    def test_with_the_interval_off_an_immediate_repeat_ends_the_session(self, client, email):
        session = log_in(client, email)
        first = refreshed(client, session)

        assert_envelope(refresh(client, session.refresh_token), 401, REFRESH_REUSED, "Unauthorized")

        assert_session_ended(me(client, first.token))


FORGED = [
    pytest.param(lambda own, other: "x", id="garbage"),
    pytest.param(lambda own, other: f"{owner(own)}.{own.id}", id="session-id-alone"),
    pytest.param(lambda own, other: f"{owner(own)}.{own.id}.", id="session-id-and-empty-secret"),
    pytest.param(lambda own, other: f"{owner(own)}.{own.id}.wrong-secret", id="own-session-wrong-secret"),
    pytest.param(lambda own, other: f"{owner(own)}.{own.id}." + "A" * 43, id="own-session-secret-shaped-but-wrong"),
    pytest.param(lambda own, other: f"{owner(own)}..{secret(own)}", id="right-secret-no-session-id"),
    pytest.param(lambda own, other: f"{own.id}.{secret(own)}", id="without-the-owner"),
    pytest.param(lambda own, other: f"{owner(other)}.{other.id}.wrong-secret", id="other-users-session-wrong-secret"),
    pytest.param(
        lambda own, other: f"{owner(other)}.{other.id}.{secret(own)}", id="other-users-session-with-own-secret"
    ),
    pytest.param(lambda own, other: f"{owner(other)}.{own.id}.{secret(own)}", id="own-session-named-as-another-users"),
    pytest.param(lambda own, other: f"{owner(own)}.{ObjectId()}.{secret(own)}", id="unknown-session"),
    pytest.param(lambda own, other: own.token[:200], id="an-access-token-cut-to-the-size-limit"),
    pytest.param(lambda own, other: "g" * 24 + "." + "g" * 24 + ".secret", id="24-non-hex"),
]


@pytest.mark.parametrize("forge", FORGED)
def test_forged_refresh_token_is_401_and_does_not_end_the_real_sessions(client, email, other_email, forge):
    own, other = log_in(client, email), log_in(client, other_email)

    response = refresh(client, forge(own, other))

    assert_envelope(response, 401, REFRESH_INVALID, "Unauthorized")
    # Nobody can end someone's session by guessing at it.
    assert_works(client, other)
    assert_works(client, refreshed(client, other))
    assert_works(client, own)
    own = refreshed(client, own)
    assert_works(client, own)
    assert "refresh_token_reused" not in event_types(client, own)


@pytest.mark.parametrize(
    "body, expected",
    [
        pytest.param({}, "This field is required.", id="missing"),
        pytest.param({"refresh_token": None}, "Must be a string.", id="null"),
        pytest.param({"refresh_token": 42}, "Must be a string.", id="number"),
        pytest.param({"refresh_token": ["a.b"]}, "Must be a string.", id="list"),
        pytest.param({"refresh_token": {"token": "a.b"}}, "Must be a string.", id="object"),
        pytest.param({"refresh_token": ""}, "Must not be empty.", id="empty"),
        pytest.param({"refresh_token": "a" * 4097}, "Must be at most 4096 characters.", id="absurdly-long"),
    ],
)
def test_refresh_token_missing_or_not_a_string_is_400(client, body, expected):
    response = client.post("/users/token/refresh", json=body)

    assert_envelope(response, 400, INVALID_FIELDS, {"refresh_token": expected})


def test_an_access_token_sent_as_a_refresh_token_is_401(client, email):
    session = log_in(client, email)

    response = client.post("/users/token/refresh", json={"refresh_token": session.token})

    assert_envelope(response, 401, REFRESH_INVALID, "Unauthorized")


def test_refresh_with_a_body_that_is_not_json_is_415(client, email):
    session = log_in(client, email)

    response = client.post("/users/token/refresh", data={"refresh_token": session.refresh_token})

    assert_envelope(response, 415, JSON_ONLY, "Unsupported Media Type")
    assert_works(client, refreshed(client, session))


@pytest.mark.each_database
def test_refresh_of_an_expired_session_is_401_and_it_is_no_longer_listed(client, db, email):
    keeper = log_in(client, email)
    session = log_in(client, email)
    db.sessions.update_one(
        {"_id": ObjectId(session.id)},
        {"$set": {"expires_at": datetime.now(UTC) - timedelta(minutes=1)}},
    )

    assert_envelope(refresh(client, session.refresh_token), 401, REFRESH_INVALID, "Unauthorized")
    assert [s["id"] for s in sessions_of(client, keeper)] == [keeper.id]


@pytest.mark.each_database
def test_refresh_keeps_the_session_expiry_fixed(client, db, email):
    """Refreshing does not stretch the session: it ends REFRESH_TOKEN_EXPIRES_SECONDS after login."""
    session = log_in(client, email)
    before = db.sessions.find_one({"_id": ObjectId(session.id)})["expires_at"]

    refreshed(client, refreshed(client, session))

    assert db.sessions.find_one({"_id": ObjectId(session.id)})["expires_at"] == before
    created = db.sessions.find_one({"_id": ObjectId(session.id)})["created_at"]
    assert (before - created).total_seconds() == REFRESH_TOKEN_SECONDS


@pytest.mark.each_database
def test_an_access_token_never_outlives_its_session(client, db, email):
    session = log_in(client, email)
    ends = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=2)
    db.sessions.update_one({"_id": ObjectId(session.id)}, {"$set": {"expires_at": ends}})

    response = refresh(client, session.refresh_token)

    data = assert_envelope(response, 200, "Tokens refreshed.")
    assert 0 < data["expires_in"] <= 120
    claims = jwt.decode(data["token"], options={"verify_signature": False})
    assert claims["exp"] <= ends.timestamp()
    assert_works(client, session_from(data))


# --- logout -------------------------------------------------------------------


@pytest.mark.each_database
def test_logout_is_204_and_the_access_token_fails_at_once(client, email):
    other_device = log_in(client, email)
    session = log_in(client, email)
    assert_works(client, session)

    response = client.post("/users/logout", headers=bearer(session.token))

    assert response.status_code == 204
    assert response.get_data() == b""
    assert_session_ended(me(client, session.token))
    assert_session_ended(client.post("/users/logout", headers=bearer(session.token)))
    assert_envelope(refresh(client, session.refresh_token), 401, REFRESH_INVALID, "Unauthorized")
    # Only that session ended.
    assert_works(client, other_device)
    assert [s["id"] for s in sessions_of(client, other_device)] == [other_device.id]


@pytest.mark.each_database
def test_logout_all_ends_every_session(client, email, other_email):
    first, second = log_in(client, email), log_in(client, email)
    stranger = log_in(client, other_email)

    response = client.post("/users/logout-all", headers=bearer(first.token))

    assert response.status_code == 204
    assert response.get_data() == b""
    for session in (first, second):
        assert_session_ended(me(client, session.token))
        assert_envelope(refresh(client, session.refresh_token), 401, REFRESH_INVALID, "Unauthorized")
    assert_works(client, stranger)
    # The account itself is fine: logging in again works.
    assert_works(client, log_in(client, email))


# --- the session list -----------------------------------------------------------


@pytest.mark.each_database
def test_sessions_lists_the_active_sessions_and_marks_the_current_one(client, email, other_email):
    laptop = log_in(client, email, user_agent="Laptop Firefox/128.0")
    phone = log_in(client, email, user_agent="Phone Safari/17.0")
    ended = log_in(client, email, user_agent="Old Tablet/1.0")
    assert client.post("/users/logout", headers=bearer(ended.token)).status_code == 204
    stranger = log_in(client, other_email, user_agent="Stranger/1.0")

    response = client.get("/users/sessions", headers=bearer(phone.token))

    sessions = assert_envelope(response, 200, "Sessions.")
    listed = {s["id"]: s for s in sessions}
    assert set(listed) == {laptop.id, phone.id}
    for item in listed.values():
        assert {"id", "created_at", "last_used_at", "ip", "user_agent", "current"} <= set(item)
        assert item["ip"] == "127.0.0.1"
        assert item["created_at"].endswith("Z") and item["last_used_at"].endswith("Z")
        assert item["last_used_at"] >= item["created_at"]
    assert [s["id"] for s in sessions if s["current"] is True] == [phone.id]
    assert listed[laptop.id]["current"] is False
    assert listed[laptop.id]["user_agent"] == "Laptop Firefox/128.0"
    assert listed[phone.id]["user_agent"] == "Phone Safari/17.0"
    raw = response.get_data(as_text=True)
    for secret in (*laptop, *phone, *stranger):
        if secret not in (laptop.id, phone.id):
            assert secret not in raw
    assert "hash" not in raw
    # From the laptop, the laptop is the current one.
    assert [s["id"] for s in sessions_of(client, laptop) if s["current"]] == [laptop.id]


@pytest.mark.each_database
def test_refresh_updates_last_used_and_the_user_agent_of_the_session(client, email):
    session = log_in(client, email, user_agent="Before/1.0")
    before = {s["id"]: s for s in sessions_of(client, session)}[session.id]

    refresh(client, session.refresh_token, user_agent="After/2.0")

    newest = log_in(client, email)
    after = {s["id"]: s for s in sessions_of(client, newest)}[session.id]
    assert after["user_agent"] == "After/2.0"
    assert after["last_used_at"] >= before["last_used_at"]
    assert after["created_at"] == before["created_at"]


@pytest.mark.each_database
def test_delete_session_ends_that_session_only(client, email):
    laptop, phone = log_in(client, email), log_in(client, email)

    response = client.delete(f"/users/sessions/{laptop.id}", headers=bearer(phone.token))

    assert response.status_code == 204
    assert response.get_data() == b""
    assert_session_ended(me(client, laptop.token))
    assert_envelope(refresh(client, laptop.refresh_token), 401, REFRESH_INVALID, "Unauthorized")
    assert_works(client, phone)
    assert [s["id"] for s in sessions_of(client, phone)] == [phone.id]


@pytest.mark.each_database
def test_delete_the_current_session_ends_it(client, email):
    session = log_in(client, email)

    response = client.delete(f"/users/sessions/{session.id}", headers=bearer(session.token))

    assert response.status_code == 204
    assert_session_ended(me(client, session.token))


@pytest.mark.each_database
def test_delete_session_of_another_user_is_404_and_leaves_it_alone(client, email, other_email):
    mine, theirs = log_in(client, email), log_in(client, other_email)

    response = client.delete(f"/users/sessions/{theirs.id}", headers=bearer(mine.token))

    assert_envelope(response, 404, SESSION_NOT_FOUND, "Not Found")
    assert_works(client, theirs)
    assert_works(client, refreshed(client, theirs))


@pytest.mark.parametrize("state", ["unknown", "already-ended"])
def test_delete_unknown_or_ended_session_is_404(client, email, state):
    session = log_in(client, email)
    target = str(ObjectId())
    if state == "already-ended":
        ended = log_in(client, email)
        assert client.post("/users/logout", headers=bearer(ended.token)).status_code == 204
        target = ended.id

    response = client.delete(f"/users/sessions/{target}", headers=bearer(session.token))

    assert_envelope(response, 404, SESSION_NOT_FOUND, "Not Found")
    assert_works(client, session)


@pytest.mark.parametrize("bad_id", ["nope", "a" * 23, "a" * 25, "g" * 24, "12345"])
def test_delete_session_with_a_malformed_id_is_the_same_404_as_a_missing_one(client, email, bad_id):
    session = log_in(client, email)

    response = client.delete(f"/users/sessions/{bad_id}", headers=bearer(session.token))

    assert_envelope(response, 404, SESSION_NOT_FOUND, "Not Found")
    assert_works(client, session)


@pytest.mark.each_database
def test_login_beyond_the_session_cap_ends_the_oldest_session_and_the_list_agrees(client, email):
    """A user keeps at most 50 sessions: the 51st login ends the oldest, and the list shows
    exactly the sessions whose tokens work, also once there is room again."""
    oldest = log_in(client, email)
    live = [log_in(client, email) for _ in range(50)]

    listed = [s["id"] for s in sessions_of(client, live[-1])]

    assert_session_ended(me(client, oldest.token))
    assert_envelope(refresh(client, oldest.refresh_token), 401, REFRESH_INVALID, "Unauthorized")
    assert sorted(listed) == sorted(s.id for s in live)
    # Room again: the ended session must not come back into the list.
    assert client.post("/users/logout", headers=bearer(live[-1].token)).status_code == 204
    listed = [s["id"] for s in sessions_of(client, live[0])]
    assert oldest.id not in listed
    assert sorted(listed) == sorted(s.id for s in live[:-1])


@pytest.mark.each_database
def test_a_full_session_list_drops_an_expired_session_before_a_live_one(client, db, email):
    oldest = log_in(client, email)
    others = [log_in(client, email) for _ in range(49)]
    expired = others[10]
    past = datetime.now(UTC) - timedelta(minutes=1)
    db.users.update_one({"sessions.sid": ObjectId(expired.id)}, {"$set": {"sessions.$.exp": past}})
    db.sessions.update_one({"_id": ObjectId(expired.id)}, {"$set": {"expires_at": past}})

    newest = log_in(client, email)

    assert me(client, oldest.token).status_code == 200
    assert_envelope(refresh(client, expired.refresh_token), 401, REFRESH_INVALID, "Unauthorized")
    listed = [s["id"] for s in sessions_of(client, newest)]
    assert sorted(listed) == sorted(s.id for s in [oldest, *others, newest] if s is not expired)


@pytest.mark.each_database
def test_a_session_off_the_user_list_is_not_listed_usable_or_endable(client, db, email):
    """The user's list of session ids is the truth, even where a session record was
    left open (a login racing the cap can leave one so)."""
    keeper, dropped = log_in(client, email), log_in(client, email)
    db.users.update_one({"email": email}, {"$pull": {"sessions": {"sid": ObjectId(dropped.id)}}})

    assert [s["id"] for s in sessions_of(client, keeper)] == [keeper.id]
    assert_session_ended(me(client, dropped.token))
    assert_envelope(refresh(client, dropped.refresh_token), 401, REFRESH_INVALID, "Unauthorized")
    response = client.delete(f"/users/sessions/{dropped.id}", headers=bearer(keeper.token))
    assert_envelope(response, 404, SESSION_NOT_FOUND, "Not Found")


# --- password change --------------------------------------------------------------


def change_password(client, session: Session, current=PASSWORD, new=NEW_PASSWORD):
    return client.put(
        "/users/password", json={"current_password": current, "new_password": new}, headers=bearer(session.token)
    )


def test_password_change_with_a_wrong_current_password_is_400_and_changes_nothing(client, auth, email):
    session, other = log_in(client, email), log_in(client, email)

    response = change_password(client, session, current=WRONG_PASSWORD)

    assert_envelope(response, 400, INVALID_FIELDS, {"current_password": "Current password is incorrect."})
    assert auth.login(email).status_code == 200
    assert_envelope(auth.login(email, NEW_PASSWORD), 401, WRONG_CREDENTIALS, "Unauthorized")
    assert_works(client, other)
    assert_works(client, refreshed(client, session))


def test_password_change_to_the_same_password_is_400(client, auth, email):
    session = log_in(client, email)

    response = change_password(client, session, new=PASSWORD)

    assert_envelope(response, 400, INVALID_FIELDS, {"new_password": "New password must differ from the current one."})
    assert_works(client, session)


@pytest.mark.parametrize(
    "new_password, reason",
    [
        pytest.param("P@ssw0rd1!", COMMON, id="common"),
        pytest.param("Password1!", COMMON, id="common-capitalised"),
        pytest.param("Qwerty123!", NOT_ALLOWED, id="keyboard-pattern"),
        pytest.param("Abcdef1!", NOT_ALLOWED, id="sequence"),
        pytest.param("Sh0rt!", "Password must have 8 to 128 characters.", id="too-short"),
        pytest.param("n0-upper-case!", "Password must have an upper-case letter.", id="no-upper-case"),
        pytest.param("N0 LOWER CASE!", "Password must have a lower-case letter.", id="no-lower-case"),
        pytest.param("No-digits-here!", "Password must have a digit.", id="no-digit"),
        pytest.param("N0specials1nHere", "Password must have a special character.", id="no-special"),
        pytest.param(12345678, "Must be a string.", id="not-a-string"),
    ],
)
def test_password_change_to_a_weak_or_common_password_is_400_saying_why(client, auth, email, new_password, reason):
    session = log_in(client, email)

    response = change_password(client, session, new=new_password)

    assert_envelope(response, 400, INVALID_FIELDS, {"new_password": reason})
    assert auth.login(email).status_code == 200
    assert_works(client, session)


def test_password_change_refuses_a_password_built_from_the_users_own_name_as_sign_up_does(client, auth):
    """Sign-up refuses passwords made of the user's name or email; a password change must too."""
    name, guessable = "Ada Quxtrelby", "Quxtrelby9!"
    refused = client.post(
        "/users/", json={"name": name, "email": f"q-{uuid.uuid4().hex[:6]}@example.com", "password": guessable}
    )
    assert_envelope(refused, 400, INVALID_FIELDS, {"password": GUESSABLE})
    email = auth.signup(name=name)
    session = log_in(client, email)

    response = change_password(client, session, new=guessable)

    assert_envelope(response, 400, INVALID_FIELDS, {"new_password": GUESSABLE})


@pytest.mark.parametrize(
    "new_password",
    [
        pytest.param("kT7#vQ2z", id="8-chars"),
        pytest.param("kT7#vQ2z" * 9 + "!", id="73-chars"),
        pytest.param(("kT7#vQ2z Ünï " * 10)[:128], id="128-chars"),
    ],
)
def test_password_change_accepts_any_strong_password_of_8_to_128_characters(client, auth, email, new_password):
    session = log_in(client, email)

    response = change_password(client, session, new=new_password)

    assert_envelope(response, 200, "Password changed.")
    assert auth.login(email, new_password).status_code == 200


@pytest.mark.parametrize(
    "body, expected",
    [
        pytest.param({}, {"current_password": REQUIRED, "new_password": REQUIRED}, id="empty"),
        pytest.param({"current_password": PASSWORD}, {"new_password": REQUIRED}, id="no-new-password"),
        pytest.param({"new_password": NEW_PASSWORD}, {"current_password": REQUIRED}, id="no-current-password"),
        pytest.param(
            {"current_password": None, "new_password": NEW_PASSWORD},
            {"current_password": NOT_A_STRING},
            id="current-password-null",
        ),
    ],
)
def test_password_change_with_missing_fields_is_400(client, email, body, expected):
    session = log_in(client, email)

    response = client.put("/users/password", json=body, headers=bearer(session.token))

    assert_envelope(response, 400, INVALID_FIELDS, expected)


@pytest.mark.each_database
def test_password_change_ends_other_sessions_and_gives_this_one_fresh_tokens(client, auth, email, other_email):
    other_device = log_in(client, email)
    session = log_in(client, email)
    stranger = log_in(client, other_email)

    response = change_password(client, session)

    data = assert_envelope(response, 200, "Password changed.")
    assert data["expires_in"] == ACCESS_TOKEN_SECONDS
    assert data["token_type"] == "Bearer"
    fresh = session_from(data)
    assert fresh.id == session.id
    assert fresh.refresh_token != session.refresh_token
    # Every other session is over, access and refresh tokens alike.
    assert_session_ended(me(client, other_device.token))
    assert_envelope(refresh(client, other_device.refresh_token), 401, REFRESH_INVALID, "Unauthorized")
    # This session goes on with the new tokens.
    assert_works(client, fresh)
    assert [s["id"] for s in sessions_of(client, fresh)] == [session.id]
    assert_works(client, refreshed(client, fresh))
    # The refresh token from before the change is spent.
    assert_envelope(refresh(client, session.refresh_token), 401, REFRESH_REUSED, "Unauthorized")
    # Only the new password logs in.
    assert_envelope(auth.login(email), 401, WRONG_CREDENTIALS, "Unauthorized")
    assert auth.login(email, NEW_PASSWORD).status_code == 200
    assert_works(client, stranger)


def test_password_change_ends_the_changing_sessions_old_access_token_at_once(client, email):
    """The session goes on with the tokens the change returned; an access token from before
    the change (stolen, say) stops working at once, though it is unexpired and of this session."""
    session = log_in(client, email)

    fresh = session_from(assert_envelope(change_password(client, session), 200, "Password changed."))

    assert_envelope(me(client, session.token), 401, TOKEN_BEFORE_PASSWORD_CHANGE, "Unauthorized")
    assert_works(client, fresh)
    assert_works(client, refreshed(client, fresh))


def test_access_tokens_from_before_each_password_change_fail_and_later_ones_work(client, email, clock):
    """All in the same instant: what counts is the order of signing and changing, not the clock."""
    session = log_in(client, email)
    first = session_from(change_password(client, session).get_json()["data"])
    second = session_from(change_password(client, first, current=NEW_PASSWORD, new=PASSWORD).get_json()["data"])

    for stale in (session, first):
        assert_envelope(me(client, stale.token), 401, TOKEN_BEFORE_PASSWORD_CHANGE, "Unauthorized")
    assert_works(client, second)
    assert_works(client, log_in(client, email))


@pytest.mark.each_database
def test_a_session_that_logged_in_with_a_password_changed_since_cannot_refresh(client, db, email):
    """A login racing a password change: it checked the old password, and its session was
    added after the change ended the others. Its refresh token must not carry it on."""
    racing = log_in(client, email)
    # The change's effect on the account, as the racing login missed its revocation.
    db.users.update_one({"email": email}, {"$inc": {"token_version": 1}})

    assert_envelope(refresh(client, racing.refresh_token), 401, REFRESH_INVALID, "Unauthorized")

    assert racing.id not in [s["id"] for s in sessions_of(client, log_in(client, email))]


def test_password_change_is_recorded_without_the_passwords(client, email):
    session = log_in(client, email)
    fresh = session_from(change_password(client, session).get_json()["data"])

    response = client.get("/users/events", headers=bearer(fresh.token))

    assert [e["type"] for e in response.get_json()["data"]][0] == "password_changed"
    raw = response.get_data(as_text=True)
    assert PASSWORD not in raw and NEW_PASSWORD not in raw


# --- disabling the account -------------------------------------------------------


@pytest.mark.each_database
def test_delete_user_ends_every_session(client, auth, email):
    first, second = log_in(client, email), log_in(client, email)

    assert client.delete("/users/", json={"password": PASSWORD}, headers=bearer(second.token)).status_code == 204

    for session in (first, second):
        assert_session_ended(me(client, session.token))
        assert_envelope(refresh(client, session.refresh_token), 401, REFRESH_INVALID, "Unauthorized")
    assert_envelope(auth.login(email), 401, WRONG_CREDENTIALS, "Unauthorized")


# --- audit events ---------------------------------------------------------------


@pytest.mark.each_database
def test_events_list_the_callers_own_events_newest_first(client, auth, email, other_email):
    first = log_in(client, email)
    assert_envelope(auth.login(email, WRONG_PASSWORD), 401, WRONG_CREDENTIALS, "Unauthorized")
    first = refreshed(client, first)
    second = log_in(client, email, user_agent="Second Device/1.0")
    assert client.post("/users/logout", headers=bearer(second.token)).status_code == 204
    # Another user's activity, some of it aimed at this account's neighbour.
    stranger = log_in(client, other_email)
    assert_envelope(auth.login(other_email, WRONG_PASSWORD), 401, WRONG_CREDENTIALS, "Unauthorized")

    response = client.get("/users/events", headers=bearer(first.token), query_string={"failed_logins": "include"})

    listed = assert_envelope(response, 200, "Events.")
    assert [e["type"] for e in listed] == ["logout", "login", "refresh", "login_failed", "login", "signup"]
    assert [e["at"] for e in listed] == sorted((e["at"] for e in listed), reverse=True)
    for event in listed:
        assert event["ip"] == "127.0.0.1"
        assert event["at"].endswith("Z")
    assert listed[0]["detail"]["session_id"] == second.id
    assert listed[1]["user_agent"] == "Second Device/1.0"
    assert listed[2]["user_agent"] == USER_AGENT
    assert listed[3]["detail"]["email"] == email
    raw = response.get_data(as_text=True)
    assert other_email not in raw
    for secret in (PASSWORD, WRONG_PASSWORD, *first[:2], *second[:2], *stranger[:2]):
        assert secret not in raw
    # The stranger sees only their own.
    assert event_types(client, stranger, failed_logins="include") == ["login_failed", "login", "signup"]


def test_events_never_contain_passwords_or_tokens(client, auth, email):
    """Everything a client sends or receives that is secret stays out of the audit trail."""
    secrets = [PASSWORD, WRONG_PASSWORD, NEW_PASSWORD]
    session = log_in(client, email)
    first_refresh_token = session.refresh_token
    secrets += session[:2]
    auth.login(email, WRONG_PASSWORD)
    session = refreshed(client, session)
    secrets += session[:2]
    reply = change_password(client, session)
    assert reply.status_code == 200
    session = session_from(reply.get_json()["data"])
    secrets += session[:2]
    # Spent: a reuse, so the session ends.
    assert_envelope(refresh(client, first_refresh_token), 401, REFRESH_REUSED, "Unauthorized")
    session = log_in(client, email, NEW_PASSWORD)
    secrets += session[:2]

    response = client.get("/users/events", headers=bearer(session.token), query_string={"failed_logins": "include"})

    assert response.status_code == 200
    assert {"login", "login_failed", "refresh", "password_changed", "refresh_token_reused"} <= {
        e["type"] for e in response.get_json()["data"]
    }
    raw = response.get_data(as_text=True)
    for secret in secrets:
        assert secret not in raw
        assert secret.split(".")[-1] not in raw  # nor the secret half of a refresh token


@pytest.mark.each_database
def test_events_limit_returns_the_newest(client, email):
    session = log_in(client, email)
    session = refreshed(client, session)

    assert event_types(client, session, limit=2) == ["refresh", "login"]
    assert event_types(client, session, limit=1) == ["refresh"]
    assert event_types(client, session, limit=100) == ["refresh", "login", "signup"]


@pytest.mark.parametrize(
    "limit, message",
    [
        pytest.param("0", "Must be at least 1.", id="zero"),
        pytest.param("-1", "Must be at least 1.", id="negative"),
        pytest.param("101", "Must be at most 100.", id="101"),
        pytest.param("x", "Must be a whole number.", id="not-a-number"),
        pytest.param("1.5", "Must be a whole number.", id="fraction"),
        pytest.param("", "Must be a whole number.", id="empty"),
    ],
)
def test_events_limit_out_of_range_or_not_a_number_is_400(client, email, limit, message):
    session = log_in(client, email)

    response = client.get("/users/events", query_string={"limit": limit}, headers=bearer(session.token))

    assert_envelope(response, 400, INVALID_FIELDS, {"limit": message})


@pytest.mark.each_database
def test_events_recorded_in_the_same_millisecond_are_still_newest_first(client, db, email):
    """Timestamps have millisecond precision, so two requests can share one; the order must not flip."""
    session = log_in(client, email)
    user_id = db.users.find_one({"email": email})["_id"]
    at = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=1)
    for kind in ("logout", "login", "refresh"):  # recorded in this order, all at once
        db.auth_events.insert_one({"type": kind, "user_id": user_id, "at": at, "ip": None, "user_agent": ""})

    assert event_types(client, session, limit=3) == ["refresh", "login", "logout"]


# --- access-token expiry ----------------------------------------------------------


def test_access_token_past_expiry_beyond_the_leeway_is_401(client, email, clock):
    session = log_in(client, email)

    clock.shift(ACCESS_TOKEN_SECONDS + LEEWAY_SECONDS + 1)
    response = me(client, session.token)

    assert_envelope(response, 401, TOKEN_EXPIRED, "Unauthorized")
    assert response.www_authenticate.parameters["error"] == "invalid_token"


def test_access_token_a_few_seconds_past_expiry_is_within_the_leeway(client, email, clock):
    session = log_in(client, email)

    clock.shift(ACCESS_TOKEN_SECONDS + LEEWAY_SECONDS - 2)

    assert_works(client, session)


def test_access_token_expires_in_15_minutes_by_default(client, email):
    session = log_in(client, email)

    claims = jwt.decode(session.token, options={"verify_signature": False})

    assert claims["exp"] - claims["iat"] == ACCESS_TOKEN_SECONDS


# --- the refresh token in a cookie -------------------------------------------------


def cookie_attributes(response, name: str) -> dict:
    """The Set-Cookie attributes for one cookie, lower-cased names, as sent."""
    for header in response.headers.getlist("Set-Cookie"):
        cookie, *attributes = [part.strip() for part in header.split(";")]
        if cookie.split("=", 1)[0] == name:
            parsed = {"value": cookie.split("=", 1)[1]}
            for attribute in attributes:
                key, _, value = attribute.partition("=")
                parsed[key.lower()] = value
            return parsed
    raise AssertionError(f"no {name} cookie in {response.headers.getlist('Set-Cookie')}")


class TestRefreshTokenCookie:
    @pytest.fixture
    def app_config(self):
        return {"REFRESH_TOKEN_COOKIE": True}

    @staticmethod
    def cookie_refresh(client, csrf: str | None = "from-cookie"):
        headers = {}
        if csrf == "from-cookie":
            headers["X-CSRF-Token"] = client.get_cookie("csrf_token").value
        elif csrf is not None:
            headers["X-CSRF-Token"] = csrf
        return client.post("/users/token/refresh", headers=headers)

    @staticmethod
    def cookie_login(client, email):
        response = client.post("/users/login", json={"email": email, "password": PASSWORD})
        assert response.status_code == 200, response.get_json()
        return response

    def test_login_sets_an_http_only_secure_strict_cookie_and_no_refresh_token_in_json(self, client, email):
        response = self.cookie_login(client, email)

        data = response.get_json()["data"]
        assert "refresh_token" not in data
        assert data["token"] and data["expires_in"] == ACCESS_TOKEN_SECONDS
        refresh_cookie = cookie_attributes(response, "refresh_token")
        assert "httponly" in refresh_cookie
        assert "secure" in refresh_cookie
        assert refresh_cookie["samesite"] == "Strict"
        assert refresh_cookie["path"] == "/users"
        assert int(refresh_cookie["max-age"]) == REFRESH_TOKEN_SECONDS
        assert refresh_cookie["value"] not in response.get_data(as_text=True)
        # The CSRF cookie is readable by the page (that is its point) but as strict otherwise.
        csrf_cookie = cookie_attributes(response, "csrf_token")
        assert "httponly" not in csrf_cookie
        assert "secure" in csrf_cookie
        assert csrf_cookie["samesite"] == "Strict"
        assert client.get_cookie("refresh_token", path="/users").http_only is True

    def test_refresh_without_the_csrf_header_is_403(self, client, email):
        self.cookie_login(client, email)

        response = self.cookie_refresh(client, csrf=None)

        assert_envelope(response, 403, CSRF_REFUSED, "Forbidden")
        assert self.cookie_refresh(client).status_code == 200  # the session was not harmed

    @pytest.mark.parametrize("csrf", ["wrong", "", "from-refresh-cookie"])
    def test_refresh_with_a_wrong_csrf_header_is_403(self, client, email, csrf):
        self.cookie_login(client, email)
        if csrf == "from-refresh-cookie":
            csrf = client.get_cookie("refresh_token", path="/users").value

        response = self.cookie_refresh(client, csrf=csrf)

        assert_envelope(response, 403, CSRF_REFUSED, "Forbidden")

    def test_refresh_with_a_non_ascii_csrf_header_is_403_not_500(self, client, email):
        self.cookie_login(client, email)

        response = self.cookie_refresh(client, csrf="\u00e9t\u00e9")

        assert_envelope(response, 403, CSRF_REFUSED, "Forbidden")

    def test_refresh_with_the_csrf_header_gives_new_tokens_and_new_cookies(self, client, email, clock):
        login = self.cookie_login(client, email)
        old_refresh = client.get_cookie("refresh_token", path="/users").value
        old_csrf = client.get_cookie("csrf_token").value

        response = self.cookie_refresh(client)

        data = assert_envelope(response, 200, "Tokens refreshed.")
        assert "refresh_token" not in data
        new_refresh = cookie_attributes(response, "refresh_token")
        assert new_refresh["value"] != old_refresh
        assert "httponly" in new_refresh and new_refresh["path"] == "/users"
        assert cookie_attributes(response, "csrf_token")["value"] != old_csrf
        assert data["token"] != login.get_json()["data"]["token"]
        assert_works(client, Session(data["token"], "", ""))
        # The cookie that was exchanged is spent, once the reuse interval is over.
        clock.shift(REUSE_INTERVAL + 1)
        assert_envelope(refresh(client, old_refresh), 401, REFRESH_REUSED, "Unauthorized")

    def test_login_and_refresh_bodies_carry_the_csrf_token_of_the_cookie(self, client, email):
        """A page on another origin cannot read the csrf_token cookie: it takes the token from the body."""
        login = self.cookie_login(client, email)
        csrf = login.get_json()["data"]["csrf_token"]
        assert csrf == cookie_attributes(login, "csrf_token")["value"]

        response = self.cookie_refresh(client, csrf=csrf)

        assert response.status_code == 200, response.get_json()
        new_csrf = response.get_json()["data"]["csrf_token"]
        assert new_csrf == cookie_attributes(response, "csrf_token")["value"] != csrf
        assert self.cookie_refresh(client, csrf=new_csrf).status_code == 200

    def test_the_banner_says_refresh_tokens_travel_in_a_cookie(self, client):
        assert client.get("/").get_json()["data"]["refresh_token_cookie"] is True

    def test_refresh_with_no_cookie_is_401(self, client, email):
        self.cookie_login(client, email)
        client.delete_cookie("refresh_token", path="/users")

        response = self.cookie_refresh(client)

        assert_envelope(response, 401, "Refresh token is missing.", "Unauthorized")

    def test_refresh_with_a_json_body_still_works(self, client, email):
        self.cookie_login(client, email)
        refresh_token = client.get_cookie("refresh_token", path="/users").value

        response = refresh(client, refresh_token)

        assert response.status_code == 200, response.get_json()
        assert "refresh_token" not in response.get_json()["data"]
        assert cookie_attributes(response, "refresh_token")["value"] != refresh_token
        assert_works(client, Session(response.get_json()["data"]["token"], "", ""))

    def test_password_change_sets_a_new_refresh_cookie(self, client, email):
        token = self.cookie_login(client, email).get_json()["data"]["token"]
        old_refresh = client.get_cookie("refresh_token", path="/users").value

        response = client.put(
            "/users/password",
            json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
            headers=bearer(token),
        )

        assert response.status_code == 200, response.get_json()
        assert "refresh_token" not in response.get_json()["data"]
        assert cookie_attributes(response, "refresh_token")["value"] != old_refresh
        assert self.cookie_refresh(client).status_code == 200

    @pytest.mark.parametrize("path", ["/users/logout", "/users/logout-all"])
    def test_logout_clears_the_cookies(self, client, email, path):
        token = self.cookie_login(client, email).get_json()["data"]["token"]
        refresh_token = client.get_cookie("refresh_token", path="/users").value

        response = client.post(path, headers=bearer(token))

        assert response.status_code == 204
        for name in ("refresh_token", "csrf_token"):
            cleared = cookie_attributes(response, name)
            assert cleared["value"] == ""
            assert cleared.get("max-age") == "0" or "1970" in cleared.get("expires", "")
        assert client.get_cookie("refresh_token", path="/users") is None
        assert client.get_cookie("csrf_token") is None
        assert_envelope(refresh(client, refresh_token), 401, REFRESH_INVALID, "Unauthorized")


def test_a_token_that_worked_is_refused_once_it_expires(client, email, clock):
    """Verified tokens are remembered per process; expiry must still be checked on each use."""
    session = log_in(client, email)
    assert_works(client, session)

    clock.shift(ACCESS_TOKEN_SECONDS + LEEWAY_SECONDS + 1)
    response = me(client, session.token)

    assert_envelope(response, 401, TOKEN_EXPIRED, "Unauthorized")


def test_without_cookie_mode_there_is_no_csrf_token_and_the_banner_says_so(client, email):
    login = client.post("/users/login", json={"email": email, "password": PASSWORD})
    assert "csrf_token" not in login.get_json()["data"]
    assert client.get("/").get_json()["data"]["refresh_token_cookie"] is False


class TestRefreshCookieSameSite:
    """REFRESH_COOKIE_SAMESITE: Lax or None for deployments where Strict does not fit."""

    @pytest.fixture(params=[("lax", "Lax"), ("None", "None"), (" STRICT ", "Strict")])
    def same_site(self, request):
        return request.param

    @pytest.fixture
    def app_config(self, same_site):
        return {"REFRESH_TOKEN_COOKIE": True, "REFRESH_COOKIE_SAMESITE": same_site[0]}

    def test_cookies_are_set_and_cleared_with_the_configured_same_site(self, client, email, same_site):
        login = client.post("/users/login", json={"email": email, "password": PASSWORD})
        logout = client.post("/users/logout", headers=bearer(login.get_json()["data"]["token"]))

        for response in (login, logout):
            for name in ("refresh_token", "csrf_token"):
                cookie = cookie_attributes(response, name)
                assert cookie["samesite"] == same_site[1]
                assert "secure" in cookie  # SameSite=None is honoured only on Secure cookies
