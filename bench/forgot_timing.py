"""Does POST /users/password/forgot take as long for an unknown address as for an account's?

Starts the embedded database (as `make run` does), signs up one account, then times the
request for that address and for unknown ones, interleaved, through the app in process
(no network noise). Prints the median, p90 and mean of each and their difference.

    .venv/bin/python bench/forgot_timing.py [ROUNDS]

The request writes one outbox entry whatever the address; the sender thread does the
account lookup afterwards, off the request's path. It is switched off here so that what
is timed is what the client waits for.
"""

import os
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ["PYTHON_DOTENV_DISABLED"] = "1"

import launcher  # noqa: E402
from app import create_app  # noqa: E402
from database.client import state as database_state  # noqa: E402

FORGOT = "/users/password/forgot"

PASSWORD = "Corr3ct horse battery!"


def summary(times: list[float]) -> str:
    ms = sorted(t * 1000 for t in times)
    p90 = ms[int(len(ms) * 0.9)]
    return f"median {statistics.median(ms):6.2f} ms   p90 {p90:6.2f} ms   mean {statistics.fmean(ms):6.2f} ms"


def timed(client, email: str) -> float:
    start = time.perf_counter()
    response = client.post(FORGOT, json={"email": email})
    elapsed = time.perf_counter() - start
    assert response.status_code == 202, response.get_json()
    return elapsed


def main(rounds: int) -> None:
    with tempfile.TemporaryDirectory() as instance:
        database, url, port = launcher.start_embedded_database(instance)
        app = None
        try:
            app = create_app(
                {
                    "DATABASE_URL": url,
                    "INSTANCE_PATH": instance,
                    "RATELIMIT_ENABLED": False,
                    "REQUEST_LOG": False,
                    "MAIL_SENDER": False,
                    "MAIL_URL": "",
                }
            )
            client = app.test_client()
            signed_up = client.post(
                "/users/", json={"name": "Ada Lovelace", "email": "ada@example.com", "password": PASSWORD}
            )
            assert signed_up.status_code == 201, signed_up.get_json()
            for n in range(20):  # warm up both paths
                timed(client, "ada@example.com")
                timed(client, f"warm{n}@example.com")
            known, unknown = [], []
            for n in range(rounds):
                known.append(timed(client, "ada@example.com"))
                unknown.append(timed(client, f"nobody{n}@example.com"))
        finally:
            client = database_state(app).client if app else None
            if client is not None:
                client.close()  # before the database stops, so that it stops cleanly
            launcher.stop_database(database, port)
    print(f"POST {FORGOT}, {rounds} requests each, interleaved, embedded database")
    print(f"  existing account: {summary(known)}")
    print(f"  unknown address:  {summary(unknown)}")
    diff = statistics.median(unknown) - statistics.median(known)
    print(f"  difference of medians (unknown - existing): {diff * 1000:+.2f} ms")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 300)
