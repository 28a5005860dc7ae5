"""Where the turns of signals go with several worker processes: replays per
process. By hand; never a test.

Starts P worker processes (``multiprocessing``, each its own ``Client`` and
``Worker`` on the database), starts 200 runs that each record H events (0
by default; the ``signals`` mode records 200) and then wait for ten signals,
sends the signals in rounds from this process, and prints how many turns
each worker committed and how many of them began with a replay
(``Worker.turns.replays``: a run's first turn counts as one). With P=2 and no
held runs (before schema 8), half of the signals' turns went to the worker
that did not hold the run, and replayed; see docs/decisions.md, session 32.

Usage: python benchmarks/held_runs_probe.py DB_URL [PROCESSES [HISTORY]]
(a SQLite URL of a new file, or a PostgreSQL database of its own).
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import sys
import time
from typing import Any

from workloads import listener  # (the signals mode's workflow, with no history first)

import perdure

RUNS, SIGNALS = 200, 10


def serve(url: str, index: int, stop: Any, out: Any) -> None:
    async def run() -> None:
        client = await perdure.Client.connect(url)
        worker = perdure.Worker(client, [listener], [], identity=f"w{index}", poll_interval=0.05)
        async with worker:
            while not stop.is_set():
                await asyncio.sleep(0.05)
        out.put((index, worker.turns.replays, worker.turns.turns_committed))
        await client.close()

    asyncio.run(run())


async def drive(url: str, history: int) -> float:
    client = await perdure.Client.connect(url)
    handles = [await client.start(listener, SIGNALS, history) for _ in range(RUNS)]
    await asyncio.sleep(1.0)  # (the first turns)
    t0 = time.perf_counter()
    for _ in range(SIGNALS):
        await asyncio.gather(*(h.signal("add", 1) for h in handles))
        await asyncio.sleep(0.05)
    assert [await h.result(timeout=120) for h in handles] == [SIGNALS] * RUNS
    wall = time.perf_counter() - t0
    await client.close()
    return wall


def main() -> None:
    url = sys.argv[1]
    processes = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    history = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    ctx = mp.get_context("spawn")
    stop, out = ctx.Event(), ctx.Queue()
    workers = [ctx.Process(target=serve, args=(url, i, stop, out)) for i in range(processes)]
    for p in workers:
        p.start()
    time.sleep(2)  # (each worker connects and serves)
    wall = asyncio.run(drive(url, history))
    stop.set()
    stats = sorted(out.get() for _ in workers)
    for p in workers:
        p.join()
    print(
        {
            "processes": processes,
            "history": history,
            "wall_s": round(wall, 2),
            "replays": [s[1] for s in stats],
            "turns": [s[2] for s in stats],
        }
    )


if __name__ == "__main__":
    main()
