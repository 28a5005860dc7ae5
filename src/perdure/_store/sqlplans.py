"""A turn as a plan: the commonest turns as their statements' parameters,
which a backend's group commit applies with others, one statement per kind
for all of them (SqliteStore's rounds, PostgreSQL's groups). A ``Plan`` is
an inline continuation that leaves its run open; a ``ClosePlan`` a turn
that ends a run with nothing to read. Applying one writes what
sqlturn.apply_turn writes for its turn; the fences are the same.
Imports the turn's SQL (sqlturn), the new runs' rows and the row helpers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from perdure._store import sqlnewrun as newrun
from perdure._store import sqlrows as rows
from perdure._store.base import WORK, RunRecord, TurnCommit, closed_topic
from perdure._store.sqlcomplete import ParentTell, tell_parent
from perdure._store.sqlturn import (
    Encoded,
    advance_values,
    close_values,
    payloads,
    take_over_heir,
    take_over_values,
)

if TYPE_CHECKING:
    from perdure._store.sqlstart import StartPlan

__all__ = ["ClosePlan", "Plan", "children_rows", "plan_close", "plan_turn"]


class Plan(NamedTuple):
    """The commonest turn as three statements' parameters: an inline
    continuation that leaves its run open and starts, here, the next
    activity or nothing (see plan_turn). A backend may apply many such plans
    together, one statement per kind for all of them (both group commits)."""

    run_id: str
    advance: tuple[Any, ...]  # ADVANCE_RUN's: fence 2
    # REUSE_ACTIVITY's: the next activity, then fence 1 (the finished one's task
    # id and lease token: the row it takes over); None if the turn starts none
    take_over: tuple[Any, ...] | None
    events: list[rows.EventRow]  # INSERT_EVENT's, one row each
    # DELETE_DONE's: finished attempts' task rows (fence 1 of each): the
    # finished one's if no activity takes it over, and the turn's other
    # outcomes' (TurnCommit.also_done)
    done: tuple[tuple[int, str], ...] = ()
    # The children the turn starts (their ids free: the plans' fence), and
    # then the run's workflow task, for the ChildWorkflowStarted they add to
    # its inbox (INSERT_WORKFLOW_TASK's)
    children: tuple[newrun.ChildRows, ...] = ()
    woken: tuple[str, str, float, float, int, str] | None = None
    # The children whose first turns come with it (sqlstart.plan_children),
    # written as new runs' starts are
    first_turns: tuple[StartPlan, ...] = ()

    def workflow_ids(self) -> set[str]:
        """The workflow ids it takes: its children's."""
        return {c.workflow_id for c in self.children}.union(
            *(s.workflow_ids() for s in self.first_turns)
        )

    def topics(self) -> set[str]:
        """Whom it wakes (apply_turn's answer): nobody, or, with children,
        the workers (the children's first turns, the run's next)."""
        return {WORK} if self.woken is not None else set()


def plan_turn(commit: TurnCommit, now: float, encoded: Encoded) -> Plan | None:
    """``commit`` as a Plan, if it has that shape; applying the plan writes
    what apply_turn writes for it (its fences tripped: nothing) and wakes
    nobody but, if it starts children, the workers. The shape: an inline
    continuation, of one outcome or several (``also_done``), that leaves its
    run open and starts at most one activity, here (it takes the finished
    activity's task row over), and any children. None for every other
    turn."""
    if (
        commit.task is not None
        or commit.fresh
        or commit.pin is not None  # (apply_turn pins)
        or commit.activity_done is None
        or commit.close_status is not None
        or len(commit.activities) > 1
        or (commit.activities and commit.activities[0].lease is None)
        or (commit.activities and take_over_heir(commit) is None)
        or commit.consumed_inbox
        or commit.cancelled_activities
        or commit.timers
        or commit.cancelled_timers
        or commit.cancelled_children
        or commit.signals_out
        or commit.body_writes
        or (  # (a deadline timer to write: rows.timer_rows)
            commit.activities
            and commit.activities[0].options.get("schedule_to_close_timeout") is not None
        )
    ):
        return None
    children = children_rows(commit, now)
    if children is None:
        return None
    woken = None
    if commit.children:
        assert commit.task_queue is not None  # (children_rows checked it)
        woken = (
            commit.task_queue,
            commit.run_id,
            now,
            now,
            commit.priority,
            commit.fairness_key,
        )
    done = commit.also_done
    if commit.activities:
        heir = commit.activities[0]
        take_over = take_over_values(commit, heir, now, payloads(commit, encoded))
    else:
        take_over, done = None, (commit.activity_done, *done)
    return Plan(
        commit.run_id,
        advance_values(commit, now, encoded),
        take_over,
        encoded.events,
        done,
        children,
        woken,
    )


