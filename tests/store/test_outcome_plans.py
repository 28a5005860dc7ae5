"""Inline turns that take in several outcomes at once (a workflow's
parallel activities: TurnCommit.also_done), start nothing, or start
children, are plans too (sqlplans.plan_turn, plan_close): SQLite's rounds
and PostgreSQL's groups apply them with one statement per kind, each
finished attempt's task deleted under its own lease token, the children's
ids fenced together. The rows must be exactly those the bodies write; a
lost lease among the outcomes, or a child's id in use, must trip that
turn's fence and cost the other turns nothing."""

from __future__ import annotations

import json
from typing import Any

import pytest
from store_helpers import (
    Opener,
    child_start,
    claim_one,
    leased_charge,
    new_run,
    schedule_charge,
    turn,
)
from test_complete_plans import RUNS, all_at_once, close_behind, comparable
from test_sqlite_plans import _all_rows, claimed

from perdure import _history as h
from perdure._store import postgres, sqlitetx
from perdure._store.base import TurnCommit
from perdure._store.sqlclaimed import ClaimedPlan, plan_claimed
from perdure._store.sqlplans import ClosePlan, Plan, plan_close, plan_turn
from perdure._store.sqlstore import SqlStore
from perdure._store.sqlturn import encode_turn

NOW = 1_700_000_100.0

# shape -> (the outcomes the turn takes in, by ref; what it does next)
SHAPES = {
    "one outcome, nothing next": ([1], "nothing"),
    "two outcomes, nothing next": ([1, 2], "nothing"),
    "two outcomes, the next activity here": ([1, 2], "next"),
    "three outcomes, the run ends": ([1, 2, 3], "end"),
    "one outcome, two children": ([1], "children"),
    "two outcomes, two children and the next activity": ([1, 2], "children, next"),
}


