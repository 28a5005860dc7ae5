"""Worker builds' SQL (docs/versioning.md, "Pinning runs to a build"),
shared by the SQL backends: the builds of a queue, or of every queue, and
which is current, and an open run moved to another build (or
unpinned). Runs are pinned by their turns (sqlturn's PIN_RUN); each run's
workflow tasks go to its records.turn_queue. Imports the store records and
the row helpers.
"""

from __future__ import annotations

import dataclasses

from perdure._store.base import OPEN, RunRecord
from perdure._store.sqlrows import TURN_QUEUE, Dialect, Tx, open_run

# A build first seen on a queue is promoted then: the newest build to start
# a worker takes the queue's new runs, with no step for the operator. A
# worker that starts again keeps its build's place (ON CONFLICT DO NOTHING).
_SEEN = (
    "INSERT INTO queue_builds (queue, build_id, promoted_at) VALUES (?, ?, ?)"
    " ON CONFLICT (queue, build_id) DO NOTHING"
)
# A build made current stops ramping (it takes every new run now).
_PROMOTE = (
    "INSERT INTO queue_builds (queue, build_id, promoted_at) VALUES (?, ?, ?)"
    " ON CONFLICT (queue, build_id) DO UPDATE SET promoted_at = excluded.promoted_at,"
    " ramp = NULL"
)
# A build set to ramp that the queue has not had yet is written as never
# promoted (promoted_at 0: before any current build), so that it does not
# become current, and its first worker's start does not promote it (_SEEN).
_RAMP = (
    "INSERT INTO queue_builds (queue, build_id, promoted_at, ramp) VALUES (?, ?, 0, ?)"
    " ON CONFLICT (queue, build_id) DO UPDATE SET ramp = excluded.ramp"
)


async def seen(tx: Tx, queue: str, build_id: str, now: float) -> None:
    await tx.send(_SEEN, (queue, build_id, await _after_the_last(tx, queue, now)))


async def promote(tx: Tx, d: Dialect, queue: str, build_id: str, now: float) -> None:
    await _lock_current(tx, d, queue)
    await tx.send(_PROMOTE, (queue, build_id, await _after_the_last(tx, queue, now)))


async def _lock_current(tx: Tx, d: Dialect, queue: str) -> None:
    """Lock the queue's current build's row (PostgreSQL; SQLite serialises
    its writers): an operator's promotions and ramps of one queue take
    turns, so that two ramps at once leave one build ramping, and a ramp
    never names a build made current meanwhile (each reads the current
    build again after this)."""
    if d.for_update:
        await tx.one(_CURRENT + d.for_update, (queue,))


async def _after_the_last(tx: Tx, queue: str, now: float) -> float:
    """``now``, or just after the queue's last promotion if that is later
    (written by a host whose clock is ahead of this one's)."""
    row = await tx.one("SELECT MAX(promoted_at) FROM queue_builds WHERE queue = ?", (queue,))
    if row is not None and row[0] is not None:
        return max(now, float(row[0]) + 0.001)
    return now


_CURRENT = (
    "SELECT build_id FROM queue_builds WHERE queue = ?"
    " ORDER BY promoted_at DESC, build_id DESC LIMIT 1"
)


async def current(tx: Tx, queue: str) -> str | None:
    """The queue's current build: the one promoted last (None: it has had none)."""
    row = await tx.one(_CURRENT, (queue,))
    return None if row is None else str(row[0])


async def ramp(tx: Tx, d: Dialect, queue: str, build_id: str | None, percent: float) -> None:
    """Make ``build_id`` the queue's ramping build, taking ``percent`` of its
    new runs (None: no build ramps). Only a build other than the current
    one ramps, and only beside a current build: ValueError otherwise."""
    await _lock_current(tx, d, queue)
    if build_id is None:
        await tx.send("UPDATE queue_builds SET ramp = NULL WHERE queue = ?", (queue,))
        return
    named = await current(tx, queue)  # (read again once locked: a new snapshot)
    if named is None:
        raise ValueError(
            f"task queue {queue!r} has no current build for {build_id!r} to ramp beside: "
            "start a worker of workflows with a build id first, or make a build current"
        )
    if named == build_id:
        raise ValueError(
            f"build {build_id!r} is the current build of task queue {queue!r}: it takes "
            "every new run already; only another build ramps"
        )
    await tx.send(
        "UPDATE queue_builds SET ramp = NULL WHERE queue = ? AND build_id <> ?", (queue, build_id)
    )
    await tx.send(_RAMP, (queue, build_id, percent))


