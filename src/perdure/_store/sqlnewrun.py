"""A new run's rows, shared by every way a run begins (a client's start, a
child, a continue-as-new, signal-with-start): its row, WorkflowStarted in its
inbox with its workflow task, its execution-timeout timer, and the record and
first event those rows stand for (for a caller that builds them without
reading them back); and a parent's turn's children, whose workflow ids are
checked together. Each step runs inside a caller's transaction.
Imports the history model, the store records and the row helpers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from perdure import _history as h
from perdure._store.base import OPEN, NewChild, NewRun, RunRecord
from perdure._store.eventtext import event_text
from perdure._store.sqlattrs import write_attributes
from perdure._store.sqlrows import (
    INSERT_TIMER,
    Dialect,
    Tx,
    chunks,
    dumps,
    event_from_row,
    loads,
    marks,
    to_inbox,
)

__all__ = [
    "INSERT_RUN",
    "INSERT_RUN_WITH_TURN",
    "ChildRows",
    "RunNames",
    "child_rows",
    "ids_in_use",
    "input_text",
    "insert_run",
    "new_run_record",
    "run_deadline",
    "run_values",
    "start_child",
    "started_event",
]


async def insert_run(
    tx: Tx,
    new: NewRun,
    now: float,
    *,
    parent: RunRecord | None = None,
    parent_ref: int | None = None,
    parent_close_policy: str | None = None,
    deadline: float | None = None,
    continued_from: str | None = None,
    after_start: Sequence[h.Event] = (),
    queued: bool = True,
    turn: tuple[Any, ...] | None = None,
    row_id: Callable[[tuple[Any, ...] | None], None] | None = None,
) -> None:
    """Create a run: its row, WorkflowStarted (and ``after_start``) in its
    inbox, its workflow task, and its execution-timeout timer (ref 0).
    ``queued=False``: the row and the timer only, for a run whose first turn
    the same transaction writes (see RunTaker.prepare). ``turn``: that first
    turn's outcome, written with the row (its version, last event, state and
    waiting, as an open run's turn leaves them: sqlturn.first_outcome).
    ``row_id``: told the row's ``id`` (as ``Tx.later``), which only the
    database knows, for a caller that builds the run's record itself."""
    deadline = run_deadline(new, now, deadline)
    values = run_values(new, now, deadline, parent, parent_ref, parent_close_policy)
    sql, params = (INSERT_RUN, values) if turn is None else (INSERT_RUN_WITH_TURN, (*values, *turn))
    if row_id is None:
        await tx.send(sql, params)
    else:
        await tx.later(sql + " RETURNING id", params, row_id)
    if queued:
        started = started_event(new, now, parent, continued_from)
        await to_inbox(tx, new, started, now, new.start_at)
        for event in after_start:
            await to_inbox(tx, new, event, now)
    if deadline is not None:
        await tx.send(INSERT_TIMER, (new.run_id, 0, deadline, None))
    if new.search_attributes:
        await write_attributes(tx, new.run_id, new.search_attributes, fresh=True)


async def ids_in_use(tx: Tx, d: Dialect, children: list[NewChild]) -> dict[str, tuple[str, str]]:
    """The latest run of each child's workflow id, if one exists: its run id
    and status. Each id is locked first, as a start locks its own; then one
    query reads them all (on PostgreSQL one round trip for the turn, where a
    read per child had kept the transaction, and every row it locked, open
    for one round trip per child)."""
    for child in children:
        await d.lock_workflow_id(tx, child.workflow_id)
    used: dict[str, tuple[str, str]] = {}
    for chunk in chunks(sorted({c.workflow_id for c in children})):
        for workflow_id, run_id, status in await tx.all(
            f"SELECT workflow_id, run_id, status FROM runs WHERE workflow_id IN"
            f" ({marks(chunk)}) ORDER BY id",
            chunk,
        ):
            used[workflow_id] = (run_id, status)  # (the latest comes last)
    return used


