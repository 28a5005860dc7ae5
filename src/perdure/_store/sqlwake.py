"""Waking workflow turns: due timers fired into their runs' inboxes, and
workflow tasks leased together with their turn's input.

A commit that makes a workflow task runnable may lease it at once to the
worker that will run the turn (a new run's start, a timer's firing), and a
claim leases many; either reads back, with its commit, what that turn needs
beyond the worker's cached instance: the run and its inbox
(``WorkflowTask.turn_input``). A worker whose instance is at that version of
the run then reads nothing before the turn. Imports the history model, the
store records and the row helpers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from perdure import _history as h
from perdure._store import sqlnewrun as newrun
from perdure._store import sqlqueues
from perdure._store import sqlrows as rows
from perdure._store.base import (
    HELD_GRACE,
    NewRun,
    RunRecord,
    TurnInput,
    TurnLease,
    WorkflowTask,
)
from perdure._store.sqlend import end_run_by_marker
from perdure._store.sqlrows import RUN_COLUMNS, Dialect, Tx

__all__ = ["HELD_GRACE", "NOT_HELD", "TurnInputs", "fire_due", "first_input", "next_due"]


class TurnInputs:
    """Runs and inboxes read back with a commit that leased their turns."""

    def __init__(self) -> None:
        self.runs: dict[str, RunRecord] = {}
        # None: a row of that run's inbox could not be decoded.
        self.inboxes: dict[str, list[tuple[int, h.Event]] | None] = {}

    def clear(self) -> None:
        self.runs.clear()
        self.inboxes.clear()

    async def read(
        self, tx: Tx, d: Dialect, run_ids: Sequence[str], with_runs: bool = True
    ) -> None:
        """Read these runs (unless the caller has them: ``with_runs=False``)
        and their inboxes, with the transaction's commit (no round trip of its
        own on PostgreSQL). One statement text for any number of runs."""
        ids = (d.ids_param(sorted(set(run_ids))),)
        if with_runs:
            await tx.later_all(
                f"SELECT {RUN_COLUMNS} FROM runs WHERE {d.among_run_ids}", ids, self._runs
            )
        await tx.later_all(
            f"SELECT run_id, id, data FROM inbox WHERE {d.among_run_ids} ORDER BY id",
            ids,
            self._inboxes,
        )

    # A row that cannot be decoded costs only its own run the input read here:
    # that turn loads the run instead, and reports the damage there (see
    # TurnRunner), rather than failing the claim of every task.

    def _runs(self, found: list[tuple[Any, ...]]) -> None:
        for row in found:
            try:
                run = rows.run_from_row(row)
            except ValueError:
                continue
            self.runs[run.run_id] = run

    def _inboxes(self, found: list[tuple[Any, ...]]) -> None:
        for run_id, inbox_id, data in found:
            inbox = self.inboxes.setdefault(run_id, [])
            if inbox is None:
                continue
            try:
                event = rows.event_from_row(data, run_id, f"inbox row {inbox_id}")
            except h.HistoryFormatError:
                self.inboxes[run_id] = None
                continue
            inbox.append((inbox_id, event))

    def of(self, run_id: str, run: RunRecord | None = None) -> TurnInput | None:
        """The input of the run's turn (no events: see WorkflowTask.turn_input),
        or None if it was not read, or not readable."""
        run = run or self.runs.get(run_id)
        inbox = self.inboxes.get(run_id, [])
        if run is None or inbox is None:
            return None
        return TurnInput(run, [], inbox)


def first_input(new: NewRun, now: float, parent: newrun.Parent | None = None) -> TurnInput:
    """What a new run's first turn reads, as insert_run will write it and a
    replay would read it back: WorkflowStarted, with the arguments as JSON
    gives them back (a copy of their own for each reader). ``parent``: a
    child's."""
    text = newrun.input_text(new)
    started = newrun.started_event(new, now, parent, inputs=rows.loads(text))
    return TurnInput(newrun.new_run_record(new, now, rows.loads(text)), [], [(0, started)])


