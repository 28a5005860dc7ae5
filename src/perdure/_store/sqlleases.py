"""The SQL of leases, shared by the SQL backends (``SqlStore`` runs each
function in one transaction): the activity tasks a claim leased, as the
worker gets them; renewing a worker's leases, an activity's heartbeat, and
a restarted worker taking its predecessor's leases back; an attempt that
awaits its completion from another process.

A lease is a task row's ``visible_at`` while its ``lease_token`` is set; each
statement here matches the token, so a lease that moved on is never touched.
An attempt awaiting completion (``activity.raise_complete_async``) keeps its
token with no ``lease_owner``: no worker renews it, takes it back or counts it
among its queue's running attempts, and its ``visible_at`` is its deadline.
Imports the row helpers only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from perdure._store import sqlrows as rows
from perdure._store.base import (
    MAX_ATTEMPT_RECORDS,
    NEVER_DUE,
    RESET_REQUESTED,
    ActivityState,
    ActivityTask,
)
from perdure._store.sqlrows import Dialect, Tx, dumps, loads

_CHUNK = 400  # (id, token) pairs per statement: two parameters each


async def renew(tx: Tx, d: Dialect, leases: list[tuple[int, str]], until: float) -> list[int]:
    """Extend ``(task id, token)`` leases to ``until``; return the ids of
    those no longer ours. A few statements for all the leases, and none of
    them waits: a row another transaction holds (a turn committing, an
    activity completing) is skipped (PostgreSQL) -- it is ours while its token
    matches, and the next renewal comes after a third of the lease."""
    renewed: set[int] = set()
    for i in range(0, len(leases), _CHUNK):
        chunk = leases[i : i + _CHUNK]
        pairs = ", ".join(["(?, ?)"] * len(chunk))
        flat = [value for held in chunk for value in held]
        for row in await tx.all(
            "UPDATE tasks SET visible_at = ? WHERE"
            f" {d.picked('id', f'FROM tasks WHERE (id, lease_token) IN (VALUES {pairs})')}"
            " AND lease_owner IS NOT NULL"
            " RETURNING id",
            (until, *flat),
        ):
            renewed.add(row[0])
        skipped = [held for held in chunk if held[0] not in renewed]
        if skipped and d.skip_locked:
            pairs = ", ".join(["(?, ?)"] * len(skipped))
            for row in await tx.all(
                f"SELECT id FROM tasks WHERE (id, lease_token) IN (VALUES {pairs})",
                [value for held in skipped for value in held],
            ):
                renewed.add(row[0])  # still ours, only busy
    return [task_id for task_id, _ in leases if task_id not in renewed]


async def heartbeat(tx: Tx, task_id: int, token: str, details: Any, until: float) -> str:
    """Record an activity's heartbeat and extend its lease: "ok", "cancelled"
    (the workflow asked it to stop), "paused" (an operator paused its
    activity), "reset" (an operator reset it) or "lost" (the lease is not
    ours). Once a reset is requested the details stay as the reset left
    them (kept, or cleared), for the next attempt to start from."""
    row = await tx.one(
        f"UPDATE tasks SET visible_at = ?, {_KEEP_DETAILS_AFTER_RESET}"
        " WHERE id = ? AND lease_token = ? AND lease_owner IS NOT NULL"
        f" RETURNING {BEAT_COLUMNS}",
        (until, dumps(details), task_id, token),
    )
    return _beat_status(row)


async def beat_awaiting(tx: Tx, task_id: int, token: str, details: Any, until: float) -> str:
    """A heartbeat from the process that completes an attempt (see
    Store.beat_awaiting): its deadline moves only once no worker owns it.
    Its statuses, and its details under a reset, as ``heartbeat``'s."""
    row = await tx.one(
        "UPDATE tasks SET visible_at = CASE WHEN lease_owner IS NULL THEN ? ELSE visible_at END,"
        f" {_KEEP_DETAILS_AFTER_RESET} WHERE id = ? AND lease_token = ? RETURNING {BEAT_COLUMNS}",
        (until, dumps(details), task_id, token),
    )
    return _beat_status(row)