def children_rows(commit: TurnCommit, now: float) -> tuple[newrun.ChildRows, ...] | None:
    """The rows of the children ``commit`` starts, for a plan, but those
    with their first turns (NewChild.first: see sqlstart.plan_children);
    None if they cannot be planned (the worker did not name the run, or two
    children share an id: the body refuses the second; a child has search
    attributes)."""
    if not commit.children:
        return ()
    if commit.workflow_id is None or commit.task_queue is None:
        return None
    if len({c.workflow_id for c in commit.children}) != len(commit.children):
        return None
    if any(c.build_id is not None and c.first is None for c in commit.children):
        return None  # (the body pins them: sqlturn)
    if any(c.search_attributes for c in commit.children):
        return None  # (the body indexes them)
    parent = newrun.RunNames(commit.run_id, commit.workflow_id)
    return tuple(newrun.child_rows(parent, c, now) for c in commit.children if c.first is None)


class ClosePlan(NamedTuple):
    """A run's commonest end as parameters: a turn that ends a run that
    never started a child (see plan_close), whether it follows an inline
    step or a workflow task this worker claimed (a timer that fired, a
    signal, an activity completed elsewhere), and tells its parent, if it
    has one. A backend may apply many together (both group commits);
    applying one writes what apply_turn writes for its turn."""

    run_id: str
    close: tuple[Any, ...]  # the closing UPDATE's (see apply_turn): fence 2
    # The finished activity's task id and lease token, or the claimed workflow
    # task's: fence 1 (the row goes, as all the run's tasks do); None for an
    # inline timer's turn (see fired)
    done: tuple[int, str] | None
    events: list[rows.EventRow]
    ended: Callable[[RunRecord], None] | None  # handed the ended run after the commit
    consumed: tuple[int, ...] = ()  # the inbox rows the turn read, deleted before the inbox fence
    # The run's end told to its parent (after every other plan of the batch:
    # the parent's own claimed turn may be one of them)
    tell: ParentTell | None = None
    # The other finished attempts whose outcomes the turn took in (fence 1 each)
    also_done: tuple[tuple[int, str], ...] = ()
    # An inline timer's turn: the timer's row, (run id, ref), deleted as
    # fence 1 (TurnCommit.fired_timer)
    fired: tuple[str, int] | None = None

    def topics(self) -> set[str]:
        """Whom it wakes (apply_turn's answer for its turn): the run's
        waiters, and the parent's workers."""
        if self.tell is None:
            return {closed_topic(self.run_id)}
        return {closed_topic(self.run_id), WORK}


def plan_close(
    commit: TurnCommit,
    now: float,
    encoded: Encoded,
    ended: Callable[[RunRecord], None] | None,
) -> ClosePlan | None:
    """``commit`` as a ClosePlan, if it has that shape (the fences and
    writes of apply_turn's closing path with nothing to read); else None."""
    done: tuple[int, str] | None = None
    if commit.task is not None:
        done = (commit.task.task_id, commit.task.token)
        if commit.activity_done is not None:
            return None  # (never both: an inline turn has no workflow task)
    elif commit.activity_done is not None:
        done = commit.activity_done
    elif commit.fired_timer is None:
        return None
    status = commit.close_status
    if status is None or commit.fresh or commit.continue_as_new is not None:
        return None
    if commit.signals_out or commit.body_writes:  # (the body writes them)
        return None
    tell = None
    if commit.has_relatives:
        # Only a parent, which the worker named: a child's close policy needs the body.
        parent = commit.parent_run_id
        if commit.has_children or parent is None:
            return None
        tell = tell_parent(commit.run_id, parent, status, commit.result, commit.failure, now)
    return ClosePlan(
        commit.run_id,
        close_values(commit, now, encoded, commit.result),
        done,
        encoded.events,
        ended,
        tuple(commit.consumed_inbox),
        tell,
        commit.also_done,
        None if commit.fired_timer is None else (commit.run_id, commit.fired_timer),
    )