async def fire_due(
    tx: Tx,
    d: Dialect,
    now: float,
    limit: int,
    lease: TurnLease | None,
    topics: set[str],
    due_by: float,
    worker: str | None = None,
) -> tuple[int, Callable[[], list[WorkflowTask]]]:
    """Fire up to ``limit`` timers due by ``due_by`` (at most ``now``): each
    one's ``TimerFired`` into its run's inbox (an execution timeout ends its
    run, adding to ``topics``). A timer another worker than ``worker`` holds
    waits HELD_GRACE past its due time (see Store.fire_due_timers).
    With ``lease``, lease the woken turns to its owner (see TurnLease).
    Returns how many fired, and a function that gives the leased tasks,
    each with its turn's input, once the transaction committed."""
    # Delete-and-deliver in one transaction: each timer fires exactly once,
    # whichever worker gets here first. SKIP LOCKED shares the due timers
    # out among concurrent firers; their runs are then locked in run-id
    # order, so two firers never wait for each other in a cycle (see the
    # lock order in sqlrows).
    # Due, and not held by another worker (or held past the grace): the
    # index on fire_at serves the order, the holder filters the rows it meets.
    picked = d.picked(
        d.timer_key,
        "FROM timers WHERE fire_at <= ? AND (holder IS NULL OR holder = ? OR fire_at <= ?)"
        " ORDER BY fire_at LIMIT ?",
    )
    due = await tx.all(
        f"DELETE FROM timers WHERE {picked} RETURNING run_id, ref, fire_at",
        (due_by, worker, now - HELD_GRACE, limit),
    )
    runs = await rows.runs_by_ids(tx, d, [row[0] for row in due])
    fired: dict[str, list[h.Event]] = {}  # (written together, after the loop)
    for run_id, ref, _ in sorted(due, key=lambda row: (row[0], row[2], row[1])):
        run = runs.get(run_id)
        if run is None or not run.is_open:
            continue
        if ref == 0:  # the execution timeout
            timeout = (run.deadline or now) - run.created_at
            marker = h.WorkflowTimedOut(timeout=timeout)
            message = "the workflow's execution timeout passed"
            topics.update(await end_run_by_marker(tx, d, run, marker, "timed_out", message, now))
            del runs[run_id]  # closed: its other due timers fire into nothing
            fired.pop(run_id, None)
        elif ref < 0:  # an activity's schedule_to_close deadline (rows.timer_rows)
            failed = await _deadline_passed(tx, run_id, -ref, now)
            if failed is not None:
                fired.setdefault(run_id, []).append(failed)
        else:
            fired.setdefault(run_id, []).append(h.TimerFired(ref=ref, time=now))
    woken = {run_id: runs[run_id] for run_id in fired}
    await rows.to_inboxes(
        tx, d, [(woken[r], e) for r, events in fired.items() for e in events], now
    )
    leased: list[WorkflowTask] = []
    inputs = TurnInputs()
    if lease is not None:
        mine = [run for run in woken.values() if run.turn_queue in lease.queues][: lease.limit]
        if mine:
            run_ids = [run.run_id for run in mine]
            await d.lease_turn_tasks(tx, run_ids, lease.owner, lease.seconds, now, leased.append)
            await inputs.read(tx, d, run_ids, with_runs=False)

    def taken() -> list[WorkflowTask]:
        leased.sort(key=lambda task: task.run_id)  # (as the runs were locked)
        for task in leased:
            task.turn_input = inputs.of(task.run_id, woken[task.run_id])
        return leased

    return len(due), taken


async def _deadline_passed(tx: Tx, run_id: str, ref: int, now: float) -> h.Event | None:
    """Activity ``ref`` of run ``run_id`` is past its schedule_to_close
    deadline: if its task is still there and no attempt holds a live lease,
    the task goes and the activity fails (ActivityTimeoutError, not
    retryable), its outcome for the run's inbox. An attempt that holds a
    lease is its worker's to end (it stops at the deadline): the deadline
    is looked at again when that lease runs out. Gone (it ended): nothing."""
    row = await tx.one(
        "SELECT id, lease_token, visible_at, attempt, payload, attempts, paused, created_at"
        " FROM tasks WHERE kind = 'activity' AND run_id = ? AND ref = ?",
        (run_id, ref),
    )
    if row is None:
        return None
    task_id, token, visible_at, attempt, payload, attempts, paused, scheduled_at = row
    spec = rows.loads(payload)
    close_by = spec["options"]["schedule_to_close_timeout"]
    if close_by is not None and scheduled_at + close_by > now:
        # An operator moved the deadline later while this timer was due
        # (update_activity_options leaves a timer a firer holds to it).
        await tx.send(rows.INSERT_TIMER, (run_id, -ref, scheduled_at + close_by, None))
        return None
    if token is not None and visible_at > now:
        await tx.send(rows.INSERT_TIMER, (run_id, -ref, visible_at, None))
        return None
    await tx.send("DELETE FROM tasks WHERE id = ?", (task_id,))
    if token is not None:
        who = f"its attempt {attempt} was lost: its worker stopped or lost its lease"
    elif paused:
        who = "it was paused"
    elif attempt == 0:
        who = "no worker took it"
    else:
        who = f"no worker took its attempt {attempt + 1} in time"
    records = rows.loads(attempts) if attempts else []
    failure = {
        "type": "ActivityTimeoutError",
        "message": (
            f"activity {spec['name']!r} exceeded its schedule_to_close_timeout of "
            f"{close_by:g}s ({who}{h.last_error(records)})"
        ),
        "traceback": "",
        "non_retryable": True,
        "details": None,
    }
    return h.ActivityFailed(ref=ref, failure=failure, attempt=attempt, attempts=records)


