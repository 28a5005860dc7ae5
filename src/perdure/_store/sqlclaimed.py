"""A claimed workflow task's turn as a plan (``ClaimedPlan``): the turn a
timer's firing, a signal or an activity completed by another worker wakes,
when it leaves its run open and only starts activities and timers.

Its body (sqlturn.apply_turn) is eight statements or more, run one by one:
the run's fenced update, the task's lease fence, the events, the consumed
inbox rows, each new activity and timer, then the task's deletion (or, if
input reached the inbox meanwhile, its requeueing). A backend applies many
such plans together, one statement per kind (SqliteStore's rounds,
PostgreSQL's groups), as it does inline steps and closes: the run's update,
the workflow task deleted with its token as the fence, the consumed inbox
rows, a check that no other input waits (else the group runs as bodies,
which requeue the task), the events, the activities and the timers. The
task ids of the activities leased here reach the commit after the commit.
Imports the turn's SQL (sqlturn) and the row helpers.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from perdure._store import sqlrows as rows
from perdure._store.base import WORK, TurnCommit
from perdure._store.sqlturn import (
    Encoded,
    activity_values,
    advance_values,
    only_new_work,
    payloads,
    queues_work,
)

__all__ = ["ClaimedPlan", "plan_claimed"]


class ClaimedPlan(NamedTuple):
    """A claimed workflow task's turn that leaves its run open, as parameters
    (see plan_claimed). Applying it writes what apply_turn writes for its
    turn when no input reached the run's inbox meanwhile."""

    run_id: str
    advance: tuple[Any, ...]  # sqlturn.ADVANCE_RUN's: fence 2
    done: tuple[int, str]  # the workflow task's id and lease token: fence 1 (the row goes)
    consumed: tuple[int, ...]  # the inbox rows the turn read
    events: list[rows.EventRow]  # INSERT_EVENT's, one row each
    activities: list[tuple[Any, ...]]  # sqlturn.INSERT_ACTIVITY's, one row each
    leased: frozenset[int]  # the refs of those leased here (the worker runs them at once)
    timers: list[tuple[Any, ...]]  # rows.INSERT_TIMER's
    commit: TurnCommit  # told its leased activities' task ids after the commit

    def topics(self) -> set[str]:
        """Whom it wakes (apply_turn's answer, the task not requeued)."""
        return {WORK} if queues_work(self.commit) else set()

    def tell(self, ref: int, task_id: int) -> None:
        """An activity row of this run was written with ``task_id``: the
        commit needs it if the activity is one leased here."""
        if ref in self.leased:
            self.commit.created_tasks[ref] = task_id


def plan_claimed(commit: TurnCommit, now: float, encoded: Encoded) -> ClaimedPlan | None:
    """``commit`` as a ClaimedPlan, if it has that shape: a claimed workflow
    task's turn that leaves its run open and starts nothing but activities
    and timers (no children, no cancellations). None for every other turn."""
    task = commit.task
    if (
        task is None
        or commit.fresh
        or commit.activity_done is not None
        or commit.close_status is not None
        or commit.continue_as_new is not None
        or not only_new_work(commit)
    ):
        return None
    scheduled = payloads(commit, encoded)
    run_id = commit.run_id
    return ClaimedPlan(
        run_id,
        advance_values(commit, now, encoded),
        (task.task_id, task.token),
        tuple(commit.consumed_inbox),
        encoded.events,
        [activity_values(commit, a, now, scheduled) for a in commit.activities],
        frozenset(a.ref for a in commit.activities if a.lease is not None),
        [(run_id, ref, at) for ref, at in commit.timers],
        commit,
    )
