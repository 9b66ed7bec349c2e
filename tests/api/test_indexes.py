"""The queries that grow with the data are served by indexes, proven with explain() on the real server."""

import pytest
from bson import ObjectId

from models import Books


def winning_stages(plan: dict) -> list[tuple[str, str | None, tuple]]:
    """(stage, index name, index key fields) of a winning plan, outermost first."""
    stages = []
    while plan:
        stages.append((plan.get("stage"), plan.get("indexName"), tuple(plan.get("keyPattern", {}))))
        plan = plan.get("inputStage")
    return stages


@pytest.fixture
def backend():
    """explain() plans come from the real MongoDB-protocol server."""
    return "secantus"


@pytest.fixture
def owner(client, auth, create_book):
    headers = auth.headers()
    for number, category in enumerate(["science", "poetry", "science"]):
        create_book(headers, title=f"Book {number}", category=category)
    return ObjectId(client.get("/users/", headers=headers).get_json()["data"]["id"])


@pytest.mark.parametrize("category", [None, "science"])
def test_listing_a_page_of_books_is_an_index_scan_of_the_owners_books(app, owner, category):
    with app.app_context():
        cursor = Books.page_cursor(owner, page=1, per_page=20, category=category)
        stages = winning_stages(cursor.explain()["queryPlanner"]["winningPlan"])
        found = len(list(Books.page_cursor(owner, page=1, per_page=20, category=category)))

    # The planner may pick any index led by user_id (the embedded server still sorts the
    # owner's entries itself); what matters is that only the owner's entries are read.
    scans = [keys for stage, _, keys in stages if stage == "IXSCAN"]
    assert scans and scans[0][0] == "user_id"
    assert "COLLSCAN" not in [stage for stage, _, _ in stages]
    assert found == (3 if category is None else 2)


def test_login_lookup_by_email_uses_the_unique_index(db, owner):
    plan = db.command("explain", {"find": "users", "filter": {"email": "nobody@example.com"}})
    stages = winning_stages(plan["queryPlanner"]["winningPlan"])

    assert ("IXSCAN", "email_unique", ("email",)) in stages
