"""What each query shape of the book reads costs the embedded database, per call.

    .venv/bin/python bench/query_shapes.py [--books 30000] [--owned 1000] [--calls 400] [--without INDEX]

Starts a SecantusDB daemon on a free loopback port (data in a temporary folder),
creates the indexes the models declare, inserts `--books` books of which `--owned`
belong to one owner (the rest to 100 others), and times each shape over one
connection: the median of `--calls` calls, with the plan the server reports. Run
alone in about a minute; the figures are in bench/README.md (Query shapes).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bson import ObjectId  # noqa: E402
from pymongo import DESCENDING, MongoClient  # noqa: E402

import launcher  # noqa: E402
from models import BOOK_FIELDS, Books  # noqa: E402


def timed(call: Callable[[], Any], calls: int) -> float:
    """Median milliseconds per call."""
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def plan(books: Any, query: dict[str, Any]) -> str:
    stage = books.find(query).explain()["queryPlanner"]["winningPlan"]
    while "inputStage" in stage and stage.get("stage") != "IXSCAN":
        stage = stage["inputStage"]
    return f"{stage.get('stage')} {stage.get('indexName', '')}".strip()


def seed(books: Any, total: int, owned: int) -> tuple[ObjectId, list[ObjectId]]:
    owner, others = ObjectId(), [ObjectId() for _ in range(100)]
    now = datetime.now(UTC)
    batch, ids, seqs = [], [], {}
    for n in range(total):
        user = owner if n < owned else others[n % len(others)]
        seqs[user] = seqs.get(user, 0) + 1
        created = now - timedelta(seconds=total - n)
        doc = {
            "_id": ObjectId(),
            "user_id": user,
            "title": f"Book {n}",
            "title_key": f"book {n}",
            "description": "A book of the query-shape measurement.",
            "category": "science",
            "image": f"{n}.jpg",
            "seq": seqs[user],
            "version": 1,
            "created_at": created,
            "updated_at": created,
        }
        if user == owner:
            ids.append(doc["_id"])
        batch.append(doc)
        if len(batch) == 1000:
            books.insert_many(batch)
            batch = []
    if batch:
        books.insert_many(batch)
    return owner, ids


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--books", type=int, default=30_000)
    parser.add_argument("--owned", type=int, default=1_000)
    parser.add_argument("--calls", type=int, default=400)
    parser.add_argument("--without", default=None, help="leave out one of the models' indexes (by name)")
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="query-shapes-")
    server, url, port = launcher.start_embedded_database(tmp)  # returns once it answers
    client: MongoClient[dict[str, Any]] | None = None
    try:
        client = MongoClient(url, tz_aware=True)
        books = client.shapes.books
        for index in Books.indexes():
            if index.name != args.without:
                books.create_index(index.keys, name=index.name, **index.options)
        owner, ids = seed(books, args.books, args.owned)
        book_id = ids[len(ids) // 2]
        shapes: list[tuple[str, dict[str, Any], Callable[[], Any]]] = [
            ("find_one {_id}", {"_id": book_id}, lambda: books.find_one({"_id": book_id})),
            (
                "find_one {_id, user_id}",
                {"_id": book_id, "user_id": owner},
                lambda: books.find_one({"_id": book_id, "user_id": owner}),
            ),
            (
                "find_one {user_id, _id} (Books.get)",
                {"user_id": owner, "_id": book_id},
                lambda: books.find_one({"user_id": owner, "_id": book_id}),
            ),
            (
                "find_one {user_id, _id} + projection",
                {"user_id": owner, "_id": book_id},
                lambda: books.find_one({"user_id": owner, "_id": book_id}, BOOK_FIELDS),
            ),
            (
                "page: window of 20 positions",
                {"user_id": owner, "seq": {"$gte": 481, "$lt": 501}},
                lambda: list(books.find({"user_id": owner, "seq": {"$gte": 481, "$lt": 501}}).sort("seq", DESCENDING)),
            ),
            (
                "page: skip 480, limit 20 by seq",
                {"user_id": owner},
                lambda: list(books.find({"user_id": owner}).sort("seq", DESCENDING).skip(480).limit(20)),
            ),
        ]
        without = f", without the {args.without} index" if args.without else ""
        print(f"{args.books:,} books, {args.owned:,} of one owner{without}; median of {args.calls} calls")
        for label, query, call in shapes:
            calls = args.calls if "skip" not in label else max(5, args.calls // 40)
            print(f"  {label:<40} {timed(call, calls):7.2f} ms   {plan(books, query)}")
        return 0
    finally:
        if client is not None:
            client.close()
        launcher.stop_database(server, port)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