# A claim's condition on a workflow task (placeholders: a due time HELD_GRACE
# ago, the claiming worker): due that long, or its run not held by another
# worker (runs.holder; NULL holds nothing). Served by the runs' key.
NOT_HELD = (
    " AND (visible_at <= ? OR NOT EXISTS (SELECT 1 FROM runs"
    " WHERE runs.run_id = tasks.run_id AND runs.holder <> ?))"
)


async def _next_activity(tx: Tx, d: Dialect, queues: list[str], now: float) -> list[float]:
    """When the earliest activity task of each of ``queues`` may be claimed:
    when it is due, or later if its queue's limits hold it back (see
    sqlqueues.gate). A queue whose limits wait for an attempt to end has
    none: its end wakes the workers. So has a key at its limit per key:
    its tasks count from when its first lease may run out, and the other
    keys' from when they are due (see _first_uncapped)."""
    times = []
    for queue in queues:
        # The limits first: the first task of a queue held until an attempt
        # ends is not looked for.
        limits = await sqlqueues.read_limits(tx, queue)
        held = None if limits is None else await sqlqueues.gate(tx, queue, limits, now)
        if held is not None and held.room <= 0 and held.free_at is None:
            continue
        capped = {} if held is None or held.room <= 0 or limits is None else held.capped(limits)
        if capped:
            times.append(await _first_uncapped(tx, d, queue, capped, now))
            continue
        row = await tx.one(_first_activity(d), (queue, queue))
        if row is None or row[0] is None:
            continue
        first = row[0]
        if held is not None and held.free_at is not None and held.room <= 0:
            first = max(first, held.free_at)  # (a slot frees: the window moves, a lease ends)
        times.append(first)
    return times


def _first_activity(d: Dialect) -> str:
    """When a queue's first activity task is due: tasks_due orders a queue's
    tasks by priority and key before their due time, so the first of each
    priority's unkeyed tasks is one search, and the keyed tasks' first one
    search of their partial index, which orders them by due time (nothing
    for a queue without keys). MIN(visible_at) of the queue read its whole
    range: 11 ms on SQLite and 25 ms on PostgreSQL with 100,000 tasks
    backing off, at each idle worker's every wait; and of its keyed tasks
    every one (19 ms). (One subquery run for each priority, not one per
    priority: PostgreSQL plans each anew, 0.6 ms for five. ORDER BY ...
    LIMIT 1, not MIN: its planner reads every entry for a MIN where it
    expects one row, as in a table never analyzed.)"""
    unkeyed = _first_unkeyed("")
    return (
        f"SELECT MIN(first) FROM ({unkeyed} UNION ALL SELECT (SELECT visible_at"
        f" FROM {d.keyed_tasks} WHERE kind = 'activity' AND queue = ? AND fairness_key <> ''"
        " ORDER BY visible_at LIMIT 1)) AS firsts"
    )


def _first_unkeyed(where: str) -> str:
    """The first unkeyed task of each priority (``where``: more conditions)."""
    priorities = " UNION ALL ".join(f"SELECT {level} AS priority" for level in h.PRIORITIES)
    return (
        "SELECT (SELECT visible_at FROM tasks WHERE kind = 'activity' AND queue = ?"
        f" AND priority = p.priority AND fairness_key = ''{where} ORDER BY visible_at LIMIT 1)"
        f" AS first FROM ({priorities}) AS p"
    )


# With keys at their limit per key, an idle worker's next due time counts
# the other keys' tasks due at most so long ago (s), and looks at so many
# keyed tasks at most (see _first_uncapped).
_RECENT = 1.0
_AHEAD = 1000
_EVER = float("-inf")  # (a due time before any)