@pytest.fixture
def applied(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The run ids of the turn plans (Plans and ClosePlans) each
    application of plans took, on either backend."""
    calls: list[list[str]] = []
    run_plans = sqlitetx.run_plans
    apply_plans, apply_closes = postgres.apply_plans, postgres.apply_closes

    def sqlite_spy(conn: Any, batch: Any) -> Any:
        got = run_plans(conn, batch)
        runs = [job.plan.run_id for job, _, _ in got or () if type(job.plan) in (Plan, ClosePlan)]
        if runs:
            calls.append(runs)
        return got

    async def pg_plans(tx: Any, plans: Any) -> None:
        calls.append([p.run_id for p in plans])
        await apply_plans(tx, plans)

    async def pg_closes(tx: Any, d: Any, closes: Any) -> Any:
        calls.append([c.run_id for c in closes])
        return await apply_closes(tx, d, closes)

    monkeypatch.setattr(sqlitetx, "run_plans", sqlite_spy)
    monkeypatch.setattr(postgres, "apply_plans", pg_plans)
    monkeypatch.setattr(postgres, "apply_closes", pg_closes)
    return calls


async def three_leased(store: SqlStore) -> dict[str, list[int]]:
    """RUNS runs, each with activities 1, 2 and 3 leased here by its first
    turn (run "run-i", tokens "run-i/ref"): run id -> their task ids."""
    ids = {}
    for i in range(RUNS):
        run_id = f"run-{i}"
        await store.create_run(new_run(wid=run_id, run_id=run_id), "fail")
        task = await claim_one(store, run_id)
        refs = (1, 2, 3)
        commit = await turn(
            store,
            task,
            [schedule_charge(r) for r in refs],
            activities=[leased_charge(r, f"{run_id}/{r}") for r in refs],
        )
        assert await store.commit_turn(commit)
        ids[run_id] = [commit.created_tasks[r] for r in refs]
    return ids


async def outcomes_turn(
    store: SqlStore, run_id: str, tasks: list[int], shape: str, bad_token: bool = False
) -> TurnCommit:
    """The inline turn of ``shape`` for ``run_id``. ``bad_token``: the last
    outcome's attempt lost its lease."""
    refs, then = SHAPES[shape]
    data = await store.load_turn(run_id, 0)
    inputs: list[h.Event] = [h.ActivityCompleted(ref=r, result=f"{run_id}/{r}") for r in refs]
    commands: list[h.Command] = []
    fields: dict[str, Any] = {}
    if then.startswith("children"):
        kids = [child_start(ref, f"{run_id}/kid-{ref}", f"{run_id}-kid-{ref}") for ref in (5, 6)]
        commands = [command for command, _ in kids]
        fields.update(children=[child for _, child in kids], workflow_id=run_id, task_queue="q")
    if then.endswith("next"):
        commands.append(schedule_charge(4))
        fields["activities"] = [leased_charge(4, f"{run_id}/4")]
    elif then == "end":
        result = {"done": run_id}
        commands = [h.CompleteWorkflow(result=result)]
        fields.update(close_status="completed", result=result, has_relatives=False)
    done = [(tasks[r - 1], f"{run_id}/{r}") for r in refs]
    if bad_token:
        done[-1] = (done[-1][0], "not-mine")
    return TurnCommit(
        task=None,
        run_id=run_id,
        expected_version=data.run.version,
        events=h.turn_events(data.run.last_seq, NOW, inputs, commands),
        consumed_inbox=[],
        activity_done=done[0],
        also_done=tuple(done[1:]),
        **fields,
    )


def planned(commit: TurnCommit) -> Plan | ClosePlan | None:
    written = encode_turn(commit)
    return plan_turn(commit, NOW, written) or plan_close(commit, NOW, written, None)


@pytest.mark.parametrize("shape", list(SHAPES))
async def test_outcome_turns_write_exactly_what_the_bodies_write(
    opener: Opener, applied: list[list[str]], shape: str
) -> None:
    rows = {}
    for name in ("together", "bodies"):
        store = await opener()
        if name == "bodies":
            store.applies_plans = store.applies_close_plans = False  # (every turn is its body)
        ids = await three_leased(store)
        commits = [await outcomes_turn(store, r, t, shape) for r, t in ids.items()]
        assert all(planned(c) is not None for c in commits)
        applied.clear()
        results = await all_at_once(store, [store.commit_turn(c) for c in commits])
        assert results == [True] * RUNS
        if name == "together":
            assert max(len(a) for a in applied) >= 2  # (applied together, as plans)
        else:
            assert applied == []
        if SHAPES[shape][1].endswith("next"):  # (the next activity took the first one's row)
            assert [c.created_tasks for c in commits] == [{4: t[0]} for t in ids.values()]
        rows[name] = await _all_rows(store)
    assert same_rows(rows["together"]) == same_rows(rows["bodies"])
    got = rows["together"]
    refs, then = SHAPES[shape]
    left = {"nothing": 3 - len(refs), "next": 2, "end": 0, "children": 3 - len(refs)}
    left["children, next"] = 2
    activities = [t for t in got["tasks"] if t[1] == "activity"]
    assert len(activities) == RUNS * left[then]  # every finished attempt's row went
    if then.startswith("children"):
        # Each child exists with its first workflow task, and its parent has
        # ChildWorkflowStarted for each, with a workflow task to take them in.
        assert len(got["runs"]) == RUNS * 3
        workflow_tasks = sorted(t[3] for t in got["tasks"] if t[1] == "workflow")
        kids = [f"run-{i}-kid-{r}" for i in range(RUNS) for r in (5, 6)]
        assert workflow_tasks == sorted([*ids, *kids])


def same_rows(rows: dict[str, list[tuple[Any, ...]]]) -> dict[str, list[tuple[Any, ...]]]:
    """comparable, and the runs without their row ids (the children's rows
    are inserted in another order by the bodies that go alone)."""
    rows = comparable(rows)
    return dict(rows, runs=sorted(run[1:] for run in rows["runs"]))


@pytest.mark.parametrize("shape", [s for s in SHAPES if len(SHAPES[s][0]) > 1])
async def test_a_lost_lease_among_the_outcomes_costs_the_other_turns_nothing(
    opener: Opener, applied: list[list[str]], shape: str
) -> None:
    store = await opener()
    ids = await three_leased(store)
    before = await _all_rows(store)
    bad = f"run-{RUNS - 1}"  # (the last: on PostgreSQL it goes in the group)
    commits = [await outcomes_turn(store, r, t, shape, bad_token=r == bad) for r, t in ids.items()]
    applied.clear()

    results = await all_at_once(store, [store.commit_turn(c) for c in commits])

    assert results == [True] * (RUNS - 1) + [False]
    after = await _all_rows(store)
    for table in ("runs", "events", "tasks"):
        mine = [r for r in after[table] if bad in r]
        assert mine == [r for r in before[table] if bad in r], table
    assert commits[-1].created_tasks == {}


@pytest.mark.parametrize("holder", ["open", "closed"])
async def test_a_childs_id_in_use_sends_the_turns_to_their_bodies(
    opener: Opener, applied: list[list[str]], holder: str
) -> None:
    """The plans' fence trips on a child's id another run holds (open, or
    closed: a workflow id is single-use): every turn is then its body, which
    refuses that child alone (the parent is told ChildWorkflowStartFailed)
    and starts the others."""
    store = await opener()
    ids = await three_leased(store)
    bad = f"run-{RUNS - 1}"
    await store.create_run(new_run(wid=f"{bad}/kid-5", run_id="squatter"), "fail")
    if holder == "closed":
        await close_behind(store, "squatter")
    shape = "one outcome, two children"
    commits = [await outcomes_turn(store, r, t, shape) for r, t in ids.items()]

    results = await all_at_once(store, [store.commit_turn(c) for c in commits])

    assert results == [True] * RUNS
    after = await _all_rows(store)
    told = {
        (row[1], json.loads(row[2])["type"], json.loads(row[2])["ref"])
        for row in after["inbox"]
        if json.loads(row[2])["type"].startswith("Child")
    }
    assert (bad, "ChildWorkflowStartFailed", 5) in told
    assert (bad, "ChildWorkflowStarted", 6) in told
    others = {(f"run-{i}", "ChildWorkflowStarted", r) for i in range(RUNS - 1) for r in (5, 6)}
    assert others <= told
    assert len(told) == RUNS * 2
    started = {r[1] for r in after["runs"]}  # (run ids)
    assert f"{bad}-kid-5" not in started and f"{bad}-kid-6" in started


def _kids(run_id: str) -> tuple[list[h.Command], dict[str, Any]]:
    """A claimed turn's commands: two children (and their fields)."""
    kids = [child_start(ref, f"{run_id}/kid-{ref}", f"{run_id}-kid-{ref}") for ref in (5, 6)]
    fields = {"children": [c for _, c in kids], "workflow_id": run_id, "task_queue": "q"}
    return [command for command, _ in kids], fields


async def test_claimed_turns_that_start_children_write_what_the_bodies_write(
    opener: Opener, applied_claimed: list[int]
) -> None:
    """A claimed workflow task's turn (a signal woke it) that starts
    children is a ClaimedPlan: the children's rows go in before the task's
    drop-or-requeue, so ChildWorkflowStarted in the run's inbox requeues
    its task, as in the body."""
    rows = {}
    for name in ("together", "bodies"):
        store = await opener()
        if name == "bodies":
            store.applies_plans = False  # (every turn is its body)
        ids = await three_leased(store)
        make = await claimed(store, ids, _kids)
        commits = [await make(store, r, t[0]) for r, t in ids.items()]
        assert all(plan_claimed(c, NOW, encode_turn(c)) is not None for c in commits)
        applied_claimed.clear()
        results = await all_at_once(store, [store.commit_turn(c) for c in commits])
        assert results == [True] * RUNS
        assert (max(applied_claimed, default=0) >= 2) == (name == "together")
        rows[name] = await _all_rows(store)
    assert same_rows(rows["together"]) == same_rows(rows["bodies"])
    got = rows["together"]
    workflow_tasks = [t for t in got["tasks"] if t[1] == "workflow"]
    kids = [f"run-{i}-kid-{r}" for i in range(RUNS) for r in (5, 6)]
    assert sorted(t[3] for t in workflow_tasks) == sorted([*ids, *kids])
    # The parents' tasks were requeued (no lease) for their ChildWorkflowStarted.
    assert all(t[7] is None for t in workflow_tasks if t[3] in ids)


@pytest.fixture
def applied_claimed(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many ClaimedPlans each application of plans took, on either backend."""
    counts: list[int] = []
    run_plans = sqlitetx.run_plans
    apply_claimed = postgres.apply_claimed

    def sqlite_spy(conn: Any, batch: Any) -> Any:
        got = run_plans(conn, batch)
        count = sum(type(job.plan) is ClaimedPlan for job, _, _ in got or ())
        if count:
            counts.append(count)
        return got

    async def pg_spy(tx: Any, plans: Any, requeued: Any) -> None:
        counts.append(len(plans))
        await apply_claimed(tx, plans, requeued)

    monkeypatch.setattr(sqlitetx, "run_plans", sqlite_spy)
    monkeypatch.setattr(postgres, "apply_claimed", pg_spy)
    return counts
