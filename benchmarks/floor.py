"""The floor under a durable step in CPython on this machine: what recording a
step costs with nothing else around it. Not perdure: a tight loop doing only
what any engine that records each step must do, so that perdure's numbers can
be read against it.

One "step" here: an asyncio task runs a trivial async activity (as perdure's
benchmark workload does), its result is encoded to JSON, and three statements
record it (the run's version bumped, one event row appended, the step's task
row swapped for the next one: a DELETE and an INSERT). ``--batch`` steps
share one transaction and one fsync (group commit, ``synchronous=FULL`` in WAL
mode, as perdure). No leases, fences, history model, workflow code, replay,
cache, converter, wake-ups or threads.

Usage: python benchmarks/floor.py [-n STEPS] [--batch N]
Prints one JSON line. Run by hand; never a test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import tempfile
import time
from typing import Any

SCHEMA = [
    "CREATE TABLE runs (run_id TEXT PRIMARY KEY, version INTEGER NOT NULL) WITHOUT ROWID",
    "CREATE TABLE events (run_id TEXT NOT NULL, seq INTEGER NOT NULL, data TEXT NOT NULL,"
    " PRIMARY KEY (run_id, seq)) WITHOUT ROWID",
    "CREATE TABLE tasks (id INTEGER PRIMARY KEY, run_id TEXT NOT NULL, ref INTEGER NOT NULL)",
]


async def step(i: int) -> dict[str, Any]:
    return {"i": i, "ok": True}


async def main(n: int, batch: int) -> dict[str, Any]:
    folder = tempfile.mkdtemp(prefix="perdure-floor-")
    conn = sqlite3.connect(os.path.join(folder, "floor.db"), isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    for sql in SCHEMA:
        conn.execute(sql)
    runs = [f"{i:08x}-run" for i in range(batch)]
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO runs VALUES (?, 0)", [(r,) for r in runs])
    conn.executemany("INSERT INTO tasks (run_id, ref) VALUES (?, 0)", [(r,) for r in runs])
    conn.execute("COMMIT")
    task_ids = {r: i + 1 for i, r in enumerate(runs)}
    cpu0, t0 = time.process_time(), time.perf_counter()
    done = 0
    seq = 0
    while done < n:
        seq += 1
        # Every run takes one step; the activities run as tasks, concurrently.
        results = await asyncio.gather(*(asyncio.ensure_future(step(seq)) for _ in runs))
        conn.execute("BEGIN IMMEDIATE")
        for run_id, result in zip(runs, results, strict=True):
            conn.execute("UPDATE runs SET version = version + 1 WHERE run_id = ?", (run_id,))
            conn.execute("INSERT INTO events VALUES (?, ?, ?)", (run_id, seq, json.dumps(result)))
            conn.execute("DELETE FROM tasks WHERE id = ?", (task_ids[run_id],))
            task_ids[run_id] = conn.execute(
                "INSERT INTO tasks (run_id, ref) VALUES (?, ?) RETURNING id", (run_id, seq)
            ).fetchone()[0]
        conn.execute("COMMIT")
        done += len(runs)
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    conn.close()
    return {
        "mode": "floor",
        "n": done,
        "batch": batch,
        "steps_per_s": done / wall,
        "cpu_us_per_step": cpu / done * 1e6,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.n, args.batch))))
