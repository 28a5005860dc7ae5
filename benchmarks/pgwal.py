"""What a workflow step writes to PostgreSQL's WAL, and how many of its row
updates stay on their page. By hand, never a test.

The WAL is PostgreSQL's durable cost of a step: every heap tuple and every
index entry a commit writes is a record in it, flushed before COMMIT returns.
This runs the ``concurrent`` (or ``--sequential``) workload of
``bench_perdure.py`` in this process on a fresh database, with the schema
created before the first LSN is read, and reports the WAL bytes per step
between the two LSNs (the server's whole WAL: run it on an otherwise idle
server), then, from the tables' statistics, the updates of ``runs`` and
``tasks`` and how many were HOT (heap-only: the new row version on the same
page, no index entry written). With the ``pg_walinspect`` extension (a
superuser can create it; PostgreSQL 15 and later ship it in contrib) the
bytes are broken down by kind of record (Heap/INSERT, Heap/HOT_UPDATE,
Btree/INSERT_LEAF, Transaction/COMMIT, ...).

    python benchmarks/pgwal.py --db postgresql://postgres@127.0.0.1:5432/test
    python benchmarks/pgwal.py --sequential -n 200 --db ...

Session 23 found with it that a third of the run row's updates left their
page (schema 7 gives ``runs`` and ``tasks`` room on each page: see
docs/decisions.md).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_perdure as bench

import perdure


def _lsn(url: str) -> str:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()
        assert row is not None
        return str(row[0])


def _updates(url: str, events: int) -> dict[str, tuple[int, int]]:
    """(updates, HOT updates) per table, once the run's events are counted:
    backends report their statistics when they end or go idle."""
    deadline = time.monotonic() + 30
    with psycopg.connect(url, autocommit=True) as conn:
        while True:
            rows = conn.execute(
                "SELECT relname, n_tup_ins, n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables"
                " WHERE relname IN ('runs', 'tasks', 'events')"
            ).fetchall()
            found = {name: (ins, upd, hot) for name, ins, upd, hot in rows}
            if found.get("events", (0,))[0] >= events or time.monotonic() > deadline:
                return {name: (upd, hot) for name, (_, upd, hot) in found.items()}
            time.sleep(0.5)


def _by_resource_manager(url: str, start: str, end: str) -> list[tuple[str, int, int, int]] | None:
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_walinspect")
            rows = conn.execute(
                'SELECT "resource_manager/record_type", count, record_size, fpi_size'
                " FROM pg_get_wal_stats(%s::pg_lsn, %s::pg_lsn, true) WHERE count > 0"
                " ORDER BY record_size + fpi_size DESC LIMIT 12",
                (start, end),
            ).fetchall()
    except psycopg.Error as exc:
        print(f"(no breakdown by resource manager: {exc})".strip())
        return None
    return [(str(r[0]), int(r[1]), int(r[2]), int(r[3])) for r in rows]


async def _schema(url: str) -> None:
    client = await perdure.Client.connect(url, tune_gc=False)
    await client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--db", required=True, help="a PostgreSQL URL (a database beside it is used)"
    )
    parser.add_argument("--sequential", action="store_true", help="one workflow at a time")
    parser.add_argument("-n", type=int, default=None, help="workflows (5,000; 200 sequential)")
    parser.add_argument("-k", type=int, default=10, help="steps per workflow")
    args = parser.parse_args()
    mode = "sequential" if args.sequential else "concurrent"
    n = args.n or (200 if args.sequential else 5000)
    url = bench.fresh_url(args.db, "pgwal")
    asyncio.run(_schema(url))
    start = _lsn(url)
    run: Any = (
        bench.sequential(url, n, args.k) if args.sequential else bench.concurrent(url, n, args.k)
    )
    result = asyncio.run(run)
    end = _lsn(url)
    steps = result["n"] * args.k  # (the sequential mode's five warm-up workflows count below)
    warm = 5 if args.sequential else 0
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT %s::pg_lsn - %s::pg_lsn", (end, start)).fetchone()
        assert row is not None
        wal = int(row[0])
    total_steps = steps + warm * args.k
    print(f"{mode}: {n} workflows of {args.k} steps ({warm} more to warm up)")
    print(f"WAL: {wal / total_steps:,.0f} bytes per step")
    # Each step appends two events, and each workflow its WorkflowStarted (format 2).
    events = (n + warm) * (2 * args.k + 2)
    for table, (updates, hot) in sorted(_updates(url, events).items()):
        if updates:
            print(f"{table}: {updates:,} updates, {hot / updates:.0%} HOT")
    breakdown = _by_resource_manager(url, start, end)
    for name, count, record, fpi in breakdown or []:
        print(
            f"  {name:<24} {count / total_steps:6.2f} records"
            f" {record / total_steps:8,.0f} B + full pages {fpi / total_steps:7,.0f} B per step"
        )


if __name__ == "__main__":
    main()