# A heartbeat's details, written unless a reset is requested; what it returns.
_KEEP_DETAILS_AFTER_RESET = "heartbeat = CASE WHEN reset_requested = 1 THEN heartbeat ELSE ? END"
BEAT_COLUMNS = "cancel_requested, paused, reset_requested"


def _beat_status(row: tuple[Any, ...] | None) -> str:
    """What a heartbeat's row (BEAT_COLUMNS) tells its attempt."""
    if row is None:
        return "lost"
    return "cancelled" if row[0] else "paused" if row[1] else "reset" if row[2] else "ok"


async def await_completion(tx: Tx, task_id: int, token: str, until: float) -> bool:
    """Store.await_completion: the attempt's worker lets its task go."""
    changed = await tx.execute(
        "UPDATE tasks SET visible_at = ?, lease_owner = NULL"
        " WHERE id = ? AND lease_token = ? AND lease_owner IS NOT NULL",
        (until, task_id, token),
    )
    return changed == 1


# The columns of a claimed task that activity_tasks reads (SqlStore._claim
# returns the same).
CLAIMED_COLUMNS = (
    "id, run_id, ref, attempt, payload, heartbeat, lease_token, created_at,"
    " attempt_started_at, attempts, queue, priority, cancel_requested, paused, fairness_key"
)


async def awaiting(
    tx: Tx, task_id: int, token: str, run_id: str, ref: int, now: float
) -> ActivityTask | None:
    """Store.awaiting_activity."""
    found = await tx.all(
        f"SELECT {CLAIMED_COLUMNS} FROM tasks WHERE id = ? AND lease_token = ?"
        " AND run_id = ? AND ref = ? AND kind = 'activity' AND visible_at > ?",
        (task_id, token, run_id, ref, now),
    )
    tasks = await activity_tasks(tx, found, 0.0)
    return tasks[0] if tasks else None


async def of_run(tx: Tx, run_id: str, ref: int, now: float, lock: str = "") -> ActivityState | None:
    """Store.activity_of_run (``lock``: Dialect.for_update, to hold the row
    for the rest of the transaction: a claim then skips it, an outcome waits)."""
    found = await tx.all(
        f"SELECT {CLAIMED_COLUMNS}, lease_owner, visible_at FROM tasks"
        f" WHERE run_id = ? AND ref = ? AND kind = 'activity'{lock}",
        (run_id, ref),
    )
    if not found:
        return None
    row = list(found[0])
    token, owner, visible_at = row[6], row[-2], row[-1]
    if row[8] is None:  # (attempt_started_at: none while no attempt holds it)
        row[8] = 0.0
    [task] = await activity_tasks(tx, [tuple(row)], 0.0)
    if token is None:
        task.token = ""
        return ActivityState(task, "idle", visible_at)
    awaiting = owner is None and visible_at > now
    return ActivityState(task, "awaiting" if awaiting else "running", visible_at)


async def set_paused(
    tx: Tx,
    run_id: str,
    ref: int,
    paused: bool,
    reset_attempts: bool,
    now: float,
    lock: str = "",
    delay: float = 0.0,
) -> ActivityState | None:
    """Store.set_activity_paused, once the run's row is locked: the state
    read (before the change), or None. A task no attempt holds is parked
    at NEVER_DUE while paused, and due now (or ``delay`` seconds from now)
    once unpaused (its backoff dropped, as Temporal's unpause does); one an
    attempt holds keeps its lease expiry, and is parked when the attempt
    ends without completing."""
    state = await of_run(tx, run_id, ref, now, lock)
    if state is None:
        return None
    task = state.task
    if paused and not task.paused:
        await tx.send(
            "UPDATE tasks SET paused = 1,"
            " visible_at = CASE WHEN lease_token IS NULL THEN ? ELSE visible_at END"
            " WHERE id = ?",
            (NEVER_DUE, task.task_id),
        )
    elif not paused and task.paused and not (reset_attempts and state.state != "idle"):
        # (Attempts are counted again from 1 only while none holds the task:
        # the caller says why it did nothing otherwise.)
        await tx.send(
            "UPDATE tasks SET paused = 0,"
            " visible_at = CASE WHEN lease_token IS NULL THEN ? ELSE visible_at END"
            + (", attempt = 0" if reset_attempts else "")
            + " WHERE id = ?",
            (now + delay, task.task_id),
        )
    return state


