"""An idle worker's next due time (``Store.next_due``): what it costs to
look for a queue's first task while the queue holds a backlog the worker
cannot take (docs/queues.md "A limit per key").

Usage::

    python benchmarks/next_due.py --url sqlite:////tmp/next-due.db
    python benchmarks/next_due.py --url postgresql://postgres@127.0.0.1:5432/perdure_nd

Each case fills the store's task table afresh with ``--keys`` keys of
``--per-key`` activity tasks each, then times ``--looks`` calls of
``next_due`` one by one (the median, in ms, and what it answered, in
seconds from now):

- ``unkeyed backing off``: the tasks have no key, each due in 10 minutes
  or more (a service down, its calls' retries waiting);
- ``keyed backing off``: the same, spread over the keys;
- ``keys at their limit``: the queue is limited to one attempt per key,
  every key has one running (leased to another worker for an hour) and
  its tasks due: the answer is that hour, however long the backlog;
- ``at their limit, later``: the same, the tasks due in 10 minutes or
  more (retries backing off): none of them counts, and the look past them
  stops after a thousand (the answer is the thousandth's due time, when
  the worker looks further).

Run by hand; never a test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from typing import Any

from priorities import opened

from perdure._store.base import QueueLimitsRecord
from perdure._store.sqlstore import SqlStore

PAYLOAD = json.dumps({"name": "step", "args": [], "kwargs": {}, "options": {}})
CASES = ("unkeyed backing off", "keyed backing off", "keys at their limit", "at their limit, later")


async def fill(store: SqlStore, case: str, keys: int, per_key: int) -> None:
    now = store.clock()
    rows = []
    for k in range(keys):
        key = "" if case == CASES[0] else f"k{k:05}"
        run = f"bench-run-{k % 100}"
        if case in CASES[2:]:  # (one running)
            rows.append(("q", run, -k - 1, now + 3600, "other", PAYLOAD, now, key))
        due = [now - 1 - i if case == CASES[2] else now + 600 + i for i in range(per_key)]
        rows += [
            ("q", run, k * per_key + i, due[i], None, PAYLOAD, now, key) for i in range(per_key)
        ]

    async def body(tx: Any) -> None:
        await tx.send("DELETE FROM tasks", ())
        await tx.executemany(
            "INSERT INTO tasks (kind, queue, run_id, ref, visible_at, lease_owner, payload,"
            " created_at, fairness_key) VALUES ('activity', ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )

    await store._write(body)
    limits = QueueLimitsRecord(max_running_per_key=1) if case in CASES[2:] else None
    await store.set_queue_limits("q", limits)
    await store.claim_activity_tasks(["q"], "bench", 30, 0)  # (learns of the keys)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--keys", type=int, default=1000)
    parser.add_argument("--per-key", type=int, default=100)
    parser.add_argument("--looks", type=int, default=100)
    args = parser.parse_args()
    store = await opened(args.url)
    try:
        print(f"{args.url.split(':')[0]}: {args.keys * args.per_key} tasks over {args.keys} keys")
        for case in CASES:
            await fill(store, case, args.keys, args.per_key)
            times = []
            for _ in range(args.looks):
                started = time.perf_counter()
                due = await store.next_due(["q"], ("activity",), "bench")
                times.append(time.perf_counter() - started)
            ahead = "none" if due is None else f"{due - store.clock():.0f} s"
            print(f"  {case:22} {statistics.median(times) * 1e3:8.3f} ms  (due in {ahead})")
    finally:
        await store.close()


if __name__ == "__main__":
    asyncio.run(main())