async def start_child(
    tx: Tx,
    d: Dialect,
    parent: RunRecord,
    child: NewChild,
    now: float,
    used: dict[str, tuple[str, str]],
) -> None:
    """Create the child run, or tell the parent its id is taken (``used``:
    the ids in use, the runs this turn creates added). Either way the
    answer reaches the parent's inbox in this same transaction."""
    holder = used.get(child.workflow_id)
    after: list[h.Event] = []
    if holder is not None and holder[1] != OPEN:
        again = await child_again(tx, parent, holder[0])
        if again is not None:
            after, holder = [again], None
    if holder is not None:
        failure = {
            "type": "WorkflowAlreadyStartedError",
            "message": f"workflow id {child.workflow_id!r} is already used by run "
            f"{holder[0]} ({holder[1]})",
            "traceback": "",
            "details": None,
        }
        event: h.Event = h.ChildWorkflowStartFailed(ref=child.ref, failure=failure)
    else:
        await insert_run(
            tx,
            child_run(child),
            now,
            parent=parent,
            parent_ref=child.ref,
            parent_close_policy=child.parent_close_policy,
            after_start=after,
        )
        used[child.workflow_id] = (child.run_id, OPEN)
        event = child_started(child)
    await to_inbox(tx, parent, event, now)


async def child_again(tx: Tx, parent: RunRecord, holder: str) -> h.WorkflowReset | None:
    """A parent made by a reset starts again a child that a run it was reset
    from had started (the child's run ``holder``, ended): the new child run
    may take its id, and carries this marker after its WorkflowStarted, so
    that its activities keep the old child's idempotency keys. None: the id
    belongs to someone else (workflow ids are single-use)."""
    row = await tx.one("SELECT parent_run_id FROM runs WHERE run_id = ?", (holder,))
    if row is None or row[0] is None or row[0] not in await reset_from(tx, parent.run_id):
        return None
    keys = await _reset_markers(tx, holder)
    return h.WorkflowReset(
        from_run_id=holder,
        at_seq=1,
        reason=f"its parent was reset (run {parent.run_id})",
        idempotency_run_id=keys[0].idempotency_run_id if keys else holder,
    )


async def reset_from(tx: Tx, run_id: str) -> set[str]:
    """The runs that ``run_id`` was reset from, and theirs in turn."""
    found: set[str] = set()
    todo = [run_id]
    while todo:
        for marker in await _reset_markers(tx, todo.pop()):
            if marker.from_run_id not in found:
                found.add(marker.from_run_id)
                todo.append(marker.from_run_id)
    return found


async def _reset_markers(tx: Tx, run_id: str) -> list[h.WorkflowReset]:
    found = await tx.all(
        "SELECT seq, data FROM events WHERE run_id = ? AND type = 'WorkflowReset' ORDER BY seq",
        (run_id,),
    )
    events = [event_from_row(data, run_id, f"event #{seq}") for seq, data in found]
    return [e for e in events if isinstance(e, h.WorkflowReset)]


def child_run(child: NewChild) -> NewRun:
    """The run a parent's turn starts for ``child``."""
    return NewRun(
        workflow_id=child.workflow_id,
        run_id=child.run_id,
        workflow_type=child.workflow_type,
        task_queue=child.task_queue,
        args=child.args,
        kwargs=child.kwargs,
        seed=child.seed,
        search_attributes=child.search_attributes,
        priority=child.priority,
        fairness_key=child.fairness_key,
        headers=child.headers,
    )


def child_started(child: NewChild) -> h.Event:
    """What the parent is told once ``child``'s run exists."""
    return h.ChildWorkflowStarted(ref=child.ref, workflow_id=child.workflow_id, run_id=child.run_id)


class RunNames(NamedTuple):
    """What a child's rows name of its parent: enough for child_rows, for a
    parent whose record the turn did not read (an inline continuation)."""

    run_id: str
    workflow_id: str


Parent = RunRecord | RunNames


class ChildRows(NamedTuple):
    """A child's start as start_child writes it, as parameters (for a
    parent's turn that is a plan: sqlstart.StartPlan, sqlplans.Plan)."""

    workflow_id: str
    row: tuple[Any, ...]  # INSERT_RUN's
    inbox: tuple[str, str, float]  # INSERT_INBOX's: its WorkflowStarted
    task: tuple[str, str, float, float, int, str]  # INSERT_WORKFLOW_TASK's: its first workflow task
    timer: tuple[str, int, float, None] | None  # INSERT_TIMER's: its deadline, if it has one
    told: tuple[str, str, float]  # INSERT_INBOX's: ChildWorkflowStarted, for the parent


