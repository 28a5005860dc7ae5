"""What operators read, shared by the SQL backends (``SqlStore`` runs each
function in one read transaction): pages of runs, a run's history, and the
work a run is waiting on. Read-only; nothing here takes a lock or changes a
row. Imports the history model, the store records and the row helpers.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from perdure import _history as h
from perdure._store import sqlrows as rows
from perdure._store.base import (
    NEVER_DUE,
    OPEN,
    WAITING_LONG,
    BacklogRecord,
    PendingActivity,
    PendingChild,
    PendingTimer,
    PendingWork,
    RunFilter,
    RunRecord,
    StatsRecord,
    WorkflowTaskState,
)
from perdure._store.sqlattrs import count_by_attributes, list_by_attributes
from perdure._store.sqlrows import RUN_COLUMNS, Dialect, Tx, loads


async def list_runs(tx: Tx, query: RunFilter) -> list[RunRecord]:
    """One page of runs matching ``query``, newest first."""
    clauses, params = rows.run_filter(query)
    if query.search_attributes:
        found = await list_by_attributes(tx, query, clauses, params)
        return [rows.run_from_row(r) for r in found]
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    # Newest first along an index: runs_newest, or runs_by_status/_type when
    # that filter is given (see the v4 migration).
    found = await tx.all(
        f"SELECT {RUN_COLUMNS} FROM runs {where}"
        " ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?",
        (*params, query.limit, query.offset),
    )
    return [rows.run_from_row(r) for r in found]


async def count_runs(tx: Tx, query: RunFilter) -> dict[str, int]:
    """How many runs of each status match ``query`` (its page and cursor
    apart); a status none has is left out."""
    clauses, params = rows.run_filter(query)
    if query.search_attributes:
        found = await count_by_attributes(tx, query, clauses, params)
    else:
        # Along runs_by_status (or runs_by_type when that filter is given).
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        found = await tx.all(f"SELECT status, COUNT(*) FROM runs {where} GROUP BY status", params)
    return {status: int(count) for status, count in found}


async def history(tx: Tx, run_id: str, after_seq: int, of_type: str | None = None) -> list[h.Event]:
    """A run's events after ``after_seq``, in order (only those of type ``of_type``)."""
    if of_type is None:
        found = await tx.all(
            "SELECT seq, data FROM events WHERE run_id = ? AND seq > ? ORDER BY seq",
            (run_id, after_seq),
        )
    else:
        found = await tx.all(
            "SELECT seq, data FROM events WHERE run_id = ? AND seq > ? AND type = ? ORDER BY seq",
            (run_id, after_seq, of_type),
        )
    return [rows.event_from_row(r[1], run_id, f"event #{r[0]}") for r in found]


