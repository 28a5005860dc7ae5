"""``python -m examples.stock_reservation``: an order's stock reserved
exactly once, although the worker is SIGKILLed right after the
reservation's transaction committed and before perdure recorded that the
step had completed.

1. The warehouse's database (its own SQLite file) holds 5 lamps and 2 desks.
2. Worker #1 starts with a crash point armed (``PERDURE_CRASH_AT``, the
   mechanism perdure's chaos tests use): it kills itself (SIGKILL) at the
   first moment an activity has returned and its completion is not yet
   recorded. The order for 2 lamps and 1 desk starts; the lamps' reservation
   commits, and the worker dies.
3. Worker #2 takes the run over once #1's lease runs out, and runs the
   reservation again (attempt 2). The attempt finds the record its first
   attempt committed with the stock, and returns that result without
   touching the stock. The desk is reserved, a courier booked.
4. The stock and the movements are printed: 3 lamps, 1 desk, one movement
   per line.

``--plain`` runs the same story with the same SQL in an ordinary activity:
the lamps are taken twice. ``--folder DIR`` keeps the databases there
(default: a new temporary folder).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import perdure

from .. import worker_process

LEASE_TIMEOUT = 1.0


def spawn_worker(
    number: int, url: str, folder: Path, crash_at: str | None
) -> subprocess.Popen[bytes]:
    env = {"WAREHOUSE_DB": f"sqlite:///{folder / 'warehouse.db'}"}
    if crash_at:
        env["PERDURE_CRASH_AT"] = crash_at
    return worker_process.spawn_worker(
        "examples.stock_reservation.warehouse",
        url,
        folder / f"worker-{number}.log",
        env,
        LEASE_TIMEOUT,
    )


async def story(folder: Path, transactional: bool) -> int:
    os.environ["WAREHOUSE_DB"] = f"sqlite:///{folder / 'warehouse.db'}"
    from .warehouse import create_tables, fulfil

    create_tables(str(folder / "warehouse.db"))
    url = f"sqlite:///{folder / 'perdure.db'}"
    kind = "a transactional activity" if transactional else "a plain activity"
    print(f"world folder: {folder}; the reservation is {kind}")
    print("stock: 5 lamps, 2 desks")
    client = await perdure.Client.connect(url)
    workers = [spawn_worker(1, url, folder, crash_at="activity.before_complete:1")]
    try:
        handle = await client.start(fulfil, "o-1", {"lamp": 2, "desk": 1}, transactional, id="o-1")
        workers[0].wait(timeout=60)
        assert workers[0].returncode == -signal.SIGKILL, workers[0].returncode
        print("worker #1 reserved the lamps and was killed (SIGKILL) before recording it")
        workers.append(spawn_worker(2, url, folder, crash_at=None))
        print("worker #2 takes the run over once worker #1's lease runs out")
        print(f"result: {await handle.result(timeout=60)}")
        history = await handle.history()
    finally:
        worker_process.stop(workers)
        await client.close()
    attempts = [e["attempt"] for e in history if e["type"] == "ActivityCompleted"]
    print(f"attempts of each step: {attempts} (the lamps' reservation had a second attempt)")
    with sqlite3.connect(folder / "warehouse.db") as conn:
        stock = dict(conn.execute("SELECT sku, qty FROM stock ORDER BY sku"))
        moves = list(conn.execute("SELECT order_id, sku, qty FROM movements ORDER BY rowid"))
    print(f"stock now: {stock}")
    print(f"movements: {moves}")
    once = stock == {"desk": 1, "lamp": 3} and len(moves) == 2
    print(
        "each line was taken off the shelf once"
        if once
        else "the lamps were taken off the shelf twice: the plain activity ran again"
    )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--folder", help="where the databases go")
    parser.add_argument("--plain", action="store_true", help="an ordinary activity instead")
    args = parser.parse_args()
    folder = Path(args.folder or tempfile.mkdtemp(prefix="perdure-stock-"))
    folder.mkdir(parents=True, exist_ok=True)
    return asyncio.run(story(folder, transactional=not args.plain))


if __name__ == "__main__":
    sys.exit(main())