async def reset(
    tx: Tx,
    run_id: str,
    ref: int,
    keep_paused: bool,
    clear_heartbeat: bool,
    now: float,
    lock: str = "",
    delay: float = 0.0,
) -> ActivityState | None:
    """Store.reset_activity, once the run's row is locked: the state read
    (before the change), or None. A task no attempt holds is due now (or
    ``delay`` seconds from now), its
    attempts counted from 1 (parked at NEVER_DUE if it stays paused); one an
    attempt holds keeps its lease, and its options carry the request to the
    attempt's end and to the claim after it (see claimed); its
    reset_requested column, to the attempt's heartbeats (which then stop it)."""
    state = await of_run(tx, run_id, ref, now, lock)
    if state is None:
        return None
    task = state.task
    paused = task.paused and keep_paused
    # (The heartbeat column is kept unless cleared: a parameter says which.)
    beat = "heartbeat = CASE WHEN ? = 1 THEN NULL ELSE heartbeat END"
    if state.state == "idle":
        options = {k: v for k, v in task.options.items() if k != RESET_REQUESTED}
        await tx.send(
            "UPDATE tasks SET attempt = 0, paused = ?, visible_at = ?, payload = ?,"
            " reset_requested = 0, " + beat + " WHERE id = ?",
            (
                int(paused),
                NEVER_DUE if paused else now + delay,
                _payload(task, options),
                int(clear_heartbeat),
                task.task_id,
            ),
        )
    else:
        options = {**task.options, RESET_REQUESTED: True}
        await tx.send(
            "UPDATE tasks SET paused = ?, payload = ?, reset_requested = 1, "
            + beat
            + " WHERE id = ?",
            (int(paused), _payload(task, options), int(clear_heartbeat), task.task_id),
        )
    return state


def _payload(task: ActivityTask, options: dict[str, Any]) -> str:
    """A task row's payload: its activity's call, with ``options``."""
    return dumps({"name": task.name, "args": task.args, "kwargs": task.kwargs, "options": options})


# A pending activity's new options and next due time (None: unchanged),
# from its state, its row's due time and now: Store.update_activity_options.
OptionsPlan = Callable[[ActivityState, float, float], tuple[dict[str, Any], "float | None"]]


async def update_options(
    tx: Tx,
    d: Dialect,
    run_id: str,
    ref: int,
    plan: OptionsPlan,
    task_queue: str | None,
    now: float,
    lock: str = "",
) -> ActivityState | None:
    """Store.update_activity_options, once the run's row is locked: the
    state read (before the change), or None. The schedule_to_close
    deadline's timer (ref -ref) moves with the option; one a firer holds
    now is left to it, and the firer reads the new deadline from the row
    (sqlwake's _deadline_passed)."""
    state = await of_run(tx, run_id, ref, now, lock)
    if state is None:
        return None
    task = state.task
    options, due = plan(state, state.due, now)
    await tx.send(
        "UPDATE tasks SET payload = ?, queue = COALESCE(?, queue),"
        " visible_at = COALESCE(?, visible_at) WHERE id = ?",
        (_payload(task, options), task_queue, due, task.task_id),
    )
    old_close, close_by = (
        task.options.get("schedule_to_close_timeout"),
        options.get("schedule_to_close_timeout"),
    )
    if close_by is not None and close_by != old_close:
        at = task.scheduled_at + close_by
        moved = await tx.execute(
            f"UPDATE timers SET fire_at = ? WHERE {d.timers_not_held('run_id = ? AND ref = ?')}",
            (at, run_id, -ref),
        )
        if not moved and old_close is None:
            await tx.send(rows.INSERT_TIMER, (run_id, -ref, at, None))
    return state


