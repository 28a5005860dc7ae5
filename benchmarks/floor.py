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

``--engine``: the floor of a minimal engine instead, one that also runs
workflow code and keeps a history. Each run is a Python coroutine (a loop of
ten awaited steps, as the benchmark's workflow) resumed with each step's
result; each step appends three history events (the turn's start, the
activity's completion, the next activity's scheduling), each encoded to JSON
on its own; a round writes all its steps with one ``executemany`` per
statement (the run's version, the events, the step's task row taken over by
the next activity). Still no leases, fences, converter, cache, wake-ups or
threads: what any engine of this kind must do in CPython, and no more.

With ``--engine --batch 1`` the runs go one at a time, as in perdure's
``sequential`` benchmark: each workflow is its start's commit and then one
commit per step (eleven for ten steps), and ``p50_ms`` is the median time
of one whole workflow: the floor under a sequential workflow's latency.

Usage: python benchmarks/floor.py [-n STEPS] [--batch N] [--engine]
Prints one JSON line. Run by hand, or by ``run.py`` beside perdure's runs;
never a test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import statistics
import tempfile
import time
from typing import Any

SCHEMA = [
    "CREATE TABLE runs (run_id TEXT PRIMARY KEY, version INTEGER NOT NULL) WITHOUT ROWID",
    "CREATE TABLE events (run_id TEXT NOT NULL, seq INTEGER NOT NULL, data TEXT NOT NULL,"
    " PRIMARY KEY (run_id, seq)) WITHOUT ROWID",
    "CREATE TABLE tasks (id INTEGER PRIMARY KEY, run_id TEXT NOT NULL, ref INTEGER NOT NULL)",
]


def open_db() -> sqlite3.Connection:
    """A fresh database file, set up as perdure's (WAL, ``synchronous=FULL``)."""
    folder = tempfile.mkdtemp(prefix="perdure-floor-")
    conn = sqlite3.connect(os.path.join(folder, "floor.db"), isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    for sql in SCHEMA:
        conn.execute(sql)
    return conn


def measured(
    mode: str, done: int, batch: int, t0: float, cpu0: float, batches: list[float] | None = None
) -> dict[str, Any]:
    """The JSON line. ``batches``: each batch's time from its start's commit
    to its last step's (the engine's), for ``p50_ms``."""
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    out = {
        "mode": mode,
        "db": "sqlite",
        "n": done,
        "batch": batch,
        "steps_per_s": done / wall,
        "cpu_us_per_step": cpu / done * 1e6,
    }
    if batches:
        out["p50_ms"] = statistics.median(batches) * 1e3
    return out


async def step(i: int) -> dict[str, Any]:
    return {"i": i, "ok": True}


async def main(n: int, batch: int) -> dict[str, Any]:
    conn = open_db()
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
    result = measured("floor", done, batch, t0, cpu0)
    conn.close()  # (not timed: the last connection's close checkpoints the WAL)
    return result


class Schedule:
    """The one command of the minimal engine's workflows: run activity ``step(i)``."""

    __slots__ = ("i",)

    def __init__(self, i: int) -> None:
        self.i = i

    def __await__(self) -> Any:
        return (yield self)


async def workflow(k: int) -> dict[str, Any]:
    last: dict[str, Any] = {}
    for i in range(k):
        last = await Schedule(i)
    return {"k": k, "last": last}


async def engine(n: int, batch: int, k: int = 10) -> dict[str, Any]:
    conn = open_db()
    dumps = json.JSONEncoder(separators=(",", ":")).encode
    cpu0, t0 = time.process_time(), time.perf_counter()
    done = 0
    serial = 0
    batches: list[float] = []
    while done < n:
        # A batch of runs, each started and taken to its first step.
        started = time.perf_counter()
        runs: dict[str, tuple[Any, int, int]] = {}  # run id -> coroutine, command, seq
        conn.execute("BEGIN IMMEDIATE")
        for _ in range(batch):
            serial += 1
            run_id = f"{serial:08x}-run"
            coro = workflow(k)
            command = coro.send(None)
            runs[run_id] = (coro, command.i, 1)
            conn.execute("INSERT INTO runs VALUES (?, 0)", (run_id,))
            conn.execute("INSERT INTO tasks (id, run_id, ref) VALUES (?, ?, 0)", (serial, run_id))
        conn.execute("COMMIT")
        ids = {run_id: int(run_id[:8], 16) for run_id in runs}
        while runs:
            results = await asyncio.gather(
                *(asyncio.ensure_future(step(i)) for _, i, _ in runs.values())
            )
            versions, events, tasks = [], [], []
            now = time.time()
            for (run_id, (coro, i, seq)), result in zip(list(runs.items()), results, strict=True):
                versions.append((run_id,))
                events.append(
                    (run_id, seq, dumps({"type": "TurnStarted", "seq": seq, "time": now}))
                )
                events.append(
                    (
                        run_id,
                        seq + 1,
                        dumps(
                            {
                                "type": "ActivityCompleted",
                                "seq": seq + 1,
                                "time": now,
                                "ref": i,
                                "result": result,
                            }
                        ),
                    )
                )
                try:
                    command = coro.send(result)
                except StopIteration:
                    del runs[run_id]  # (its last step: the completion goes with it)
                    tasks.append((-1, ids[run_id]))
                    continue
                events.append(
                    (
                        run_id,
                        seq + 2,
                        dumps(
                            {
                                "type": "ActivityScheduled",
                                "seq": seq + 2,
                                "time": now,
                                "ref": command.i,
                                "name": "step",
                                "args": [command.i],
                            }
                        ),
                    )
                )
                tasks.append((command.i, ids[run_id]))
                runs[run_id] = (coro, command.i, seq + 3)
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany("UPDATE runs SET version = version + 1 WHERE run_id = ?", versions)
            conn.executemany("INSERT INTO events VALUES (?, ?, ?)", events)
            conn.executemany("UPDATE tasks SET ref = ? WHERE id = ?", tasks)
            conn.execute("COMMIT")
            done += len(results)
        batches.append(time.perf_counter() - started)
    result = measured("engine floor", done, batch, t0, cpu0, batches)
    conn.close()  # (not timed: the last connection's close checkpoints the WAL)
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--engine", action="store_true", help="a minimal engine's floor")
    args = parser.parse_args()
    run = engine if args.engine else main
    print(json.dumps(asyncio.run(run(args.n, args.batch))))
