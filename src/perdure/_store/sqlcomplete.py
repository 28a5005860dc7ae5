"""An activity's final outcome (its result, or its last failure), delivered
to its run's inbox, as a plan (``CompletePlan``): the write of every
activity a worker runs that did not schedule it (a worker serving only
activities, or an inline attempt whose instance left the cache).

Its body (SqlStore.complete_activity) is four statements run one by one:
the run's row, read (and locked on PostgreSQL), the attempt's task row
deleted with its lease token as the fence, and, if the run is open, the
outcome added to its inbox and its workflow task made sure of. A backend
applies many such plans together, one statement per kind (SqliteStore's
rounds, PostgreSQL's groups): the task rows deleted (the fence: one row
each), then the inbox rows and the workflow tasks inserted by a statement
that reads each run's state and queue itself, so that a run that has closed
meanwhile gets nothing, as its body would give it.

Unlike the turns' plans, several completions of one run may be applied
together (a workflow whose parallel activities end at once): each deletes
only its own task row, each adds its own inbox row, and the run's one
workflow task is inserted once (the others do nothing, as their bodies
would). A completion whose run has a turn's plan in the same batch is left
to its body, which runs after the plans.

A child run's end is told to its parent the same way (``ParentTell``, part
of the child's sqlplans.ClosePlan): its outcome into the parent's inbox and
the parent's workflow task, if the parent is open. The worker knows the
parent's run id (the child's WorkflowStarted names it) but not the child's
ref in the parent's history, which only the child's row holds: the
statement writes the event's text around the ref it reads there.
Imports the history model, the store records, the event text and the
row helpers. Also here: the body's own two writes, shared by every way an
activity ends (``deliver_final``) or is dropped after a cancellation
(``drop_if_cancelled``).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from perdure import _history as h
from perdure._store import sqlrows as rows
from perdure._store.base import OPEN, ActivityTask, RunRecord
from perdure._store.eventtext import event_text
from perdure._store.sqlrows import Dialect, Tx
from perdure.errors import cancelled_failure

__all__ = [
    "INBOX_IF_OPEN",
    "PARENT_INBOX_IF_OPEN",
    "TASK_IF_OPEN",
    "CompletePlan",
    "ParentTell",
    "cancelled_end",
    "deliver_final",
    "drop_if_cancelled",
    "plan_complete",
    "tell_parent",
]


class CompletePlan(NamedTuple):
    """An activity's final outcome delivered to its run, as parameters (see
    plan_complete)."""

    run_id: str
    done: tuple[int, str]  # the attempt's task row and lease token: the fence
    inbox: tuple[str, float, str, str]  # INBOX_IF_OPEN's: the outcome's text, when, the run, OPEN
    task: tuple[float, float, str, str]  # TASK_IF_OPEN's: visible at, created at, the run, OPEN


# The outcome into the inbox of its run, if the run is open (rows.to_inbox's
# two statements, with the body's "run.is_open" and "run.turn_queue" read by
# the statements themselves).
INBOX_IF_OPEN = (
    "INSERT INTO inbox (run_id, data, created_at)"
    " SELECT run_id, ?, ? FROM runs WHERE run_id = ? AND status = ?"
)
TASK_IF_OPEN = (
    "INSERT INTO tasks (kind, queue, run_id, visible_at, created_at, priority, fairness_key)"
    f" SELECT 'workflow', {rows.TURN_QUEUE}, run_id, ?, ?, priority, fairness_key FROM runs"
    " WHERE run_id = ? AND status = ? ON CONFLICT DO NOTHING"
)


def plan_complete(task: ActivityTask, event: h.Event, now: float) -> CompletePlan:
    """The delivery of ``event`` (the attempt's outcome) for ``task``, as a plan."""
    run_id = task.run_id
    return CompletePlan(
        run_id,
        (task.task_id, task.token),
        (event_text(event), now, run_id, OPEN),
        (now, now, run_id, OPEN),
    )


class ParentTell(NamedTuple):
    """A child run's end told to its open parent, as parameters (see
    tell_parent): what sqlend.close_run writes for a run with a parent."""

    parent_run_id: str
    inbox: tuple[str, str, float, str, str, str]  # PARENT_INBOX_IF_OPEN's
    task: tuple[float, float, str, str]  # TASK_IF_OPEN's, for the parent


# The child's outcome into its parent's inbox, if the parent is open: the
# event's text with the child's ref (its parent_ref) written in between
# (sqlend.close_run's "ref=run.parent_ref or 0").
PARENT_INBOX_IF_OPEN = (
    "INSERT INTO inbox (run_id, data, created_at)"
    " SELECT p.run_id, ? || COALESCE(c.parent_ref, 0) || ?, ? FROM runs AS p, runs AS c"
    " WHERE p.run_id = ? AND p.status = ? AND c.run_id = ?"
)

# A ref no child has: its text marks where the real one goes.
_MARK = -7
_MARKED = f'"ref":{_MARK}'


def tell_parent(
    run_id: str,
    parent_run_id: str,
    status: str,
    result: Any,
    failure: dict[str, Any] | None,
    now: float,
) -> ParentTell:
    """The end of child ``run_id`` (``status``, and its ``result`` or
    ``failure``), told to its parent ``parent_run_id``."""
    event: h.Event
    if status == "completed":
        event = h.ChildWorkflowCompleted(ref=_MARK, result=result)
    else:
        event = h.ChildWorkflowFailed(ref=_MARK, status=status, failure=failure or {})
    # (The ref is the first field after the header, whose values are the
    # type's name and two numbers: the first match is the field itself.)
    head, marked, tail = event_text(event).partition(_MARKED)
    assert marked, "an event's text without its ref"
    return ParentTell(
        parent_run_id,
        (head + '"ref":', tail, now, parent_run_id, OPEN, run_id),
        (now, now, parent_run_id, OPEN),
    )


async def deliver_final(
    tx: Tx, run: RunRecord | None, event: h.Event, now: float, fence: str, params: tuple[Any, ...]
) -> bool:
    """Delete an activity's task row by ``fence`` and, if that deleted it,
    put its final ``event`` in its run's inbox (if the run is open; the
    caller locked it first)."""
    if await tx.execute(fence, params) != 1:
        return False
    if run is not None and run.is_open:
        await rows.to_inbox(tx, run, event, now)
    return True


def cancelled_end(ref: int, attempt: int, attempts: list[Any]) -> h.ActivityFailed:
    """The end of activity ``ref``, cancelled by its workflow, that the store
    writes itself (no attempt of it is left to): after ``attempt`` attempts,
    their records ``attempts``."""
    return h.ActivityFailed(
        ref=ref, failure=cancelled_failure(), attempt=attempt, attempts=list(attempts)
    )


async def drop_if_cancelled(
    tx: Tx, d: Dialect, task: ActivityTask, now: float, attempts: list[Any] | None = None
) -> None:
    """An attempt's task whose activity was cancelled while it was claimed:
    nobody wants another attempt (retry_activity, hand_back). Its cancelled
    outcome goes to its run's inbox (if the run is open), with ``attempts``
    (by default the task's): a workflow that waits for the activity to end
    (cancellation_type "wait_cancellation_completed") goes on with it; one
    that does not ignores it.

    The run's row is locked first, as every writer of an inbox does (the
    lock order of sqlrows: the caller's fenced UPDATE that found the row
    cancelled locked nothing). Without it, on PostgreSQL, a turn of the run
    committing at the same moment could drop its workflow task, having read
    the inbox before this outcome was committed, while this statement found
    that task still there and inserted none: the outcome stranded in the
    inbox, and the run waiting for it for ever."""
    run = await rows.run_by_id(tx, d, task.run_id)
    dropped = await tx.execute(
        "DELETE FROM tasks WHERE id = ? AND lease_token = ? AND cancel_requested = 1",
        (task.task_id, task.token),
    )
    if dropped != 1 or run is None or not run.is_open:
        return
    ended = cancelled_end(task.ref, task.attempt, task.attempts if attempts is None else attempts)
    await rows.to_inbox(tx, run, ended, now)