async def options_of(tx: Tx, task_id: int, token: str) -> dict[str, Any] | None:
    """Store.activity_options."""
    row = await tx.one(
        "SELECT payload FROM tasks WHERE id = ? AND lease_token = ?", (task_id, token)
    )
    return None if row is None else loads(row[0])["options"]


async def claimed(tx: Tx, found: list[tuple[Any, ...]], lease: float) -> list[ActivityTask]:
    """The activity task rows a claim leased (CLAIMED_COLUMNS), as
    ActivityTasks, but those of paused activities: a claim reaches one only
    when the lease of the attempt that held it ran out (a paused task no
    attempt holds is not due). Those are parked, the lost attempt recorded
    by the claim, no new attempt counted (see set_paused). A task whose
    activity was reset while an attempt held it (RESET_REQUESTED) is taken
    as attempt 1, and the request dropped. (One whose activity was cancelled
    too is not parked: its claim records the cancellation, ActivityRunner.run.)"""
    if any(r[13] and not r[12] for r in found):
        parked = [(NEVER_DUE, r[0], r[6]) for r in found if r[13] and not r[12]]
        await tx.executemany(
            "UPDATE tasks SET visible_at = ?, lease_owner = NULL, lease_token = NULL,"
            " attempt = attempt - 1, attempt_started_at = NULL WHERE id = ? AND lease_token = ?",
            parked,
        )
        found = [r for r in found if not (r[13] and not r[12])]
    tasks = await activity_tasks(tx, found, lease)
    for task in tasks:
        if task.options.get(RESET_REQUESTED):
            task.options = {k: v for k, v in task.options.items() if k != RESET_REQUESTED}
            task.attempt = 1
            await tx.send(
                "UPDATE tasks SET attempt = 1, payload = ?, reset_requested = 0 WHERE id = ?",
                (_payload(task, task.options), task.task_id),
            )
    return tasks


async def reclaim(tx: Tx, d: Dialect, owner: str, now: float) -> int:
    """Make ``owner``'s live leases due now (a worker restarting under its
    identity takes them back at once); return how many."""
    live = d.picked(
        "id", "FROM tasks WHERE lease_owner = ? AND lease_token IS NOT NULL AND visible_at > ?"
    )
    return await tx.execute(
        f"UPDATE tasks SET visible_at = ? WHERE {live}",
        (now, owner, now),
    )


async def activity_tasks(
    tx: Tx, claimed: list[tuple[Any, ...]], lease: float
) -> list[ActivityTask]:
    """The claimed activity task rows (SqlStore._claim's) as ActivityTasks."""
    if not claimed:
        return []
    # One query for all the runs, not one per task: on PostgreSQL the
    # claimed rows stay locked until this transaction commits.
    run_ids = sorted({r[1] for r in claimed})
    runs = {
        row[0]: row[1:]
        for row in await tx.all(
            "SELECT run_id, workflow_id, workflow_type FROM runs"
            f" WHERE run_id IN ({rows.marks(run_ids)})",
            run_ids,
        )
    }
    tasks = []
    for r in claimed:
        payload = loads(r[4])
        attempts = loads(r[9]) or []
        if len(attempts) > MAX_ATTEMPT_RECORDS:  # many lost attempts in a row
            attempts = attempts[-MAX_ATTEMPT_RECORDS:]
            await tx.send("UPDATE tasks SET attempts = ? WHERE id = ?", (dumps(attempts), r[0]))
        run = runs[r[1]]
        tasks.append(
            ActivityTask(
                task_id=r[0],
                token=r[6],
                run_id=r[1],
                workflow_id=run[0],
                workflow_type=run[1],
                ref=r[2],
                name=payload["name"],
                task_queue=r[10],  # (its own: an activity's queue may not be its run's)
                args=payload["args"],
                kwargs=payload["kwargs"],
                options=payload["options"],
                attempt=r[3],
                scheduled_at=r[7],
                heartbeat=loads(r[5]),
                started_at=r[8],
                attempts=attempts,
                lease_until=r[8] + lease,  # (the claim's now + lease: see _claim)
                priority=r[11],
                cancel_requested=bool(r[12]),
                paused=bool(r[13]),
                fairness_key=r[14],
            )
        )
    return tasks