async def ramping(tx: Tx, queue: str) -> tuple[str, float] | None:
    """The queue's ramping build and its share of new runs in percent (None: none ramps)."""
    row = await tx.one(
        "SELECT build_id, ramp FROM queue_builds WHERE queue = ? AND ramp IS NOT NULL", (queue,)
    )
    return None if row is None else (str(row[0]), float(row[1]))


BuildRow = tuple[str, float, int | None, float | None]


async def builds(tx: Tx, queue: str | None, with_runs: bool) -> dict[str, list[BuildRow]]:
    """By queue (``queue``'s alone, or every queue that has had a build,
    sorted by name), (build id, promoted at (0: never), open runs pinned to
    it if ``with_runs``, its ramp in percent if it ramps) of each build the
    queue has had, the current first. One statement for all queues. Queues
    are sorted here, not by SQL: PostgreSQL orders text by its database's
    collation, SQLite by code point, and both backends must give one order."""
    runs = (
        "(SELECT COUNT(*) FROM runs WHERE runs.build_id = queue_builds.build_id"
        " AND runs.status = ? AND runs.task_queue = queue_builds.queue)"
        if with_runs
        else "NULL"
    )
    where = "" if queue is None else " WHERE queue = ?"
    params = ((OPEN,) if with_runs else ()) + (() if queue is None else (queue,))
    found = await tx.all(
        f"SELECT queue, build_id, promoted_at, {runs}, ramp FROM queue_builds{where}"
        " ORDER BY promoted_at DESC, build_id DESC",
        params,
    )
    by_queue: dict[str, list[BuildRow]] = {}
    for r in found:
        by_queue.setdefault(str(r[0]), []).append((r[1], r[2], r[3], r[4]))
    return dict(sorted(by_queue.items()))


async def move_run(
    tx: Tx, d: Dialect, workflow_id: str, run_id: str | None, build_id: str | None, now: float
) -> RunRecord:
    """Pin an open run to ``build_id`` (None: unpin it, for the queue's
    current build to take on, and pin again if its type is pinned). Its
    version moves on, as a priority change's does: a turn in flight on the
    old build is fenced out and computed again by the new one. Its workflow
    task goes to the new queue, a lease on it let go (that turn will not
    commit), and nothing of it stays held by the old build's worker: the
    claim that leased it is not counted as an attempt, as a hand-back's is
    not (a worker of the old build that hands a new run to the ramping build
    moves it so: counted, the handing would read as a lost attempt, and a
    run that had lost two would wait again, lost_turn_wait)."""
    run = await open_run(tx, d, workflow_id, run_id)
    # (The run's row first, then its tasks and timers: the store's lock order.)
    await tx.send(
        "UPDATE runs SET build_id = ?, version = version + 1, holder = NULL WHERE run_id = ?",
        (build_id, run.run_id),
    )
    await tx.send(
        f"UPDATE tasks SET queue = (SELECT {TURN_QUEUE} FROM runs WHERE run_id = ?),"
        " visible_at = CASE WHEN lease_token IS NULL THEN visible_at ELSE ? END,"
        " attempt = CASE WHEN lease_token IS NULL THEN attempt ELSE attempt - 1 END,"
        " lease_owner = NULL, lease_token = NULL WHERE kind = 'workflow' AND run_id = ?",
        (run.run_id, now, run.run_id),
    )
    await tx.send(
        "UPDATE timers SET holder = NULL WHERE run_id = ? AND holder IS NOT NULL", (run.run_id,)
    )
    return dataclasses.replace(run, build_id=build_id, version=run.version + 1)
