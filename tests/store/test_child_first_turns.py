"""Children whose first turns a worker of this process computes before its
parent's turn commits (sqlstart.prepare_children): that commit writes each
child's row with its turn's outcome, the turn's events and activities, and
ChildWorkflowStarted for the parent; no WorkflowStarted in the child's
inbox, no workflow task to claim. As a plan (its parent's ``first_turns``)
it must write exactly what the body writes, on every backend. A child whose
id is in use is refused alone, and its turn dropped; a fenced parent drops
them all."""

from __future__ import annotations

import json
from typing import Any

import pytest
from store_helpers import Opener, new_run
from test_complete_plans import RUNS, all_at_once, close_behind
from test_outcome_plans import (
    _kids,
    applied,
    applied_claimed,
    outcomes_turn,
    same_rows,
    three_leased,
)
from test_sqlite_plans import _all_rows, claimed
from test_store_new_runs import first_turn

from perdure import _history as h
from perdure._store.base import OPEN, FirstTurn, NewActivity, TurnCommit, TurnInput, WorkflowTask
from perdure._store.sqlrows import Tx
from perdure._store.sqlstore import SqlStore

__all__ = ["applied", "applied_claimed"]  # (fixtures, used by name)

SHAPE = "one outcome, two children"  # (test_outcome_plans: an inline step's turn)


class Kids:
    """A worker that serves the children's queue ("kids"): it computes each
    child's first turn (one activity, leased to it) and records what
    becomes of it."""

    def __init__(self) -> None:
        self.reserved = 0
        self.inputs: list[TurnInput] = []
        self.settled: dict[str, bool] = {}
        self.commits: dict[str, TurnCommit] = {}

    def reserve(self) -> tuple[str, float] | None:
        self.reserved += 1
        return "me", 30.0

    def prepare(self, first: TurnInput) -> FirstTurn | None:
        self.inputs.append(first)
        run_id = first.run.run_id
        schedule = h.ScheduleActivity(
            ref=1, name="a", task_queue="kids", args=[run_id], kwargs={}, options={}
        )
        lease = NewActivity(1, "a", "kids", [run_id], {}, {}, lease=("me", f"{run_id}/1", 30.0))
        commit = first_turn([schedule], activities=[lease])(first)
        self.commits[run_id] = commit
        return FirstTurn(commit, lambda written: self.settled.__setitem__(run_id, written))

    def take(self, task: WorkflowTask | None) -> None:
        assert task is None  # (a first turn computed: its slot is free at once)
        self.reserved -= 1


def kids_of(parents: list[str]) -> list[str]:
    return [f"{p}-kid-{r}" for p in parents for r in (5, 6)]


async def check_children(store: SqlStore, parents: list[str]) -> dict[str, list[Any]]:
    """Each child exists with its first turn (version 1, three events, its
    activity leased to "me"), and no WorkflowStarted or workflow task of its
    own; each parent has ChildWorkflowStarted for both, and a workflow task.
    Returns every table's rows."""
    kids = kids_of(parents)

    async def body(tx: Tx) -> dict[str, list[tuple[Any, ...]]]:
        queries = {
            "runs": "SELECT run_id, status, version, last_seq, parent_run_id FROM runs",
            "events": "SELECT run_id, seq FROM events",
            "tasks": "SELECT kind, run_id, lease_owner FROM tasks",
            "inbox": "SELECT run_id, data FROM inbox",
        }
        return {table: await tx.all(sql) for table, sql in queries.items()}

    got = await store._read(body)
    runs = {r[0]: r[1:] for r in got["runs"]}
    for kid in kids:
        assert runs[kid] == (OPEN, 1, 3, kid.split("-kid-")[0]), kid
    events = [e for e in got["events"] if e[0] in kids]
    assert sorted(events) == sorted((k, seq) for k in kids for seq in (1, 2, 3))
    activities = [t for t in got["tasks"] if t[0] == "activity" and t[1] in kids]
    assert sorted(t[1] for t in activities) == sorted(kids)
    assert {t[2] for t in activities} == {"me"}  # (leased: the worker runs them)
    assert not [t for t in got["tasks"] if t[0] == "workflow" and t[1] in kids]
    assert not [r for r in got["inbox"] if r[0] in kids]
    told = sorted(
        (r[0], json.loads(r[1])["ref"])
        for r in got["inbox"]
        if json.loads(r[1])["type"] == "ChildWorkflowStarted"
    )
    assert told == sorted((p, ref) for p in parents for ref in (5, 6))
    assert {t[1] for t in got["tasks"] if t[0] == "workflow"} == set(parents)
    rows = await _all_rows(store)
    return rows


@pytest.mark.parametrize("turn", ["inline", "claimed"])
async def test_childrens_first_turns_write_exactly_what_the_bodies_write(
    opener: Opener, applied: list[list[str]], applied_claimed: list[int], turn: str
) -> None:
    rows = {}
    for name in ("together", "bodies"):
        store = await opener()
        kids = Kids()
        store.take_new_runs("kids", kids)
        if name == "bodies":
            store.applies_plans = False  # (every turn is its body)
        ids = await three_leased(store)
        if turn == "inline":
            commits = [await outcomes_turn(store, r, t, SHAPE) for r, t in ids.items()]
        else:
            make = await claimed(store, ids, _kids)
            commits = [await make(store, r, t[0]) for r, t in ids.items()]
        applied.clear()
        applied_claimed.clear()
        results = await all_at_once(store, [store.commit_turn(c) for c in commits])
        assert results == [True] * RUNS
        counts = map(len, applied) if turn == "inline" else applied_claimed
        planned = max(counts, default=0)
        assert (planned >= 2) == (name == "together")
        # Every child's turn was computed from its WorkflowStarted (naming
        # its parent), written, and its activity's task id given to it.
        assert kids.settled == {k: True for k in kids_of(list(ids))}
        assert kids.reserved == 0
        for kid, commit in kids.commits.items():
            assert set(commit.created_tasks) == {1}, kid
        started = [i.inbox[0][1] for i in kids.inputs]
        assert all(isinstance(e, h.WorkflowStarted) and e.parent_run_id for e in started)
        rows[name] = await check_children(store, list(ids))
    assert same(rows["together"]) == same(rows["bodies"])


