"""A debounced start's SQL (``Client.debounce``, docs/workflows.md
"Debouncing"), shared by the SQL backends: the pending run of a key (open,
no history, its first workflow task not taken by a worker, no cancellation
asked for) is pushed back and given the call's arguments, or, if there is
none, a new run is created holding the key. All in one transaction, calls
of one key taking turns. Imports the history model, the store records and
the row helpers.
"""

from __future__ import annotations

import dataclasses

from perdure import _history as h
from perdure._store.base import OPEN, NewRun, RunRecord
from perdure._store.eventtext import event_text
from perdure._store.sqlnewrun import insert_run, new_run_record
from perdure._store.sqlrows import RUN_COLUMNS, Dialect, Tx, dumps, event_from_row, run_from_row

__all__ = ["debounce"]

# (The status a constant, OPEN's value, as the partial index that holds the
# open debounced runs only says it: a parameter would not let PostgreSQL's
# generic plan use that index.)
_PENDING = (
    f"SELECT {RUN_COLUMNS} FROM runs WHERE debounce_key = ? AND workflow_type = ?"
    " AND status = 'running' AND last_seq = 0 ORDER BY id DESC LIMIT 1"
)
assert OPEN == "running", "_PENDING names the open status by its value"
# The first workflow task of a run no worker has taken (its lease is free).
_UNTAKEN = (
    "SELECT visible_at FROM tasks WHERE kind = 'workflow' AND run_id = ? AND lease_token IS NULL"
)


async def debounce(
    tx: Tx, d: Dialect, new: NewRun, key: str, delay: float, max_delay: float | None, now: float
) -> tuple[RunRecord, bool]:
    """Store.debounce: the key's pending run, pushed back to ``delay`` from
    ``now`` (but not past ``max_delay`` from its creation) with ``new``'s
    arguments, or else ``new`` created (its ``start_at`` set) with the key;
    and whether it was created."""
    # Two calls of one key at once must not both create a run: they take
    # turns. (On PostgreSQL the advisory lock of a hash: a workflow id or
    # another key of the same hash only makes its holder wait its turn too.)
    await d.lock_workflow_id(tx, f"debounce\x1f{new.workflow_type}\x1f{key}")
    row = await tx.one(_PENDING + d.for_update, (key, new.workflow_type))
    if row is not None:
        run = run_from_row(row)
        task = await tx.one(_UNTAKEN + d.for_update, (run.run_id,))
        inbox = await tx.all(
            "SELECT id, data FROM inbox WHERE run_id = ? ORDER BY id", (run.run_id,)
        )
        waiting = [event_from_row(data, run.run_id, f"inbox row {i}") for i, data in inbox]
        # (A run whose cancellation was asked for is not given more work.)
        if task is not None and not any(isinstance(e, h.CancelRequested) for e in waiting):
            start_at = now + delay
            if max_delay is not None:
                start_at = max(now, min(start_at, run.created_at + max_delay))
            shift = start_at - float(task[0])
            return await _push_back(
                tx, run, new, inbox[0][0], waiting[0], shift, start_at, now
            ), False
    await insert_run(tx, new, now)
    await tx.send("UPDATE runs SET debounce_key = ? WHERE run_id = ?", (key, new.run_id))
    return new_run_record(new, now), True


async def _push_back(
    tx: Tx,
    run: RunRecord,
    new: NewRun,
    inbox_id: int,
    started: h.Event,
    shift: float,
    start_at: float,
    now: float,
) -> RunRecord:
    """Give the pending ``run`` ``new``'s arguments, its first turn due at
    ``start_at`` and its execution timeout's deadline moved by ``shift``
    with it; returns its record so changed. Its WorkflowStarted (``started``,
    inbox row ``inbox_id``) waits in its inbox, since no turn has taken it
    into the history: that row is rewritten, and the run's input."""
    assert isinstance(started, h.WorkflowStarted), started
    inputs = {**run.input, "args": new.args, "kwargs": new.kwargs}
    await tx.send(  # (a NULL deadline, no execution timeout, stays NULL)
        "UPDATE runs SET input = ?, updated_at = ?, deadline = deadline + ? WHERE run_id = ?",
        (dumps(inputs), now, shift, run.run_id),
    )
    await tx.send(
        "UPDATE tasks SET visible_at = ? WHERE kind = 'workflow' AND run_id = ?",
        (start_at, run.run_id),
    )
    if run.deadline is not None:
        await tx.send(
            "UPDATE timers SET fire_at = fire_at + ? WHERE run_id = ? AND ref = 0",
            (shift, run.run_id),
        )
    started = dataclasses.replace(started, args=new.args, kwargs=new.kwargs)
    await tx.send("UPDATE inbox SET data = ? WHERE id = ?", (event_text(started), inbox_id))
    deadline_at = None if run.deadline is None else run.deadline + shift
    return dataclasses.replace(run, input=inputs, updated_at=now, deadline=deadline_at)
