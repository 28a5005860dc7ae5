"""Priorities: what a claim costs when a queue's backlog is spread over
priorities, and when tasks not yet due stand in front of it.

Usage::

    python benchmarks/priorities.py --url sqlite:////tmp/prio.db
    python benchmarks/priorities.py --url postgresql://postgres@127.0.0.1:5432/perdure_prio

For each case the store gets a fresh backlog of ``--backlog`` due activity
tasks (of 100 runs), and ``--claims`` claims of ``--take`` tasks each are
timed one by one (the median, in µs, and the ratio to the first case,
measured in the same run):

- ``one priority``: the whole backlog at priority 3 (as before priorities:
  every run of the default);
- ``five priorities``: the backlog spread over 1..5;
- ``not due ahead``: as ``five priorities``, and ``--ahead`` tasks of
  priority 1 leased to another worker (not due: their attempts run)
  which each claim's range for priority 1 must not read through;
- ``empty``: no task at all (an idle worker's poll).

Run by hand; never a test.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

from perdure._store import store_for_url
from perdure._store.base import NewRun
from perdure._store.sqlstore import SqlStore

PAYLOAD = json.dumps({"name": "step", "args": [], "kwargs": {}, "options": {}})


async def fill(store: SqlStore, backlog: int, spread: bool, ahead: int) -> None:
    """A fresh backlog: every task row deleted, then ``backlog`` due
    activity tasks (and ``ahead`` leased ones of priority 1)."""
    now = store.clock()

    def priority_of(i: int) -> int:
        return 1 + i * 5 // backlog if spread else 3

    async def body(tx: Any) -> None:
        await tx.send("DELETE FROM tasks", ())
        # (Each priority's tasks in a block of rows: the claims then write the
        # same number of the table's pages in every case, and the cases differ
        # only in what the claim's query reads.)
        rows = [
            ("q", f"bench-run-{i % 100}", i, now - 1, 0, PAYLOAD, now, priority_of(i))
            for i in range(backlog)
        ]
        rows += [
            ("q", f"bench-run-{i % 100}", backlog + i, now + 3600, 1, PAYLOAD, now, 1)
            for i in range(ahead)
        ]
        await tx.executemany(
            "INSERT INTO tasks (kind, queue, run_id, ref, visible_at, attempt, payload,"
            " created_at, priority) VALUES ('activity', ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )

    await store._write(body)


async def timed_claims(store: SqlStore, claims: int, take: int) -> float:
    times = []
    for _ in range(claims):
        started = time.perf_counter()
        await store.claim_activity_tasks(["q"], "bench", 30, take)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1e6


async def compare(
    store: SqlStore, fills: dict[str, Callable[[], Awaitable[None]]], args: argparse.Namespace
) -> None:
    """Time ``args.claims`` claims of ``args.take`` after each case's fill,
    the cases alternating for ``args.rounds`` rounds (the machine's noise
    spreads over them), and print each case's median against the first's."""
    results: dict[str, list[float]] = {name: [] for name in fills}
    for _ in range(args.rounds):
        for name, filled in fills.items():
            await filled()
            results[name].append(await timed_claims(store, args.claims, args.take))
    base = statistics.median(next(iter(results.values())))
    print(f"{args.url.split(':')[0]}: claims of {args.take} from a backlog of {args.backlog}")
    for name, values in results.items():
        median = statistics.median(values)
        print(f"  {name:18} {median:8.1f} µs per claim  ({median / base:.2f}x)")


def claims_parser(doc: str) -> argparse.ArgumentParser:
    """The options of a benchmark of claims from a backlog (this one's, and
    fairness.py's)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--backlog", type=int, default=20_000)
    parser.add_argument("--claims", type=int, default=300)
    parser.add_argument("--take", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    return parser


async def opened(url: str) -> SqlStore:
    """The store of ``url``, open, with the 100 runs the tasks belong to (a
    claim reads them)."""
    store = store_for_url(url)
    assert isinstance(store, SqlStore)
    await store.open()
    for i in range(100):
        run = NewRun(f"bench-{i}", f"bench-run-{i}", "bench", "q", [], {}, seed=i)
        await store.create_run(run, "use_existing")
    return store


async def main() -> None:
    parser = claims_parser(__doc__)
    parser.add_argument("--ahead", type=int, default=5_000)
    args = parser.parse_args()
    store = await opened(args.url)
    try:
        cases = {
            "one priority": (False, 0, args.backlog),
            "five priorities": (True, 0, args.backlog),
            "not due ahead": (True, args.ahead, args.backlog),
            "empty": (False, 0, 0),
        }
        fills = {
            name: functools.partial(fill, store, backlog, spread, ahead)
            for name, (spread, ahead, backlog) in cases.items()
        }
        await compare(store, fills, args)
    finally:
        await store.close()


if __name__ == "__main__":
    asyncio.run(main())
