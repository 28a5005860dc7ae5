"""A claimed workflow task's turn as a plan (``ClaimedPlan``): the turn a
timer's firing, a signal or an activity completed by another worker wakes,
when it leaves its run open and only starts activities, timers and
children.

Its body (sqlturn.apply_turn) is eight statements or more, run one by one:
the run's fenced update, the task's lease fence, the events, the consumed
inbox rows, each new activity and timer, then the task's deletion (or, if
input reached the inbox meanwhile, its requeueing). A backend applies many
such plans together, one statement per kind (SqliteStore's rounds,
PostgreSQL's groups), as it does inline steps and closes: the run's update,
the consumed inbox rows, the workflow task deleted with its token as the
fence, or, if other input reached the run meanwhile, queued again for it
(as the body does), the events, the activities and the timers. The task
ids of the activities leased here reach the commit after the commit.
Imports the turn's SQL (sqlturn) and the row helpers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

from perdure._store import sqlnewrun as newrun
from perdure._store import sqlrows as rows
from perdure._store.base import WORK, TurnCommit
from perdure._store.sqlplans import children_rows
from perdure._store.sqlturn import Encoded, activity_values, advance_values, payloads, queues_work

if TYPE_CHECKING:
    from perdure._store.sqlstart import StartPlan

__all__ = ["DROP_TASK_IF_QUIET", "REQUEUE_TASK", "ClaimedPlan", "plan_claimed"]


class ClaimedPlan(NamedTuple):
    """A claimed workflow task's turn that leaves its run open, as parameters
    (see plan_claimed). Applying it writes what apply_turn writes for its
    turn."""

    run_id: str
    advance: tuple[Any, ...]  # sqlturn.ADVANCE_RUN's: fence 2
    # The workflow task's id and lease token: fence 1 (the row goes); None
    # for an inline timer's turn (see fired)
    done: tuple[int, str] | None
    consumed: tuple[int, ...]  # the inbox rows the turn read
    events: list[rows.EventRow]  # INSERT_EVENT's, one row each
    activities: list[tuple[Any, ...]]  # sqlturn.INSERT_ACTIVITY's, one row each
    leased: frozenset[int]  # the refs of those leased here (the worker runs them at once)
    timers: list[tuple[Any, ...]]  # rows.INSERT_TIMER's
    commit: TurnCommit  # told its leased activities' task ids after the commit
    # The children the turn starts (their ids free: the plans' fence),
    # written before the task's drop-or-requeue: the ChildWorkflowStarted
    # they add to the run's inbox requeue its task, as in the body. (No
    # workflow task to add: the run's own is still there.)
    children: tuple[newrun.ChildRows, ...] = ()
    woken: None = None
    # The children whose first turns come with it (sqlstart.plan_children)
    first_turns: tuple[StartPlan, ...] = ()
    # An inline timer's turn (no workflow task): the timer's row, (run id,
    # ref), deleted as fence 1 (TurnCommit.fired_timer)
    fired: tuple[str, int] | None = None

    def workflow_ids(self) -> set[str]:
        """The workflow ids it takes: its children's."""
        return {c.workflow_id for c in self.children}.union(
            *(s.workflow_ids() for s in self.first_turns)
        )

    def topics(self, requeued: bool = False) -> set[str]:
        """Whom it wakes (apply_turn's answer): any worker, if the turn
        queued work or its task was requeued for input that came meanwhile."""
        return {WORK} if requeued or queues_work(self.commit) else set()

    def requeue(self) -> tuple[float, int, str]:
        """REQUEUE_TASK's values: the task queued again at the turn's time."""
        assert self.done is not None
        return (self.advance[3], *self.done)

    def tell(self, ref: int, task_id: int) -> None:
        """An activity row of this run was written with ``task_id``: the
        commit needs it if the activity is one leased here."""
        if ref in self.leased:
            self.commit.created_tasks[ref] = task_id


# The claimed task's row once its turn is written (apply_turn's last two
# statements): deleted if nothing reached the run's inbox meanwhile, else
# queued again for that input. Fence 1: one of the two finds the row by its
# lease token.
DROP_TASK_IF_QUIET = (
    "DELETE FROM tasks WHERE id = ? AND lease_token = ?"
    " AND NOT EXISTS (SELECT 1 FROM inbox WHERE run_id = ?)"
)
REQUEUE_TASK = (
    "UPDATE tasks SET visible_at = ?, lease_owner = NULL, lease_token = NULL, attempt = 0"
    " WHERE id = ? AND lease_token = ?"
)


def plan_claimed(commit: TurnCommit, now: float, encoded: Encoded) -> ClaimedPlan | None:
    """``commit`` as a ClaimedPlan, if it has that shape: a claimed workflow
    task's turn, or an inline timer's, that leaves its run open and starts
    nothing but activities, timers and children (no cancellations). None for
    every other turn."""
    task = commit.task
    if (
        (task is None and commit.fired_timer is None)
        or commit.fresh
        or commit.pin is not None  # (apply_turn pins)
        or commit.activity_done is not None
        or commit.close_status is not None
        or commit.continue_as_new is not None
        or commit.cancelled_children
        or commit.signals_out
        or commit.body_writes
        or commit.cancelled_activities
        or commit.cancelled_timers
    ):
        return None
    children = children_rows(commit, now)
    if children is None:
        return None
    scheduled = payloads(commit, encoded)
    run_id = commit.run_id
    return ClaimedPlan(
        run_id,
        advance_values(commit, now, encoded),
        None if task is None else (task.task_id, task.token),
        tuple(commit.consumed_inbox),
        encoded.events,
        [activity_values(commit, a, now, scheduled) for a in commit.activities],
        frozenset(a.ref for a in commit.activities if a.lease is not None),
        rows.timer_rows(run_id, commit, now),
        commit,
        children,
        fired=None if commit.fired_timer is None else (run_id, commit.fired_timer),
    )