def same(rows: dict[str, list[tuple[Any, ...]]]) -> dict[str, list[tuple[Any, ...]]]:
    """same_rows, and the events without their row ids (a body writes a
    child's events after its parent's, a plan with all the parents')."""
    rows = same_rows(rows)
    return dict(rows, events=sorted(e[1:] for e in rows["events"]))


@pytest.mark.parametrize("holder", ["open", "closed"])
async def test_a_prepared_child_whose_id_is_in_use_is_refused_alone(
    opener: Opener, holder: str
) -> None:
    """The plans' fence trips on the id: the bodies refuse that child (its
    parent is told ChildWorkflowStartFailed; its computed turn is dropped)
    and write the others' first turns."""
    store = await opener()
    kids = Kids()
    store.take_new_runs("kids", kids)
    ids = await three_leased(store)
    bad = f"run-{RUNS - 1}"
    await store.create_run(new_run(wid=f"{bad}/kid-5", run_id="squatter"), "fail")
    if holder == "closed":
        await close_behind(store, "squatter")
    commits = [await outcomes_turn(store, r, t, SHAPE) for r, t in ids.items()]

    results = await all_at_once(store, [store.commit_turn(c) for c in commits])

    assert results == [True] * RUNS
    refused = f"{bad}-kid-5"
    assert kids.settled == {k: k != refused for k in kids_of(list(ids))}
    assert kids.commits[refused].created_tasks == {}
    runs, events, inbox = await named_rows(store)
    assert refused not in runs and f"{bad}-kid-6" in runs
    assert not [e for e in events if e[0] == refused]
    told = {
        (r[0], json.loads(r[1])["type"], json.loads(r[1])["ref"])
        for r in inbox
        if json.loads(r[1])["type"].startswith("Child")
    }
    assert (bad, "ChildWorkflowStartFailed", 5) in told
    assert (bad, "ChildWorkflowStarted", 6) in told
    assert len(told) == RUNS * 2


async def test_a_fenced_parent_drops_its_childrens_turns(opener: Opener) -> None:
    store = await opener()
    kids = Kids()
    store.take_new_runs("kids", kids)
    ids = await three_leased(store)
    before = await named_rows(store)
    bad = f"run-{RUNS - 1}"
    commits = [
        await outcomes_turn(
            store, r, t, "two outcomes, two children and the next activity", r == bad
        )
        for r, t in ids.items()
    ]

    results = await all_at_once(store, [store.commit_turn(c) for c in commits])

    assert results == [True] * (RUNS - 1) + [False]
    assert kids.settled == {k: not k.startswith(f"{bad}-") for k in kids_of(list(ids))}
    after = await named_rows(store)
    assert after[0][bad] == before[0][bad]  # (its version, as before the turn)
    assert not [r for r in after[0] if r.startswith(f"{bad}-")]
    assert [e for e in after[1] if e[0] == bad] == [e for e in before[1] if e[0] == bad]


async def named_rows(
    store: SqlStore,
) -> tuple[dict[str, tuple[Any, ...]], list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """The runs (run id -> status and version), the events (run id, seq) and
    the inbox rows (run id, data), by column name on every backend."""

    async def body(tx: Tx) -> Any:
        runs = await tx.all("SELECT run_id, status, version FROM runs")
        events = await tx.all("SELECT run_id, seq FROM events ORDER BY run_id, seq")
        return runs, events, await tx.all("SELECT run_id, data FROM inbox ORDER BY id")

    runs, events, inbox = await store._read(body)
    return {r[0]: r[1:] for r in runs}, events, inbox


@pytest.mark.parametrize("plans", [True, False], ids=["plan", "body"])
async def test_a_first_turn_s_children_come_with_it(opener: Opener, plans: bool) -> None:
    """A run created here whose first turn starts children (RunTaker.prepare,
    then prepare_children): one commit writes the run, its turn, and the
    children's first turns."""
    store = await opener()
    store.applies_start_plans = store.applies_start_plans and plans
    kids = Kids()
    store.take_new_runs("kids", kids)
    commands, fields = _kids("run-0")
    parent = ParentTaker(first_turn(commands, **fields))
    store.take_new_runs("q", parent)

    await store.create_run(new_run(wid="run-0", run_id="run-0"), "fail")

    assert parent.settled == [True]
    assert kids.settled == {"run-0-kid-5": True, "run-0-kid-6": True}
    await check_children(store, ["run-0"])


class ParentTaker:
    """The parents' worker (queue "q"): computes their first turns."""

    def __init__(self, turn: Any) -> None:
        self.turn = turn
        self.settled: list[bool] = []

    def reserve(self) -> tuple[str, float] | None:
        return "me", 30.0

    def prepare(self, first: TurnInput) -> FirstTurn | None:
        return FirstTurn(self.turn(first), self.settled.append)

    def take(self, task: WorkflowTask | None) -> None:
        pass
