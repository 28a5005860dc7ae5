"""Limits per fairness key: what a claim of a limited queue costs when it
counts each key's running attempts (docs/queues.md "A limit per key"), or
each key's starts in the rate limit's window ("A rate limit per key"),
against the same queue limited without them, and without limits.

Usage::

    python benchmarks/key_limits.py --url sqlite:////tmp/key-limits.db
    python benchmarks/key_limits.py --url postgresql://postgres@127.0.0.1:5432/perdure_kl

Each case has the same backlog of ``--backlog`` due activity tasks over 100
keys (of 100 runs), and 900 more keys with one due task and one attempt
running (leased to another worker) each; ``--claims`` claims of ``--take``
tasks are timed one by one (the median, in µs, and the ratio to the first
case, measured in the same run, the cases alternating). After each claim
its tasks are put back (untimed), so every claim sees the same backlog:

- ``no limits``: the queue without limits (its claim of before);
- ``max_running``: limited to 1,000,000 running (a claim counts the
  queue's running attempts first);
- ``per key, none at it``: and at most 1,000 per key (the count is by key;
  no key is at its limit);
- ``per key, 900 at it``: at most 1 per key: the 900 keys with an attempt
  running are at their limit, and each claim's walk passes over them;
- ``rate per key, none at it``: no limit of attempts running, at most
  1,000 of a key started per hour, the 900 keys with one start each in the
  window (each claim reads the window's 900 starts);
- ``rate per key, 900 at it``: at most 1 of a key started per hour: the
  900 keys are at their rate, and each claim's walk passes over them.

The starts a claim records are put back too (deleted), so every claim sees
the same window.

Run by hand; never a test.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from typing import Any

from priorities import claims_parser, opened

from perdure._store.base import QueueLimitsRecord
from perdure._store.sqlstore import SqlStore

PAYLOAD = json.dumps({"name": "step", "args": [], "kwargs": {}, "options": {}})
BUSY_KEYS = 900


async def fill(store: SqlStore, backlog: int, limits: QueueLimitsRecord | None) -> None:
    """A fresh backlog (every task row deleted first) and the case's limits."""
    now = store.clock()

    async def body(tx: Any) -> None:
        await tx.send("DELETE FROM tasks", ())
        rows = [
            ("q", f"bench-run-{i % 100}", i, now - 1, None, PAYLOAD, now, f"k{i % 100:03}")
            for i in range(backlog)
        ]
        for i in range(BUSY_KEYS):  # (one running, one due)
            key = f"busy{i:03}"
            rows.append(("q", f"bench-run-{i % 100}", backlog + 2 * i, now + 3600, "other",
                         PAYLOAD, now, key))  # fmt: skip
            rows.append(("q", f"bench-run-{i % 100}", backlog + 2 * i + 1, now - 1, None,
                         PAYLOAD, now, key))  # fmt: skip
        await tx.executemany(
            "INSERT INTO tasks (kind, queue, run_id, ref, visible_at, lease_owner, payload,"
            " created_at, fairness_key) VALUES ('activity', ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )

    await store._write(body)
    await store.set_queue_limits("q", limits)
    if limits is not None and limits.max_starts_per_key is not None:

        async def started(tx: Any) -> None:  # (one start of each busy key)
            await tx.executemany(
                "INSERT INTO queue_starts (queue, started_at, fairness_key) VALUES ('q', ?, ?)",
                [(now, f"busy{i:03}") for i in range(BUSY_KEYS)],
            )

        await store._write(started)
    await store.claim_activity_tasks(["q"], "bench", 30, 0)  # (learns of the keys)


async def put_back(store: SqlStore) -> None:
    now = store.clock()

    async def body(tx: Any) -> None:
        await tx.send(
            "UPDATE tasks SET lease_owner = NULL, lease_token = NULL, visible_at = ?"
            " WHERE lease_owner = 'bench'",
            (now - 1,),
        )
        await tx.send("DELETE FROM queue_starts WHERE fairness_key LIKE ?", ("k%",))

    await store._write(body)


async def timed_claims(store: SqlStore, claims: int, take: int) -> float:
    times = []
    for _ in range(claims):
        started = time.perf_counter()
        got = await store.claim_activity_tasks(["q"], "bench", 30, take)
        times.append(time.perf_counter() - started)
        assert len(got) == take, len(got)
        await put_back(store)
    return statistics.median(times) * 1e6


async def main() -> None:
    args = claims_parser(__doc__).parse_args()
    store = await opened(args.url)
    cases = {
        "no limits": None,
        "max_running": QueueLimitsRecord(max_running=1_000_000),
        "per key, none at it": QueueLimitsRecord(max_running=1_000_000, max_running_per_key=1000),
        "per key, 900 at it": QueueLimitsRecord(max_running=1_000_000, max_running_per_key=1),
        "rate per key, none at it": QueueLimitsRecord(max_starts_per_key=1000, per=3600.0),
        "rate per key, 900 at it": QueueLimitsRecord(max_starts_per_key=1, per=3600.0),
    }
    results: dict[str, list[float]] = {name: [] for name in cases}
    try:
        for _ in range(args.rounds):
            for name, limits in cases.items():
                await fill(store, args.backlog, limits)
                results[name].append(await timed_claims(store, args.claims, args.take))
    finally:
        await store.close()
    base = statistics.median(results["no limits"])
    print(f"{args.url.split(':')[0]}: claims of {args.take} from a backlog of {args.backlog}")
    for name, values in results.items():
        median = statistics.median(values)
        print(f"  {name:24} {median:8.1f} µs per claim  ({median / base:.2f}x)")


if __name__ == "__main__":
    asyncio.run(main())
