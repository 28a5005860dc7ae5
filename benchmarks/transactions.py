"""What a transactional activity's record costs: a one-step workflow whose
step updates a row of the application's database, run one after another,
(a) as a transactional activity (``AppDatabase.transaction``: the record
read first and written with the commit) and (b) as a plain activity doing
the same update in a transaction of the same AppDatabase with no record.
The difference is the record's read and insert.

Usage::

    python benchmarks/transactions.py --url sqlite:////tmp/tx-bench/perdure.db --runs 400
    python benchmarks/transactions.py --url postgresql://postgres@127.0.0.1:5432/test

On SQLite perdure's database and the application's are two new files in
the folder of the URL given (``perdure.db``, ``app.db``); on PostgreSQL both
go to one fresh schema of the database given, dropped at the end. One worker and its client in
one process; the two kinds alternate in blocks of 25, so that the machine's
drift falls on both alike. Prints the p50 and p99 of each kind's workflow,
in milliseconds, and their ratio. Run by hand; never a test.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sqlite3
import statistics
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import perdure
from perdure import activity, workflow
from perdure.transactions import AppDatabase

BLOCK = 25


def databases(url: str) -> tuple[str, str, Any]:
    """perdure's database and the application's for ``url``, and how to drop
    them: on SQLite two files in the folder of ``url``'s; on PostgreSQL one
    fresh schema of ``url``'s database for both."""
    if url.startswith("sqlite:"):
        folder = Path(url.removeprefix("sqlite:///")).parent
        paths = [folder / "perdure.db", folder / "app.db"]
        for path in paths:
            path.unlink(missing_ok=True)
        with sqlite3.connect(paths[1]) as conn:
            conn.execute("CREATE TABLE counters (name TEXT PRIMARY KEY, n INTEGER)")
            conn.execute("INSERT INTO counters VALUES ('orders', 0)")
        return f"sqlite:///{paths[0]}", f"sqlite:///{paths[1]}", lambda: None
    import psycopg

    schema = f"txbench_{secrets.token_hex(4)}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
        conn.execute(f"CREATE TABLE {schema}.counters (name TEXT PRIMARY KEY, n INTEGER)")
        conn.execute(f"INSERT INTO {schema}.counters VALUES ('orders', 0)")

    def drop() -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")

    joiner = "&" if "?" in url else "?"
    both = f"{url}{joiner}{urlencode({'options': f'-csearch_path={schema}'})}"
    return both, both, drop


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--url", required=True, help="sqlite:///DIR/perdure.db (files in DIR) or a PostgreSQL URL"
    )
    parser.add_argument("--runs", type=int, default=400, help="workflows of each kind")
    args = parser.parse_args()
    perdure_url, app_url, drop = databases(args.url)
    db = AppDatabase(app_url)
    mark = "?" if db.dialect == "sqlite" else "%s"
    bump = f"UPDATE counters SET n = n + 1 WHERE name = {mark}"

    def count(conn: Any, name: str) -> int:
        conn.execute(bump, (name,))
        return 1

    bump_recorded = db.transaction(name="bump_recorded")(count)

    @activity.defn(name="bump_plainly")
    def bump_plainly(name: str) -> int:
        return int(db._backend.run(None, lambda conn: count(conn, name), None, None))

    @workflow.defn(name="bench_tx")
    async def one(recorded: bool) -> int:
        return await (bump_recorded("orders") if recorded else bump_plainly("orders"))

    client = await perdure.Client.connect(perdure_url)
    took: dict[bool, list[float]] = {True: [], False: []}
    try:
        async with perdure.Worker(
            client, workflows=[one], activities=[bump_recorded, bump_plainly]
        ):
            for recorded in (True, False):  # (a warm-up of each)
                await client.execute(one, recorded, id=f"warm-{recorded}")
            n = 0
            while len(took[True]) < args.runs:
                for recorded in (True, False):
                    for _ in range(BLOCK):
                        n += 1
                        started = time.perf_counter()
                        await client.execute(one, recorded, id=f"w{n}")
                        took[recorded].append((time.perf_counter() - started) * 1000)
    finally:
        await client.close()
        db.close()
        drop()

    def p(values: list[float], q: float) -> float:
        return statistics.quantiles(values, n=100)[int(q) - 1]

    for recorded, label in ((True, "transactional"), (False, "plain, same SQL")):
        values = took[recorded]
        print(f"{label:>16}: p50 {p(values, 50):6.2f} ms  p99 {p(values, 99):6.2f} ms")
    ratio = statistics.median(took[True]) / statistics.median(took[False])
    print(f"transactional / plain at the median: {ratio:.2f}")


if __name__ == "__main__":
    asyncio.run(main())