async def pending_work(tx: Tx, d: Dialect, run_id: str, now: float) -> PendingWork:
    """The activities, timers and children a run waits on, and its workflow task."""
    found = await tx.all(
        "SELECT ref, payload, attempt, lease_token, visible_at, last_failure,"
        " attempts, attempt_started_at, queue,"
        " EXISTS (SELECT 1 FROM queue_limits WHERE queue_limits.queue = tasks.queue),"
        " lease_owner, priority, id, heartbeat, paused, created_at, cancel_requested,"
        " fairness_key FROM tasks WHERE run_id = ? AND kind = 'activity' ORDER BY ref",
        (run_id,),
    )
    activities = []
    counted = 0  # (a run's first MAX_AHEAD_COUNTED waiting activities only)
    for r in found:
        leased, awaiting = r[3] is not None, r[3] is not None and r[10] is None
        paused = bool(r[14])
        payload = loads(r[1])
        activity = PendingActivity(
            ref=r[0],
            name=payload["name"],
            attempt=r[2],
            running=leased,
            next_attempt_at=None if leased or paused else max(r[4], now),
            last_failure=loads(r[5]),
            attempts=loads(r[6]) or [],
            started_at=r[7] if leased else None,
            task_queue=r[8],
            due_at=None if leased or paused else r[4],
            queue_limited=bool(r[9]),
            awaiting_completion=awaiting,
            completion_deadline=r[4] if awaiting and r[4] < NEVER_DUE else None,
            heartbeat=loads(r[13]),
            paused=paused,
            cancel_requested=bool(r[16]),
            options=payload["options"],
            scheduled_at=r[15],
        )
        if not leased and r[4] < now - WAITING_LONG and counted < MAX_AHEAD_COUNTED:
            counted += 1
            place = Place("activity", r[8], r[11], r[17], r[4], r[12])
            activity.ahead = await _ahead(tx, d, place, now)
        activities.append(activity)
    timers = [
        PendingTimer(ref=r[0], fire_at=r[1])
        for r in await tx.all(
            "SELECT ref, fire_at FROM timers WHERE run_id = ? AND ref > 0 ORDER BY ref",
            (run_id,),
        )
    ]
    children = [
        PendingChild(ref=r[0], workflow_id=r[1], run_id=r[2], workflow_type=r[3], status=r[4])
        for r in await tx.all(
            "SELECT parent_ref, workflow_id, run_id, workflow_type, status FROM runs"
            " WHERE parent_run_id = ? AND status = ? ORDER BY parent_ref",
            (run_id, OPEN),
        )
    ]
    task = await tx.one(
        "SELECT visible_at, attempt, lease_token, queue, priority, id,"
        " (SELECT debounce_key FROM runs WHERE runs.run_id = tasks.run_id), fairness_key"
        " FROM tasks WHERE run_id = ? AND kind = 'workflow'",
        (run_id,),
    )
    state = None
    if task is not None:
        state = WorkflowTaskState(task[0], task[1], task[2] is not None)
        if task[2] is None and task[0] < now - WAITING_LONG:
            place = Place("workflow", task[3], task[4], task[7], task[0], task[5])
            state.ahead = await _ahead(tx, d, place, now)
    return PendingWork(activities, timers, children, state, None if task is None else task[6])


# A run's waiting activities whose place in the backlog describe() counts
# (two index-range counts each): a fan-out of thousands counts its first ones.
MAX_AHEAD_COUNTED = 20


class Place(NamedTuple):
    """A waiting task, as _ahead finds its place in its queue."""

    kind: str
    queue: str
    priority: int
    key: str  # its fairness key ('': none)
    due_at: float
    task_id: int


async def _ahead(tx: Tx, d: Dialect, t: Place, now: float) -> int:
    """The due tasks a claim takes before the task ``t``: of a higher
    priority, or of its own and its key and due earlier (or at once, made
    before it). Where the queue's tasks have fairness keys, the claims serve
    the keys in turn (sqlfair): then also, from each other key of its
    priority, as many tasks as its own key has before it, or all that key
    has due (give or take one per key: the turn's order differs by worker);
    with fairness weights, as many as the other key takes in the turns its
    own key's tasks before it fill (their number by its weight, times the
    other key's weight)."""
    where = (t.kind, t.queue, t.priority)
    row = await tx.one(
        "SELECT (SELECT COUNT(*) FROM tasks WHERE kind = ? AND queue = ?"
        " AND priority < ? AND visible_at <= ?), (SELECT COUNT(*) FROM tasks"
        " WHERE kind = ? AND queue = ? AND priority = ? AND fairness_key = ?"
        " AND visible_at <= ? AND (visible_at < ? OR id < ?)),"
        f" EXISTS (SELECT 1 FROM {d.keyed_tasks} WHERE kind = ? AND queue = ?"
        " AND fairness_key <> '')",
        (*where, now, *where, t.key, t.due_at, t.due_at, t.task_id, t.kind, t.queue),
    )
    if row is None:
        return 0
    higher, own = int(row[0]), int(row[1])
    if not row[2]:
        return higher + own
    weight = await tx.one(
        "SELECT weight FROM queue_weights WHERE queue = ? AND fairness_key = ?", (t.queue, t.key)
    )
    turns = own // (1 if weight is None else int(weight[0]))
    others = await tx.one(
        "SELECT SUM(CASE WHEN k.n < ? * COALESCE(w.weight, 1) THEN k.n"
        " ELSE ? * COALESCE(w.weight, 1) END) FROM (SELECT fairness_key, COUNT(*) AS n"
        " FROM tasks WHERE kind = ? AND queue = ? AND priority = ? AND visible_at <= ?"
        " AND fairness_key <> ? GROUP BY fairness_key) AS k LEFT JOIN queue_weights AS w"
        " ON w.queue = ? AND w.fairness_key = k.fairness_key",
        (turns, turns, *where, now, t.key, t.queue),
    )
    return higher + own + (int(others[0] or 0) if others is not None else 0)


