"""Activity outcomes delivered to their runs' inboxes (complete_activity:
the write of every attempt a worker runs for a workflow it did not run
itself) are applied together, as CompletePlans (sqlcomplete), by SQLite's
rounds and PostgreSQL's groups. The rows must be exactly those the bodies
write, several completions of one run included; a completion whose lease
was lost must cost the others nothing; and a completion beside a turn's
plan of its own run must still reach that run."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable
from typing import Any

import pytest
from store_helpers import (
    Opener,
    claim_one,
    new_run,
    schedule_charge,
    together,
    turn,
)
from test_sqlite_plans import _all_rows, claimed_turns

from perdure import _history as h
from perdure._store import postgres, sqlitetx
from perdure._store.base import ActivityTask, NewActivity, turn_queue
from perdure._store.postgres_group import GROUPS
from perdure._store.sqlcomplete import CompletePlan
from perdure._store.sqlite import SqliteStore
from perdure._store.sqlrows import Tx
from perdure._store.sqlstore import SqlStore

RUNS = GROUPS + 3  # (on PostgreSQL the first GROUPS writes of a burst go alone)
PER_RUN = 2


@pytest.fixture
def applied(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The run ids of the completions each application of plans took, on
    either backend."""
    calls: list[list[str]] = []
    complete = sqlitetx._complete
    apply_deliveries = postgres.apply_deliveries

    def sqlite_spy(conn: Any, plans: list[CompletePlan]) -> bool:
        calls.append([p.run_id for p in plans])
        return complete(conn, plans)

    async def pg_spy(tx: Any, plans: list[CompletePlan], tells: list[Any]) -> None:
        if plans:
            calls.append([p.run_id for p in plans])
        await apply_deliveries(tx, plans, tells)

    monkeypatch.setattr(sqlitetx, "_complete", sqlite_spy)
    monkeypatch.setattr(postgres, "apply_deliveries", pg_spy)
    return calls


async def all_at_once(store: SqlStore, writes: list[Awaitable[Any]]) -> list[Any]:
    """The writes started together: on SQLite in one round (see together),
    on PostgreSQL the first GROUPS alone and the rest as one group."""
    if isinstance(store, SqliteStore):
        return await together(store, writes)
    return list(await asyncio.gather(*writes))


async def running_activities(
    store: SqlStore, runs: int = RUNS, per_run: int = PER_RUN, pin: str | None = None
) -> list[ActivityTask]:
    """``runs`` runs, each with ``per_run`` activities for queue "q" that
    another worker claimed and runs (refs 1, 2, ...); pinned to build
    ``pin`` by that turn, if given."""
    for i in range(runs):
        run_id = f"run-{i}"
        await store.create_run(new_run(wid=run_id, run_id=run_id), "fail")
        task = await claim_one(store, run_id)
        refs = range(1, per_run + 1)
        activities = [NewActivity(ref, "charge", "q", [ref], {}, {}, None) for ref in refs]
        commit = await turn(
            store, task, [schedule_charge(r) for r in refs], activities=activities, pin=pin
        )
        assert await store.commit_turn(commit)
    claimed = await store.claim_activity_tasks(["q"], "worker-2", 30, runs * per_run)
    assert len(claimed) == runs * per_run
    return sorted(claimed, key=lambda t: (t.run_id, t.ref))


async def test_completions_wake_pinned_runs_in_their_builds_queue(
    opener: Opener, applied: list[list[str]]
) -> None:
    """A run pinned to a build (docs/versioning.md) gets its next turn in
    that build's queue, from completions applied together as from bodies."""
    store = await opener()
    tasks = await running_activities(store, pin="b1")
    applied.clear()
    results = await all_at_once(store, [store.complete_activity(t, outcome(t)) for t in tasks])
    assert results == [True] * len(tasks)
    assert len(max(applied, key=len)) > 1  # (some went together, as plans)
    queues = await store._read(
        lambda tx: tx.all("SELECT run_id, queue FROM tasks WHERE kind = 'workflow'")
    )
    assert sorted(queues) == sorted((f"run-{i}", turn_queue("q", "b1")) for i in range(RUNS))


def outcome(task: ActivityTask) -> h.Event:
    record = h.attempt_record(1, 1.5, 2.5)
    return h.activity_completed(task.ref, {"ok": task.ref}, 1, [record])


async def close_behind(store: SqlStore, run_id: str) -> None:
    """Close ``run_id`` and leave its activity tasks (no close does that, but
    a completion must check that its run is open, as its body does)."""

    async def body(tx: Tx) -> None:
        await tx.send("UPDATE runs SET status = 'completed' WHERE run_id = ?", (run_id,))

    await store._write(body)


