"""The worker registry's SQL, shared by the SQL backends (``SqlStore`` runs
each function in one transaction).

A registry row is advisory -- which worker serves what, and when it last said
so -- never a lease: nothing is fenced by it, and each write is a single
statement, atomic by itself. Imports the store records and the row helpers.
"""

from __future__ import annotations

from typing import Any

from perdure._store import sqlbuilds as builds
from perdure._store.base import WorkerRecord
from perdure._store.sqlrows import Tx, dumps, loads

FORGET_AFTER = 86_400.0  # seconds without a heartbeat before a row is pruned

WORKER_COLUMNS = (
    "identity, host, pid, task_queue, workflows, activities, lease_timeout,"
    " started_at, heartbeat_at, build_id"
)


async def register(tx: Tx, row: tuple[Any, ...], now: float, promotes: bool = True) -> None:
    """Upsert ``(identity, host, pid, task_queue, workflows, activities,
    lease_timeout, build_id)``: a worker restarting with its identity takes
    its row over. Rows of workers silent for a day are pruned here, so a
    SIGKILLed worker's row does not stay forever. A build the queue had not
    had becomes its current one (sqlbuilds.seen), if the worker ``promotes``."""
    identity, host, pid, task_queue, workflows, activities, lease_timeout, build_id = row
    await tx.send("DELETE FROM workers WHERE heartbeat_at < ?", (now - FORGET_AFTER,))
    await tx.send(
        f"INSERT INTO workers ({WORKER_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (identity) DO UPDATE SET host = excluded.host, pid = excluded.pid,"
        " task_queue = excluded.task_queue, workflows = excluded.workflows,"
        " activities = excluded.activities, lease_timeout = excluded.lease_timeout,"
        " started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at,"
        " build_id = excluded.build_id",
        (
            identity,
            host,
            pid,
            task_queue,
            dumps(sorted(workflows)),
            dumps(sorted(activities)),
            lease_timeout,
            now,
            now,
            build_id,
        ),
    )
    if build_id is not None and promotes:
        await builds.seen(tx, task_queue, build_id, now)


async def heartbeat(tx: Tx, identity: str, now: float) -> bool:
    """False if the worker has no row (never registered, or pruned)."""
    changed = await tx.execute(
        "UPDATE workers SET heartbeat_at = ? WHERE identity = ?", (now, identity)
    )
    return changed == 1


async def unregister(tx: Tx, identity: str) -> None:
    await tx.send("DELETE FROM workers WHERE identity = ?", (identity,))


async def list_all(tx: Tx) -> list[WorkerRecord]:
    found = await tx.all(f"SELECT {WORKER_COLUMNS} FROM workers ORDER BY started_at, identity")
    return [
        WorkerRecord(
            identity=r[0],
            host=r[1],
            pid=r[2],
            task_queue=r[3],
            workflows=loads(r[4]),
            activities=loads(r[5]),
            lease_timeout=r[6],
            started_at=r[7],
            heartbeat_at=r[8],
            build_id=r[9],
        )
        for r in found
    ]
