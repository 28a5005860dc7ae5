"""When the steps of a concurrent run were done: the `concurrent --processes N`
workload of bench_perdure.py (``-n`` workflows of ``-k`` steps started at once
by this process, run by ``perdure worker`` processes on a fresh SQLite file),
then each step's completion read back from the history (the time of every
``ActivityCompleted`` event), in buckets of 100 ms.

The whole run's steps per second is the benchmark's figure. The middle half
(from the moment a quarter of the steps were done to the moment three
quarters were) shows the rate once the workers are full, without the ramp at
the start (the client inserting the runs beside the workers) or the tail.

Usage: python benchmarks/timeline.py [-n 5000] [-k 10] [--processes 2] [--slots 500]
Run by hand; never a test.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import sqlite3
import time

import workloads as w
from bench_perdure import fresh_url
from processes import serving

BUCKET = 0.1  # seconds


async def run(url: str, n: int, k: int, processes: int, slots: int) -> float:
    """The benchmark's run; its wall time."""
    async with serving(url, processes, "--max-activities", str(slots)) as (client, _):
        t0 = time.perf_counter()
        handles = await asyncio.gather(*(client.start(w.steps, k) for _ in range(n)))
        await asyncio.gather(*(h.result(timeout=600) for h in handles))
        return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=5000)
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--slots", type=int, default=500)
    args = parser.parse_args()
    url = fresh_url("sqlite", "timeline")
    wall = asyncio.run(run(url, args.n, args.k, args.processes, args.slots))
    with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
        rows = conn.execute(
            "SELECT type, time FROM events"
            " WHERE type IN ('ActivityCompleted', 'WorkflowStarted') ORDER BY time"
        ).fetchall()
    steps = [t for kind, t in rows if kind == "ActivityCompleted"]
    if len(steps) != args.n * args.k:
        raise SystemExit(f"expected {args.n * args.k} completed steps, found {len(steps)}")
    origin = rows[0][1]
    done: collections.Counter[int] = collections.Counter()
    taken: collections.Counter[int] = collections.Counter()
    for kind, t in rows:
        (done if kind == "ActivityCompleted" else taken)[int((t - origin) / BUCKET)] += 1
    print("s after the first event | steps done | runs taken by a worker")
    for slot in range(max(done) + 1):
        print(f"{slot * BUCKET:5.1f} | {done[slot]:6d} | {taken[slot]:6d}")
    quarter, three_quarters = steps[len(steps) // 4], steps[3 * len(steps) // 4]
    middle = (len(steps) // 2) / (three_quarters - quarter)
    print(
        f"whole run: {args.n * args.k / wall:,.0f} steps/s ({wall:.2f} s); "
        f"middle half of the steps: {middle:,.0f} steps/s"
    )


if __name__ == "__main__":
    main()