def comparable(rows: dict[str, list[tuple[Any, ...]]]) -> dict[str, list[tuple[Any, ...]]]:
    """The rows without the ids of the new task and inbox rows, sorted: on
    PostgreSQL the writes that go alone commit side by side, in any order."""
    return dict(
        rows,
        tasks=sorted(task[1:] for task in rows["tasks"]),
        inbox=sorted(row[1:] for row in rows["inbox"]),
    )


async def test_completions_write_exactly_what_the_bodies_write(
    opener: Opener, applied: list[list[str]]
) -> None:
    rows = {}
    for name in ("together", "bodies"):
        store = await opener()
        if name == "bodies":
            store.applies_plans = False  # (no plan is built: every write is its body)
        tasks = await running_activities(store)
        closed = f"run-{RUNS - 1}"  # (the last: on PostgreSQL it goes in the group)
        await close_behind(store, closed)
        applied.clear()
        results = await all_at_once(store, [store.complete_activity(t, outcome(t)) for t in tasks])
        assert results == [True] * len(tasks)
        if name == "together":
            # Every completion but those that went alone, both of a run together.
            alone = 0 if isinstance(store, SqliteStore) else GROUPS
            assert [sorted(a) for a in applied] == [sorted(t.run_id for t in tasks[alone:])]
        else:
            assert applied == []
        rows[name] = await _all_rows(store)
    assert comparable(rows["together"]) == comparable(rows["bodies"])
    # The activities' rows went; each open run got both outcomes and one
    # workflow task; the closed run got nothing.
    got = rows["together"]
    assert sorted((t[1], t[3]) for t in got["tasks"]) == [
        ("workflow", f"run-{i}") for i in range(RUNS - 1)
    ]
    assert sorted(r[1] for r in got["inbox"]) == sorted(
        f"run-{i}" for i in range(RUNS - 1) for _ in range(PER_RUN)
    )


async def test_a_lost_lease_costs_the_other_completions_nothing(
    opener: Opener, applied: list[list[str]]
) -> None:
    store = await opener()
    tasks = await running_activities(store)
    bad = tasks[-1]  # (the last: on PostgreSQL it goes in the group)
    tasks[-1] = dataclasses.replace(bad, token="not-mine")
    before = await _all_rows(store)

    results = await all_at_once(store, [store.complete_activity(t, outcome(t)) for t in tasks])

    assert results == [True] * (len(tasks) - 1) + [False]
    assert applied  # the plans were tried together, and the fence tripped
    after = await _all_rows(store)
    assert [t for t in after["tasks"] if t[1] == "activity"] == [
        t for t in before["tasks"] if t[0] == bad.task_id
    ]
    assert sorted(r[1] for r in after["inbox"]) == sorted(t.run_id for t in tasks[:-1])


@pytest.mark.parametrize("first", ["turn", "completion"])
async def test_a_completion_beside_its_runs_turn_still_reaches_the_run(
    opener: Opener, applied: list[list[str]], first: str
) -> None:
    """A run's activity ends while a turn of that run (woken by a signal)
    commits with a ClaimedPlan: the completion goes to its body, after the
    plans, and leaves the run's inbox holding it and a workflow task queued
    for it, as if the two had committed one after the other."""
    store = await opener()
    tasks = await running_activities(store, per_run=1)
    ids = {t.run_id: t.task_id for t in tasks}
    make = await claimed_turns(store, ids)
    turns = [await make(store, run_id, task_id) for run_id, task_id in ids.items()]
    # (Every run's turn, and one completion of the last run: it goes in the group.)
    ended = tasks[-1]
    writes = [store.commit_turn(c) for c in turns]
    completion = store.complete_activity(ended, outcome(ended))
    if first == "turn":
        writes.append(completion)
    else:  # (just before its run's turn)
        writes.insert(-1, completion)
    applied.clear()

    results = await all_at_once(store, writes)

    assert results == [True] * len(writes)
    assert applied == []  # the completion was not applied as a plan
    after = await _all_rows(store)
    assert [r[1] for r in after["inbox"]] == [ended.run_id]
    workflow_tasks = [t for t in after["tasks"] if t[1] == "workflow"]
    assert [(t[3], t[7], t[8]) for t in workflow_tasks] == [(ended.run_id, None, None)]
    assert ended.task_id not in {t[0] for t in after["tasks"]}