async def ended_after(tx: Tx, position: int | None) -> tuple[int, list[str] | None]:
    """SQLite's feed of the runs that ended (the ended_runs table, filled by a
    trigger: migration 6). Ids grow by one per end and only the oldest rows
    are deleted, so a position the feed still reaches is the one before its
    lowest id, or above."""
    row = await tx.one("SELECT MIN(id), MAX(id) FROM ended_runs")
    low, high = row if row is not None else (None, None)
    now = high or 0
    if position is None or position > now or (low is not None and low > position + 1):
        return now, None
    found = await tx.all(
        "SELECT run_id FROM ended_runs WHERE id > ? AND id <= ? ORDER BY id", (position, now)
    )
    return now, [run_id for (run_id,) in found]


def stats_queries(now: float) -> list[tuple[str, tuple[Any, ...]]]:
    """Store.stats's queries, read in one snapshot (see stats_record): each
    queue's backlog by kind (and its paused activities), the open runs, the
    retrying ones, the timers, and each queue's due tasks by kind and
    priority."""
    return [
        (
            "SELECT kind, queue, SUM(CASE WHEN visible_at <= ? THEN 1 ELSE 0 END),"
            " SUM(CASE WHEN visible_at > ? AND lease_owner IS NOT NULL THEN 1 ELSE 0 END),"
            " MIN(CASE WHEN visible_at <= ? THEN visible_at END), SUM(paused)"
            " FROM tasks GROUP BY kind, queue ORDER BY queue, kind",
            (now, now, now),
        ),
        ("SELECT COUNT(*) FROM runs WHERE status = ?", (OPEN,)),
        # Along runs_retrying, which holds only runs with last_error (a
        # terminated one keeps it: its status says it ended).
        ("SELECT COUNT(*) FROM runs WHERE last_error IS NOT NULL AND status || '' = ?", (OPEN,)),
        ("SELECT COUNT(*), MIN(fire_at) FROM timers", ()),
        (
            "SELECT kind, queue, priority, COUNT(*) FROM tasks WHERE visible_at <= ?"
            " GROUP BY kind, queue, priority",
            (now,),
        ),
    ]


def stats_record(now: float, found: list[list[tuple[Any, ...]]]) -> StatsRecord:
    """The answers of stats_queries as a StatsRecord."""
    backlog, open_runs, retrying, timers, by_priority = found
    due: dict[tuple[str, str], dict[int, int]] = {}
    for kind, queue, priority, count in by_priority:
        due.setdefault((kind, queue), {})[int(priority)] = int(count)
    return StatsRecord(
        now=now,
        open_runs=int(open_runs[0][0]),
        retrying_runs=int(retrying[0][0]),
        timers=int(timers[0][0]),
        first_timer_at=timers[0][1],
        backlog=[
            BacklogRecord(
                r[0],
                r[1],
                int(r[2] or 0),
                int(r[3] or 0),
                r[4],
                due.get((r[0], r[1]), {}),
                int(r[5] or 0),
            )
            for r in backlog
        ],
    )
