"""Ending a run, in the transaction that ends it: its pending work dropped
(tasks, timers, inbox), its parent told, its open children's close policy
applied; and the ends written from outside its workflow code (terminate,
the execution timeout) by a marker event. Imports the row helpers.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from perdure import _history as h
from perdure._store.base import OPEN, WORK, RunRecord, closed_topic
from perdure._store.eventtext import dumps
from perdure._store.sqlrows import (
    RUN_COLUMNS,
    Dialect,
    Tx,
    append_events,
    run_by_id,
    run_from_row,
    to_inbox,
)

# An ending run's tasks: one statement per kind, each served by that kind's
# partial index on run_id ("WHERE run_id = ?" alone has no index on SQLite,
# and scanned every queued task at each run's close).
DROP_RUN_TASKS = (
    "DELETE FROM tasks WHERE kind = 'workflow' AND run_id = ?",
    "DELETE FROM tasks WHERE kind = 'activity' AND run_id = ?",
)


async def drop_pending_work(tx: Tx, d: Dialect, run_id: str, inbox: bool = True) -> None:
    """Delete an ending run's tasks, timers and inbox (all of close_run that a
    run with no parent and no children needs). ``inbox=False``: the caller
    knows the run's inbox is empty."""
    for sql in DROP_RUN_TASKS:
        await tx.send(sql, (run_id,))
    await tx.send(  # except timers a firer holds: see the lock order in sqlrows
        f"DELETE FROM timers WHERE {d.timers_not_held('run_id = ?')}",
        (run_id,),
    )
    if inbox:
        await tx.send("DELETE FROM inbox WHERE run_id = ?", (run_id,))


async def close_run(
    tx: Tx,
    d: Dialect,
    run: RunRecord,
    status: str,
    result: Any,
    failure: dict[str, Any] | None,
    now: float,
    children: bool = True,
) -> set[str]:
    """Everything that follows a run's end, in the transaction that ended it:
    drop its pending work (a leased activity attempt is fenced out because its
    row is gone), tell its parent, and apply each open child's close policy
    (``children=False``: the run never started one, so there is nothing to
    read). Returns the wake-up topics: this run (and any child it terminated)
    closed, and WORK if its parent or children have something to do now."""
    topics = {closed_topic(run.run_id)}
    await drop_pending_work(tx, d, run.run_id)
    if run.parent_run_id is not None and status != "continued_as_new":
        parent = await run_by_id(tx, d, run.parent_run_id)
        if parent is not None and parent.is_open:
            event: h.Event
            if status == "completed":
                event = h.ChildWorkflowCompleted(ref=run.parent_ref or 0, result=result)
            else:
                event = h.ChildWorkflowFailed(
                    ref=run.parent_ref or 0, status=status, failure=failure or {}
                )
            await to_inbox(tx, parent, event, now)
            topics.add(WORK)
    if not children:
        return topics
    for row in await tx.all(
        f"SELECT {RUN_COLUMNS}, parent_close_policy FROM runs"
        f" WHERE parent_run_id = ? AND status = ?{d.for_update}",
        (run.run_id, OPEN),
    ):
        child, policy = run_from_row(row), row[-1]
        if policy == "terminate":
            reason = f"parent {run.workflow_id!r} ended ({status})"
            topics |= await terminate_run(tx, d, child, reason, now)
        elif policy == "cancel":
            reason = f"parent {run.workflow_id!r} ended ({status})"
            await to_inbox(tx, child, h.CancelRequested(reason=reason), now)
            topics.add(WORK)
    return topics


async def end_run_by_marker(
    tx: Tx, d: Dialect, run: RunRecord, marker: h.Event, status: str, message: str, now: float
) -> set[str]:
    """Close a run from outside its workflow code (terminate, execution timeout).
    Bumping the version fences out any turn in flight for this run. Returns
    the wake-up topics (see close_run)."""
    seq = run.last_seq + 1
    await append_events(tx, run.run_id, [dataclasses.replace(marker, seq=seq, time=now)])
    failure = {"type": marker.TYPE, "message": message, "traceback": "", "details": None}
    await tx.send(
        "UPDATE runs SET status = ?, version = version + 1, last_seq = ?, failure = ?,"
        " updated_at = ?, closed_at = ? WHERE run_id = ?",
        (status, seq, dumps(failure), now, now, run.run_id),
    )
    return await close_run(tx, d, run, status, None, failure, now)


async def terminate_run(
    tx: Tx, d: Dialect, run: RunRecord, reason: str | None, now: float
) -> set[str]:
    marker = h.WorkflowTerminated(reason=reason)
    return await end_run_by_marker(tx, d, run, marker, "terminated", reason or "", now)
