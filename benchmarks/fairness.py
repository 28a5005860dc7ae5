"""Fairness keys: what a claim costs when a queue's backlog is spread over
keys (docs/queues.md "Fairness"), against one without keys.

Usage::

    python benchmarks/fairness.py --url sqlite:////tmp/fair.db
    python benchmarks/fairness.py --url postgresql://postgres@127.0.0.1:5432/perdure_fair

For each case the store gets a fresh backlog of ``--backlog`` due activity
tasks (of 100 runs), and ``--claims`` claims of ``--take`` tasks each are
timed one by one (the median, in µs, and the ratio to the first case,
measured in the same run, the cases alternating):

- ``no keys``: the whole backlog without a key (the claim of before keys);
- ``2 keys``: all but ten tasks of one key, ten of another;
- ``100 keys`` and ``1000 keys``: the backlog spread evenly over them;
- ``900 keys not due``: 100 keys with due tasks, and 900 more whose tasks
  are all leased to another worker (their attempts run), which each claim's
  walk from key to key passes over.

Run by hand; never a test.
"""

from __future__ import annotations

import asyncio
import functools
import json
from typing import Any

from priorities import claims_parser, compare, opened

from perdure._store.sqlstore import SqlStore

PAYLOAD = json.dumps({"name": "step", "args": [], "kwargs": {}, "options": {}})


async def fill(store: SqlStore, backlog: int, key_of: Any, idle_keys: int) -> None:
    """A fresh backlog: every task row deleted, then ``backlog`` due
    activity tasks, task i of key ``key_of(i)``, and one leased task of
    each of ``idle_keys`` more keys."""
    now = store.clock()

    async def body(tx: Any) -> None:
        await tx.send("DELETE FROM tasks", ())
        rows = [
            ("q", f"bench-run-{i % 100}", i, now - 1, 0, PAYLOAD, now, key_of(i))
            for i in range(backlog)
        ]
        rows += [
            ("q", f"bench-run-{i % 100}", backlog + i, now + 3600, 1, PAYLOAD, now, f"idle-{i}")
            for i in range(idle_keys)
        ]
        await tx.executemany(
            "INSERT INTO tasks (kind, queue, run_id, ref, visible_at, attempt, payload,"
            " created_at, fairness_key) VALUES ('activity', ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )

    await store._write(body)


async def main() -> None:
    args = claims_parser(__doc__).parse_args()
    store = await opened(args.url)
    backlog = args.backlog
    try:
        cases = {
            "no keys": (lambda i: "", 0),
            "2 keys": (lambda i: "big" if i < backlog - 10 else "small", 0),
            "100 keys": (lambda i: f"k{i % 100}", 0),
            "1000 keys": (lambda i: f"k{i % 1000}", 0),
            "900 keys not due": (lambda i: f"k{i % 100}", 900),
        }
        fills = {
            name: functools.partial(fill, store, backlog, key_of, idle)
            for name, (key_of, idle) in cases.items()
        }
        await compare(store, fills, args)
    finally:
        await store.close()


if __name__ == "__main__":
    asyncio.run(main())
