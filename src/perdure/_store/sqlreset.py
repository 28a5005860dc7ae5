"""Resetting a run, in one transaction: a new run of the same workflow id
takes over the latest run's history up to a turn, and that turn's inputs,
then runs on with whatever code is deployed now (see perdure._history.reset
for where a run may be reset). An open run reset is terminated first; a
closed one is left as it ended. A crash before the commit leaves nothing;
after it, the new run is queued like any other. Imports the history model,
the store records, the row helpers and the new-run rows.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

from perdure import _history as h
from perdure._attributes import merged
from perdure._store import sqlnewrun as newrun
from perdure._store import sqlrows as rows
from perdure._store import sqlviews as views
from perdure._store.base import OPEN, WORK, NewRun, RunRecord
from perdure._store.sqlend import terminate_run
from perdure._store.sqlrows import RUN_COLUMNS, Dialect, Tx, dumps
from perdure._store.sqlstreams import write_turn_streams
from perdure.errors import WorkflowNotFoundError, WorkflowResetError

__all__ = ["Reset", "reset_run"]


class Reset(NamedTuple):
    run: RunRecord  # the new run
    at_seq: int  # the first event of the turn it took again
    topics: set[str]  # what to wake once committed


async def reset_run(
    tx: Tx,
    d: Dialect,
    workflow_id: str,
    run_id: str | None,
    to_event: int | None,
    reason: str | None,
    new_run_id: str,
    now: float,
) -> Reset:
    """Reset the latest run of ``workflow_id`` (``run_id``: only if that one
    is the latest) into run ``new_run_id``: see h.plan_reset for the point."""
    await d.lock_workflow_id(tx, workflow_id)
    old = await rows.get_run(tx, d, workflow_id, None)
    if old is None:
        raise WorkflowNotFoundError(f"no workflow with id {workflow_id!r}")
    if run_id is not None and run_id != old.run_id:
        if await rows.get_run(tx, d, workflow_id, run_id) is None:
            raise WorkflowNotFoundError(f"no run {run_id!r} of workflow {workflow_id!r}")
        raise WorkflowResetError(
            f"run {run_id} is not the latest run of workflow {workflow_id!r} (run "
            f"{old.run_id} is, {old.status}): only the latest run can be reset"
        )
    if old.parent_run_id is not None:
        raise WorkflowResetError(
            f"workflow {workflow_id!r} is a child of run {old.parent_run_id}, which "
            f"waits on this run's outcome: reset the parent instead"
        )
    try:
        events = await views.history(tx, old.run_id, 0)
        unread = await _unread(tx, old) if old.is_open else []
        plan = h.plan_reset(events, unread, to_event, new_run_id, reason)
    except h.ResetPointError as exc:
        raise WorkflowResetError(f"cannot reset workflow {workflow_id!r}: {exc}") from None
    except h.HistoryFormatError as exc:
        raise WorkflowResetError(
            f"cannot reset workflow {workflow_id!r}: its history cannot be read ({exc})"
        ) from None
    topics = {WORK}
    if old.is_open:
        why = f"reset: continued in run {new_run_id}" + (f" ({reason})" if reason else "")
        # Its open children began after the point (it is quiet): the new run
        # starts them again, under their ids (sqlnewrun.child_again), so they
        # end now rather than by their close policy (a cancel would still
        # hold the id, and run compensation for work about to be redone).
        # One its code abandoned lives on, and keeps its id.
        for row in await tx.all(
            f"SELECT {RUN_COLUMNS} FROM runs WHERE parent_run_id = ? AND status = ?"
            f" AND parent_close_policy <> 'abandon'{d.for_update}",
            (old.run_id, OPEN),
        ):
            child = rows.run_from_row(row)
            topics |= await terminate_run(tx, d, child, f"its parent was {why}", now)
        topics |= await terminate_run(tx, d, old, why, now)
    started = plan.kept[0] if plan.kept else plan.inputs[0]
    assert isinstance(started, h.WorkflowStarted)
    new = NewRun(
        workflow_id=workflow_id,
        run_id=new_run_id,
        workflow_type=old.workflow_type,
        task_queue=old.task_queue,
        args=started.args,
        kwargs=started.kwargs,
        seed=started.seed,
        # The same time allowed as the old run had, from now.
        execution_timeout=None if old.deadline is None else old.deadline - old.created_at,
        # Its search attributes at the point: the start's, and those its kept
        # turns set (a replay of the kept events arrives at the same).
        search_attributes=functools.reduce(
            merged,
            (e.attributes for e in plan.kept if isinstance(e, h.SearchAttributesSet)),
            started.search_attributes,
        ),
        priority=old.priority,
        fairness_key=old.fairness_key,
        headers=started.headers,
    )
    await newrun.insert_run(tx, new, now, queued=False)
    await rows.append_events(tx, new_run_id, plan.kept)
    state: dict[str, Any] = {e.key: e.value for e in plan.kept if isinstance(e, h.StateSet)}
    await tx.send(
        "UPDATE runs SET last_seq = ?, state = ? WHERE run_id = ?",
        (plan.at_seq - 1, dumps(state), new_run_id),
    )
    # Its streams: the values its kept turns wrote (the workflow's own,
    # which its history holds; not its activities', which only the old
    # run's streams hold).
    streamed = [
        (e.key, e.value, False) if isinstance(e, h.StreamWritten) else (e.key, None, True)
        for e in plan.kept
        if isinstance(e, h.StreamWritten | h.StreamClosed)
    ]
    if streamed:
        await write_turn_streams(tx, new_run_id, streamed, now)
    for event in (*plan.inputs, *plan.signals):
        await rows.to_inbox(tx, new, event, now)
    run = await rows.get_run(tx, d, workflow_id, new_run_id)
    assert run is not None
    return Reset(run, plan.at_seq, topics)


async def _unread(tx: Tx, run: RunRecord) -> list[h.Event]:
    """The inputs waiting in an open run's inbox, oldest first."""
    found = await tx.all("SELECT id, data FROM inbox WHERE run_id = ? ORDER BY id", (run.run_id,))
    return [rows.event_from_row(data, run.run_id, f"inbox row {id_}") for id_, data in found]