def child_rows(parent: Parent, child: NewChild, now: float) -> ChildRows:
    """The rows start_child writes for ``child`` of ``parent``, its id being free."""
    new = child_run(child)
    deadline = run_deadline(new, now)
    return ChildRows(
        child.workflow_id,
        run_values(new, now, deadline, parent, child.ref, child.parent_close_policy),
        (new.run_id, event_text(started_event(new, now, parent)), now),
        (new.task_queue, new.run_id, now, now, new.priority, new.fairness_key),
        None if deadline is None else (new.run_id, 0, deadline, None),
        (parent.run_id, event_text(child_started(child)), now),
    )


def run_values(
    new: NewRun,
    now: float,
    deadline: float | None,
    parent: Parent | None = None,
    parent_ref: int | None = None,
    parent_close_policy: str | None = None,
) -> tuple[Any, ...]:
    """INSERT_RUN's values for a new run (see insert_run)."""
    return (
        new.run_id,
        new.workflow_id,
        new.workflow_type,
        new.task_queue,
        OPEN,
        input_text(new),
        now,
        now,
        parent.run_id if parent else None,
        parent_ref,
        parent_close_policy,
        deadline,
        new.priority,
        new.fairness_key,
    )


INSERT_RUN = (
    "INSERT INTO runs (run_id, workflow_id, workflow_type, task_queue, status, input,"
    " created_at, updated_at, parent_run_id, parent_ref, parent_close_policy, deadline,"
    " priority, fairness_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
# The same row with its first turn's outcome (what the turn's update of the
# row would set: see sqlturn.first_outcome), for the commonest start.
INSERT_RUN_WITH_TURN = (
    "INSERT INTO runs (run_id, workflow_id, workflow_type, task_queue, status, input,"
    " created_at, updated_at, parent_run_id, parent_ref, parent_close_policy, deadline,"
    " priority, fairness_key, version, last_seq, state, waiting, holder)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def run_deadline(new: NewRun, now: float, deadline: float | None = None) -> float | None:
    """When the run's execution timeout ends it: an inherited deadline, or
    its own from ``now``."""
    if deadline is None and new.execution_timeout is not None:
        return now + new.execution_timeout
    return deadline


def input_text(new: NewRun) -> str:
    """The run's arguments as its row stores them (its ``input`` column),
    and its headers if it has any (for describe(): see _views)."""
    if new.headers:
        return dumps({"args": new.args, "kwargs": new.kwargs, "headers": new.headers})
    return dumps({"args": new.args, "kwargs": new.kwargs})


def started_event(
    new: NewRun,
    now: float,
    parent: Parent | None = None,
    continued_from: str | None = None,
    inputs: dict[str, Any] | None = None,
) -> h.WorkflowStarted:
    """The first event of a run's history. ``inputs``: its ``args`` and
    ``kwargs`` instead of the NewRun's (input_text, decoded)."""
    return h.WorkflowStarted(
        workflow_type=new.workflow_type,
        workflow_id=new.workflow_id,
        run_id=new.run_id,
        task_queue=new.task_queue,
        args=new.args if inputs is None else inputs["args"],
        kwargs=new.kwargs if inputs is None else inputs["kwargs"],
        seed=new.seed,
        parent_workflow_id=parent.workflow_id if parent else None,
        parent_run_id=parent.run_id if parent else None,
        continued_from_run_id=continued_from,
        search_attributes=new.search_attributes,
        priority=0 if new.priority == h.DEFAULT_PRIORITY else new.priority,
        fairness_key=new.fairness_key,
        headers=new.headers,
        time=now,
    )


def new_run_record(new: NewRun, now: float, inputs: Any = None) -> RunRecord:
    """The row insert_run writes for a run with no parent, as run_from_row
    would read it back (but for ``row_id``, which only the database knows).
    ``inputs``: its ``input``, if the caller decoded input_text already."""
    return RunRecord(
        run_id=new.run_id,
        workflow_id=new.workflow_id,
        workflow_type=new.workflow_type,
        task_queue=new.task_queue,
        status=OPEN,
        input=loads(input_text(new)) if inputs is None else inputs,
        result=None,
        failure=None,
        state={},
        waiting={},
        last_error=None,
        version=0,
        last_seq=0,
        created_at=now,
        updated_at=now,
        closed_at=None,
        deadline=run_deadline(new, now),
        search_attributes=dict(new.search_attributes),
        priority=new.priority,
        fairness_key=new.fairness_key,
    )
