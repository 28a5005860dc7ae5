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
Imports the store records and the event text.
"""

from __future__ import annotations

from typing import NamedTuple

from perdure import _history as h
from perdure._store.base import OPEN, ActivityTask
from perdure._store.eventtext import event_text

__all__ = ["INBOX_IF_OPEN", "TASK_IF_OPEN", "CompletePlan", "plan_complete"]


class CompletePlan(NamedTuple):
    """An activity's final outcome delivered to its run, as parameters (see
    plan_complete)."""

    run_id: str
    done: tuple[int, str]  # the attempt's task row and lease token: the fence
    inbox: tuple[str, float, str, str]  # INBOX_IF_OPEN's: the outcome's text, when, the run, OPEN
    task: tuple[float, float, str, str]  # TASK_IF_OPEN's: visible at, created at, the run, OPEN


# The outcome into the inbox of its run, if the run is open (rows.to_inbox's
# two statements, with the body's "run.is_open" and "run.task_queue" read by
# the statements themselves).
INBOX_IF_OPEN = (
    "INSERT INTO inbox (run_id, data, created_at)"
    " SELECT run_id, ?, ? FROM runs WHERE run_id = ? AND status = ?"
)
TASK_IF_OPEN = (
    "INSERT INTO tasks (kind, queue, run_id, visible_at, created_at)"
    " SELECT 'workflow', task_queue, run_id, ?, ? FROM runs"
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
