"""Abuse limits over HTTP: rate limits, the failed-login lock-out, password quality and hash storage.

Rate limits are off in the suite unless a class's `app_config` switches them on; on the
SecantusDB backend their counters then live in the real server, on mongomock in memory.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from argon2 import PasswordHasher
from werkzeug.security import generate_password_hash

from helpers import (
    COMMON,
    INVALID_FIELDS,
    LOCKED,
    PASSWORD,
    REFRESH_INVALID,
    WRONG_CREDENTIALS,
    assert_429,
    assert_envelope,
    bearer,
    ip,
    limits,
    login,
)

WRONG = "Wr0ng!password"
STRONG = "Tr1cky-Gl0ve-Harb0r!"
# Common or breached, yet each has upper, lower, digit and special character.
COMMON_PASSWORDS = ["P@ssw0rd!", "Password1!", "Qwerty123!"]
# The strength check adds the password library's own warning to this.


def new_email() -> str:
    return f"abuse-{uuid.uuid4().hex[:10]}@example.com"


def signup(client, email=None, password=PASSWORD, addr=1):
    body = {"name": "Grace Hopper", "email": email or new_email(), "password": password}
    return client.post("/users/", json=body, environ_base=ip(addr))


@pytest.fixture
def account(client):
    """A signed-up email; its sign-up comes from an IP that the tests' requests don't use."""
    email = new_email()
    assert_envelope(signup(client, email, addr=254), 201, "Account created.")
    return email


# --- rate limits: login ---------------------------------------------------------------


@pytest.mark.each_database
class TestLoginRateLimitPerIp:
    @pytest.fixture
    def app_config(self):
        return limits(LOGIN_RATE_LIMIT="3 per minute")

    def test_fourth_login_from_one_ip_is_429_whatever_the_email_or_outcome(self, client, account):
        assert_envelope(login(client, account), 200, "Logged in.")
        assert_envelope(login(client, account, WRONG), 401, WRONG_CREDENTIALS, "Unauthorized")
        assert_envelope(login(client, new_email()), 401, WRONG_CREDENTIALS, "Unauthorized")

        retry_after = assert_429(login(client, account))

        assert retry_after <= 60

    def test_another_ip_is_unaffected(self, client, account):
        for _ in range(3):
            assert_envelope(login(client, account, addr=1), 200, "Logged in.")
        assert_429(login(client, account, addr=1))

        assert_envelope(login(client, account, addr=2), 200, "Logged in.")

    def test_rate_limited_login_does_not_count_as_a_failure_or_log_in(self, client, account, db):
        for _ in range(3):
            assert_envelope(login(client, account, WRONG), 401, WRONG_CREDENTIALS, "Unauthorized")
        assert_429(login(client, account, WRONG))
        assert_429(login(client, account))

        assert db.login_failures.find_one(failures_of(account))["count"] == 3


@pytest.mark.each_database
class TestLoginRateLimitWindow:
    @pytest.fixture
    def app_config(self):
        return limits(LOGIN_RATE_LIMIT="3 per 2 seconds")

    def test_logins_work_again_once_the_window_has_passed(self, client, clock, account):
        for _ in range(3):
            assert_envelope(login(client, account), 200, "Logged in.")
        assert assert_429(login(client, account)) == 2

        clock.shift(1.9)
        assert assert_429(login(client, account)) == 1
        clock.shift(0.2)

        assert_envelope(login(client, account), 200, "Logged in.")


@pytest.mark.each_database
class TestLoginRateLimitPerAccount:
    @pytest.fixture
    def app_config(self):
        return limits(LOGIN_ACCOUNT_RATE_LIMIT="3 per minute")

    def test_one_email_is_limited_across_ips_and_another_is_not(self, client, account):
        other = new_email()
        assert_envelope(signup(client, other, addr=254), 201, "Account created.")
        assert_envelope(login(client, account, addr=1), 200, "Logged in.")
        assert_envelope(login(client, account, WRONG, addr=2), 401, WRONG_CREDENTIALS, "Unauthorized")
        assert_envelope(login(client, account, addr=3), 200, "Logged in.")

        assert_429(login(client, account, addr=4))
        assert_429(login(client, account.upper(), addr=5))  # the same account, however typed

        assert_envelope(login(client, other, addr=4), 200, "Logged in.")

    def test_an_unknown_email_is_limited_the_same_way(self, client):
        unknown = new_email()
        for n in range(3):
            assert_envelope(login(client, unknown, addr=n + 1), 401, WRONG_CREDENTIALS, "Unauthorized")

        assert_429(login(client, unknown, addr=9))


# --- rate limits: sign-up, refresh, password change --------------------------------------


@pytest.mark.each_database
class TestSignUpRateLimitPerIp:
    @pytest.fixture
    def app_config(self):
        return limits(SIGNUP_RATE_LIMIT="2 per minute")

    def test_third_sign_up_from_one_ip_is_429_and_creates_nothing(self, client, db):
        assert_envelope(signup(client, addr=1), 201, "Account created.")
        assert_envelope(signup(client, addr=1), 201, "Account created.")
        refused = new_email()

        assert_429(signup(client, refused, addr=1))

        assert db.users.count_documents({"email": refused}) == 0
        assert_envelope(login(client, refused, addr=1), 401, WRONG_CREDENTIALS, "Unauthorized")

    def test_another_ip_may_still_sign_up(self, client):
        assert_envelope(signup(client, addr=1), 201, "Account created.")
        assert_envelope(signup(client, addr=1), 201, "Account created.")
        assert_429(signup(client, addr=1))

        assert_envelope(signup(client, addr=2), 201, "Account created.")


def refresh(client, refresh_token, addr=1):
    return client.post("/users/token/refresh", json={"refresh_token": refresh_token}, environ_base=ip(addr))


@pytest.mark.each_database
class TestRefreshRateLimitPerIp:
    @pytest.fixture
    def app_config(self):
        return limits(REFRESH_RATE_LIMIT="2 per minute")

    def test_third_refresh_from_one_ip_is_429_and_leaves_the_token_usable(self, client, account):
        token = login(client, account).get_json()["data"]["refresh_token"]
        for _ in range(2):
            response = refresh(client, token, addr=1)
            assert_envelope(response, 200, "Tokens refreshed.")
            token = response.get_json()["data"]["refresh_token"]

        assert_429(refresh(client, token, addr=1))

        # The refused request did not spend the token: it still rotates, from another IP.
        response = refresh(client, token, addr=2)
        assert_envelope(response, 200, "Tokens refreshed.")


@pytest.mark.each_database
class TestRefreshRateLimitPerSession:
    @pytest.fixture
    def app_config(self):
        return limits(REFRESH_ACCOUNT_RATE_LIMIT="2 per minute")

    def test_third_refresh_of_one_session_is_429_from_any_ip(self, client, account):
        token = login(client, account).get_json()["data"]["refresh_token"]
        for n in (1, 2):
            response = refresh(client, token, addr=n)
            assert_envelope(response, 200, "Tokens refreshed.")
            token = response.get_json()["data"]["refresh_token"]

        assert_429(refresh(client, token, addr=3))

    def test_forged_tokens_naming_a_session_do_not_use_up_its_limit(self, client, account):
        """The session id is no secret (the access token's `sid`, the sessions list, and
        ObjectIds are guessable from one's own); bad tokens that merely name it must not
        stop its owner from refreshing."""
        token = login(client, account).get_json()["data"]["refresh_token"]
        user_id, session_id, _ = token.split(".", 2)
        for n in (1, 2):
            forged = refresh(client, f"{user_id}.{session_id}.forged-secret-{n}", addr=66)
            assert_envelope(forged, 401, REFRESH_INVALID, "Unauthorized")

        response = refresh(client, token, addr=7)

        assert_envelope(response, 200, "Tokens refreshed.")

    def test_another_account_is_unaffected(self, client, account):
        token = login(client, account).get_json()["data"]["refresh_token"]
        for n in (1, 2):
            token = refresh(client, token, addr=n).get_json()["data"]["refresh_token"]
        assert_429(refresh(client, token, addr=3))
        other = new_email()
        assert_envelope(signup(client, other, addr=254), 201, "Account created.")
        other_token = login(client, other).get_json()["data"]["refresh_token"]

        assert_envelope(refresh(client, other_token, addr=3), 200, "Tokens refreshed.")


def change_password(client, headers, current, new=STRONG, addr=1):
    body = {"current_password": current, "new_password": new}
    return client.put("/users/password", json=body, headers=headers, environ_base=ip(addr))


WRONG_CURRENT = {"current_password": "Current password is incorrect."}


@pytest.mark.each_database
class TestPasswordChangeRateLimit:
    @pytest.fixture
    def app_config(self):
        return limits(PASSWORD_RATE_LIMIT="3 per minute", PASSWORD_ACCOUNT_RATE_LIMIT="2 per minute")

    def test_third_change_of_one_account_is_429_from_any_ip_even_when_right(self, client, account):
        headers = bearer(login(client, account).get_json()["data"]["token"])
        assert_envelope(change_password(client, headers, WRONG, addr=1), 400, INVALID_FIELDS, WRONG_CURRENT)
        assert_envelope(change_password(client, headers, WRONG, addr=2), 400, INVALID_FIELDS, WRONG_CURRENT)

        assert_429(change_password(client, headers, PASSWORD, addr=3))

        assert_envelope(login(client, account, PASSWORD, addr=4), 200, "Logged in.")  # unchanged
        assert_envelope(login(client, account, STRONG, addr=4), 401, WRONG_CREDENTIALS, "Unauthorized")

    def test_rate_limited_change_is_in_the_accounts_events(self, client, account):
        headers = bearer(login(client, account).get_json()["data"]["token"])
        change_password(client, headers, WRONG, addr=1)
        change_password(client, headers, WRONG, addr=2)
        assert_429(change_password(client, headers, WRONG, addr=3))

        response = client.get("/users/events", headers=headers)

        assert_envelope(response, 200, "Events.")
        limited = [event for event in response.get_json()["data"] if event["type"] == "rate_limited"]
        assert len(limited) == 1, response.get_json()["data"]
        assert limited[0]["ip"] == "10.0.0.3"
        assert limited[0]["detail"]["scope"] == "password"

    def test_a_flood_of_refused_changes_records_one_event(self, client, account):
        headers = bearer(login(client, account).get_json()["data"]["token"])
        change_password(client, headers, WRONG, addr=1)
        change_password(client, headers, WRONG, addr=2)
        for addr in (3, 4, 5, 6):
            assert_429(change_password(client, headers, WRONG, addr=addr))

        events = client.get("/users/events", headers=headers).get_json()["data"]

        assert [event["ip"] for event in events if event["type"] == "rate_limited"] == ["10.0.0.3"]

    def test_another_account_is_unaffected_by_one_accounts_limit(self, client, account):
        headers = bearer(login(client, account).get_json()["data"]["token"])
        change_password(client, headers, WRONG, addr=1)
        change_password(client, headers, WRONG, addr=2)
        assert_429(change_password(client, headers, WRONG, addr=3))
        other = new_email()
        assert_envelope(signup(client, other, addr=254), 201, "Account created.")
        other_headers = bearer(login(client, other).get_json()["data"]["token"])

        response = change_password(client, other_headers, PASSWORD, addr=4)

        assert_envelope(response, 200, "Password changed.")

    def test_fourth_change_from_one_ip_is_429_across_accounts(self, client):
        accounts = []
        for _ in range(4):
            email = new_email()
            assert_envelope(signup(client, email, addr=254), 201, "Account created.")
            accounts.append(bearer(login(client, email).get_json()["data"]["token"]))
        for headers in accounts[:3]:
            assert_envelope(change_password(client, headers, WRONG, addr=9), 400, INVALID_FIELDS, WRONG_CURRENT)

        assert_429(change_password(client, accounts[3], PASSWORD, addr=9))


# --- lock-out after failed logins ----------------------------------------------------------


def failures_of(email: str, addr=1) -> dict:
    """The filter of the failure counter for an email tried from one test address."""
    return {"_id": f"{email} {ip(addr)['REMOTE_ADDR']}"}


def expire_lock(db, email: str, addr=1) -> None:
    """Move the lock's end into the past, as if its time had passed."""
    past = datetime.now(UTC) - timedelta(seconds=1)
    result = db.login_failures.update_one(failures_of(email, addr), {"$set": {"locked_until": past}})
    assert result.matched_count == 1


def fail(client, email, times: int, addr=1) -> None:
    for _ in range(times):
        assert_envelope(login(client, email, WRONG, addr=addr), 401, WRONG_CREDENTIALS, "Unauthorized")


def locked_retry_after(response) -> int:
    return assert_429(response, LOCKED)


@pytest.mark.each_database
class TestLockOut:
    @pytest.fixture(autouse=True)
    def stopped_clock(self, clock):
        """Waits are then exact: Retry-After is the lock's whole length."""
        return clock

    @pytest.fixture
    def app_config(self):
        return {"LOGIN_LOCKOUT_THRESHOLD": 3, "LOGIN_LOCKOUT_SECONDS": 60, "LOGIN_LOCKOUT_MAX_SECONDS": 200}

    def test_three_wrong_passwords_then_even_the_right_one_is_429_for_60_seconds(self, client, account):
        fail(client, account, 3)

        assert locked_retry_after(login(client, account)) == 60

    def test_attempts_during_a_lock_do_not_extend_it(self, client, account):
        fail(client, account, 3)
        for _ in range(3):
            assert locked_retry_after(login(client, account, WRONG)) == 60

        assert locked_retry_after(login(client, account)) == 60

    def test_unknown_email_gets_exactly_the_same_answers_as_an_account(self, client, account):
        def answers(email):
            steps = [WRONG, WRONG, WRONG, PASSWORD, WRONG]
            return [login(client, email, password) for password in steps]

        def seen(responses):
            # Every header but the request's own id.
            return [
                (r.status_code, r.get_json(), sorted(h for h in r.headers.items() if h[0] != "X-Request-ID"))
                for r in responses
            ]

        known, unknown = answers(account), answers(new_email())

        for response in known[:3]:
            assert_envelope(response, 401, WRONG_CREDENTIALS, "Unauthorized")
        for response in known[3:]:
            assert_429(response, LOCKED)
        assert seen(unknown) == seen(known)

    def test_lock_is_per_email_however_typed(self, client, account):
        other = new_email()
        assert_envelope(signup(client, other, addr=254), 201, "Account created.")
        fail(client, account, 3)

        locked_retry_after(login(client, f"  {account.upper()} "))
        assert_envelope(login(client, other), 200, "Logged in.")

    def test_after_the_lock_the_right_password_works_and_clears_the_count(self, client, account, db):
        fail(client, account, 3)
        locked_retry_after(login(client, account))
        expire_lock(db, account)

        assert_envelope(login(client, account), 200, "Logged in.")

        assert db.login_failures.find_one(failures_of(account)) is None
        fail(client, account, 1)
        assert_envelope(login(client, account), 200, "Logged in.")

    def test_after_the_lock_of_an_unknown_email_a_wrong_password_is_401_again(self, client, db):
        unknown = new_email()
        fail(client, unknown, 3)
        locked_retry_after(login(client, unknown))
        expire_lock(db, unknown)

        assert_envelope(login(client, unknown), 401, WRONG_CREDENTIALS, "Unauthorized")

    def test_lock_doubles_on_further_failures_and_is_capped(self, client, account, db):
        fail(client, account, 3)
        seen = [locked_retry_after(login(client, account))]
        for _ in range(3):
            expire_lock(db, account)
            fail(client, account, 1)  # one more failure locks again, for longer
            seen.append(locked_retry_after(login(client, account)))

        expected = [60, 120, 200, 200]  # doubling, then LOGIN_LOCKOUT_MAX_SECONDS
        assert seen == expected

    def test_even_a_long_locked_account_recovers_once_the_capped_lock_ends(self, client, account, db):
        fail(client, account, 3)
        for _ in range(5):
            expire_lock(db, account)
            fail(client, account, 1)
        assert locked_retry_after(login(client, account)) == 200
        expire_lock(db, account)

        assert_envelope(login(client, account), 200, "Logged in.")

    def test_an_attacker_cannot_keep_the_owner_locked_out_for_good(self, client, account):
        """A lock on the email alone lets anyone lock its owner out for ever: one wrong
        password as each lock ends re-locks it at once (four requests an hour at the default
        15-minute cap). The owner, from a client that has not failed, must still get in; Auth0
        scopes its lock this way, to the account and the offending IP together."""
        attacker, owner = 66, 7
        fail(client, account, 3, addr=attacker)
        locked_retry_after(login(client, account, addr=attacker))

        response = login(client, account, addr=owner)

        assert_envelope(response, 200, "Logged in.")

    def test_successful_login_resets_the_count(self, client, account):
        fail(client, account, 2)
        assert_envelope(login(client, account), 200, "Logged in.")
        fail(client, account, 2)

        assert_envelope(login(client, account), 200, "Logged in.")

    def test_lock_of_one_email_does_not_block_others_from_the_same_ip(self, client, account):
        other = new_email()
        assert_envelope(signup(client, other, addr=254), 201, "Account created.")
        fail(client, account, 3, addr=7)
        locked_retry_after(login(client, account, addr=7))

        assert_envelope(login(client, other, addr=7), 200, "Logged in.")


# --- password quality ------------------------------------------------------------------------


@pytest.mark.parametrize("password", COMMON_PASSWORDS)
def test_sign_up_with_a_common_password_is_400_saying_why(client, db, password):
    email = new_email()

    response = signup(client, email, password)

    assert_envelope(response, 400, INVALID_FIELDS, {"password": COMMON})
    assert db.users.count_documents({"email": email}) == 0


def test_sign_up_with_a_strong_password_is_201_and_it_logs_in(client):
    email = new_email()

    assert_envelope(signup(client, email, STRONG), 201, "Account created.")

    assert_envelope(login(client, email, STRONG), 200, "Logged in.")


@pytest.mark.parametrize("password", COMMON_PASSWORDS)
def test_password_change_to_a_common_password_is_400_and_changes_nothing(client, account, password):
    headers = bearer(login(client, account).get_json()["data"]["token"])

    response = change_password(client, headers, PASSWORD, password)

    assert_envelope(response, 400, INVALID_FIELDS, {"new_password": COMMON})
    assert_envelope(login(client, account, password), 401, WRONG_CREDENTIALS, "Unauthorized")
    assert_envelope(login(client, account), 200, "Logged in.")


def test_password_change_to_a_strong_password_is_200(client, account):
    headers = bearer(login(client, account).get_json()["data"]["token"])

    assert_envelope(change_password(client, headers, PASSWORD, STRONG), 200, "Password changed.")

    assert_envelope(login(client, account, STRONG), 200, "Logged in.")


# --- hash storage ------------------------------------------------------------------------------

CONFIGURED_PREFIX = "$argon2id$v=19$m=2048,t=2,p=1$"


def stored_hash(db, email: str) -> str:
    return db.users.find_one({"email": email})["password"]


def set_stored_hash(db, email: str, value: str) -> None:
    assert db.users.update_one({"email": email}, {"$set": {"password": value}}).matched_count == 1


LEGACY_HASHES = {
    "werkzeug-pbkdf2": lambda password: generate_password_hash(password, "pbkdf2:sha256:1000"),
    "werkzeug-scrypt": lambda password: generate_password_hash(password, "scrypt:1024:8:1"),
    "weaker-argon2": lambda password: PasswordHasher(time_cost=1, memory_cost=512).hash(password),
}


class TestHashStorage:
    @pytest.fixture
    def app_config(self):
        return {
            "PASSWORD_HASH_TIME_COST": 2,
            "PASSWORD_HASH_MEMORY_KIB": 2048,
            "PASSWORD_HASH_PARALLELISM": 1,
        }

    def test_new_users_hash_is_argon2id_with_the_configured_parameters(self, client, db, account):
        stored = stored_hash(db, account)

        assert stored.startswith(CONFIGURED_PREFIX), stored
        assert PasswordHasher().verify(stored, PASSWORD)

    def test_changed_password_is_stored_with_the_configured_parameters(self, client, db, account):
        headers = bearer(login(client, account).get_json()["data"]["token"])

        assert_envelope(change_password(client, headers, PASSWORD, STRONG), 200, "Password changed.")

        stored = stored_hash(db, account)
        assert stored.startswith(CONFIGURED_PREFIX), stored
        assert PasswordHasher().verify(stored, STRONG)

    @pytest.mark.parametrize("make_hash", LEGACY_HASHES.values(), ids=LEGACY_HASHES.keys())
    def test_older_hash_logs_in_and_is_upgraded(self, client, db, account, make_hash):
        set_stored_hash(db, account, make_hash(PASSWORD))

        response = login(client, account)

        assert_envelope(response, 200, "Logged in.")
        upgraded = stored_hash(db, account)
        assert upgraded.startswith(CONFIGURED_PREFIX), upgraded
        assert PasswordHasher().verify(upgraded, PASSWORD)
        # Upgraded once: the next login keeps the new hash.
        assert_envelope(login(client, account), 200, "Logged in.")
        assert stored_hash(db, account) == upgraded

    @pytest.mark.parametrize("make_hash", LEGACY_HASHES.values(), ids=LEGACY_HASHES.keys())
    def test_wrong_password_leaves_an_older_hash_alone(self, client, db, account, make_hash):
        old = make_hash(PASSWORD)
        set_stored_hash(db, account, old)

        assert_envelope(login(client, account, WRONG), 401, WRONG_CREDENTIALS, "Unauthorized")

        assert stored_hash(db, account) == old

    def test_wrong_password_leaves_a_current_hash_alone(self, client, db, account):
        before = stored_hash(db, account)

        assert_envelope(login(client, account, WRONG), 401, WRONG_CREDENTIALS, "Unauthorized")

        assert stored_hash(db, account) == before

    def test_login_with_a_current_hash_does_not_rewrite_it(self, client, db, account):
        before = stored_hash(db, account)

        assert_envelope(login(client, account), 200, "Logged in.")

        assert stored_hash(db, account) == before