async def _first_uncapped(
    tx: Tx, d: Dialect, queue: str, capped: dict[str, float], now: float
) -> float:
    """The next due time of a queue with keys at their limit (``capped``:
    each, and when its first lease runs out): their due tasks, however
    many, must not count (the worker would wake for nothing, again and
    again), and a read of the queue's tasks with them left out went
    through their backlog (50 ms for 100,000 tasks behind 1,000 keys). It
    is the first of: the first lease of such a key to run out; the first
    unkeyed task (due later, if the unkeyed are at their limit); and the
    first keyed task of another key due since a moment ago (_RECENT: one
    that fell due since the worker's claim) or later, found among the next
    _AHEAD keyed tasks in due order, or if none is, the last of those
    (the worker wakes then, and looks further). Not counted: a task of a
    key not at its limit due longer ago, which the worker's claim did not
    take: a key that came off its limit since (the attempt's end woke the
    workers, who claim again), or one the claim's walk did not reach
    (sqlfair.KEYS_WALKED: the next wake's claim goes on)."""
    frees = min(capped.values())
    after = now if "" in capped else _EVER
    keys = d.ids_param(list(capped))
    since = (keys, queue, now - _RECENT, now, _AHEAD)
    row = await tx.one(_uncapped_sql(d), (queue, after, *since, keys, queue, now, _AHEAD))
    assert row is not None
    unkeyed, recent, later, last, seen = row
    if later is None and seen == _AHEAD:
        later = last  # (after now: the worker does not wake at once for nothing)
    return min(t for t in (frees, unkeyed, recent, later) if t is not None)


def _uncapped_sql(d: Dialect) -> str:
    """_first_uncapped's read: the first unkeyed task after a time; of the
    keyed tasks due between two times (at most so many, in due order), the
    first of a key not among some; and of those due after a time (at most
    so many), the first of such a key, the last, and how many."""
    unkeyed = _first_unkeyed(" AND visible_at > ?")
    first = f"MIN(CASE WHEN fairness_key{d.not_among} THEN visible_at END)"
    keyed = (
        f"SELECT visible_at, fairness_key FROM {d.keyed_tasks} WHERE kind = 'activity'"
        " AND queue = ? AND fairness_key <> '' AND visible_at > ?"
    )
    return (
        f"SELECT (SELECT MIN(first) FROM ({unkeyed}) AS firsts), (SELECT {first} FROM"
        f" ({keyed} AND visible_at <= ? ORDER BY visible_at LIMIT ?) AS recent), {first},"
        f" MAX(visible_at), COUNT(*) FROM ({keyed} ORDER BY visible_at LIMIT ?) AS later"
    )


async def next_due(
    tx: Tx,
    d: Dialect,
    queues: list[str],
    kinds: tuple[str, ...],
    worker: str | None = None,
    now: float = 0.0,
) -> float | None:
    """When the earliest task of ``kinds`` on ``queues``, or any timer, is due
    (for ``worker``: see Store.next_due); ``now``, for the limits of
    queues."""
    marks = rows.marks(queues)
    times = []
    for kind in kinds:
        if kind != "workflow":
            times.extend(await _next_activity(tx, d, queues, now))
            continue
        # The earliest workflow task, and the earliest within its grace whose
        # run no other worker holds (one round trip).
        row = await tx.one(
            "SELECT soonest, (SELECT MIN(visible_at) FROM tasks WHERE kind = ?"
            f" AND queue IN ({marks}) AND visible_at < soonest + ? AND NOT EXISTS"
            " (SELECT 1 FROM runs WHERE runs.run_id = tasks.run_id AND runs.holder <> ?))"
            " FROM (SELECT MIN(visible_at) AS soonest FROM tasks WHERE kind = ?"
            f" AND queue IN ({marks})) AS f",
            (kind, *queues, HELD_GRACE, worker or "", kind, *queues),
        )
        if row is not None and row[0] is not None:
            times.append(row[0] + HELD_GRACE if row[1] is None else row[1])
    row = await tx.one(  # (a search of the index on fire_at for its first entry)
        "SELECT fire_at, holder FROM timers"
        " WHERE fire_at = (SELECT MIN(fire_at) FROM timers) LIMIT 1"
    )
    if row is not None:
        first, holder = row
        if holder is None or holder == worker:
            times.append(first)
        else:  # the firing takes it after the grace, or a timer of the meantime first
            given = first + HELD_GRACE
            row = await tx.one(
                "SELECT MIN(fire_at) FROM timers WHERE fire_at < ?"
                " AND (holder IS NULL OR holder = ?)",
                (given, worker),
            )
            times.append(given if row is None or row[0] is None else row[0])
    return min(times) if times else None
