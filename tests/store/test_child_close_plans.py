"""A child run's close that tells its parent is a ClosePlan with a
ParentTell (sqlplans.plan_close, sqlcomplete.tell_parent): SQLite's rounds
and PostgreSQL's groups apply it with the other plans, the parent's inbox
row written around the ref read from the child's row. The rows must be
exactly those the bodies write (sqlend.close_run), a failed child and a
parent closed behind the child's back included; and a child's end beside
its parent's own claimed turn must still reach the parent."""

from __future__ import annotations

import json
from typing import Any

import pytest
from store_helpers import Opener, child_start, claim_one, new_run, turn
from test_complete_plans import RUNS, all_at_once, close_behind, comparable
from test_sqlite_plans import _all_rows, claimed_commit

from perdure import _history as h
from perdure._store import postgres, sqlitetx
from perdure._store.base import WORK, TurnCommit, closed_topic
from perdure._store.sqlcomplete import ParentTell
from perdure._store.sqlite import SqliteStore
from perdure._store.sqlplans import ClosePlan, plan_close
from perdure._store.sqlstore import SqlStore
from perdure._store.sqlturn import encode_turn

KIDS = "kids"  # the children's queue (the parents' is "q")
FAILED = {"type": "ValueError", "message": "no", "traceback": "", "details": None}


@pytest.fixture
def told(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The parents told of a child's end by each application of plans, on
    either backend."""
    calls: list[list[str]] = []
    run_plans = sqlitetx.run_plans
    apply_deliveries = postgres.apply_deliveries

    def sqlite_spy(conn: Any, batch: Any) -> Any:
        got = run_plans(conn, batch)
        plans = [job.plan for job, _, _ in got or ()]
        tells = [p.tell for p in plans if type(p) is ClosePlan and p.tell is not None]
        if tells:
            calls.append([t.parent_run_id for t in tells])
        return got

    async def pg_spy(tx: Any, completes: Any, tells: list[ParentTell]) -> None:
        if tells:
            calls.append([t.parent_run_id for t in tells])
        await apply_deliveries(tx, completes, tells)

    monkeypatch.setattr(sqlitetx, "run_plans", sqlite_spy)
    monkeypatch.setattr(postgres, "apply_deliveries", pg_spy)
    return calls


async def families(store: SqlStore, runs: int = RUNS) -> None:
    """``runs`` parents "parent-i", each with one child "child-i" (its ref 1,
    queue KIDS), and each parent waiting for its child: the turn that took
    in ChildWorkflowStarted committed, so the parent has no workflow task."""
    for i in range(runs):
        parent, child = f"parent-{i}", f"child-{i}"
        await store.create_run(new_run(wid=parent, run_id=parent), "fail")
        task = await claim_one(store, parent)
        start, new = child_start(1, child, child)
        assert await store.commit_turn(await turn(store, task, [start], children=[new]))
        task = await claim_one(store, parent)
        assert await store.commit_turn(await turn(store, task))


async def child_ends(store: SqlStore, runs: int = RUNS, failing: int = -1) -> list[TurnCommit]:
    """Each child's first turn, claimed here, which ends it: completed with
    a result, but the child at ``failing``, which fails."""
    claimed = await store.claim_workflow_tasks([KIDS], "test", 30, runs)
    tasks = {task.run_id: task for task in claimed}
    commits = []
    for i in range(runs):
        task = tasks[f"child-{i}"]
        if i == failing % runs:
            commit = await turn(
                store, task, [h.FailWorkflow(failure=FAILED)], close_status="failed", failure=FAILED
            )
        else:
            result = {"child": i, "text": 'a "quoted" \\ value, "ref":-7'}
            commit = await turn(
                store, task, [h.CompleteWorkflow(result=result)], close_status="completed"
            )
            commit.result = result
        commit.has_children = False
        commit.parent_run_id = f"parent-{i}"
        commits.append(commit)
    return commits


def test_a_childs_end_is_planned_with_its_parent_named() -> None:
    """A closing turn with a parent and no child gets a ClosePlan that
    tells the parent; not if the worker did not name the parent, nor if the
    run started children (their close policies need the body)."""

    def commit(**fields: Any) -> TurnCommit:
        return claimed_commit(consumed_inbox=[], close_status="completed", **fields)

    def plan(c: TurnCommit) -> ClosePlan | None:
        return plan_close(c, 5.0, encode_turn(c), None)

    child = plan(commit(has_children=False, parent_run_id="p", result={"x": 1}))
    assert child is not None and child.tell is not None
    assert child.tell.parent_run_id == "p"
    assert child.topics() == {closed_topic("r"), WORK}  # (the parent has work now)
    assert plan(commit(has_children=False)) is None  # (relatives, but which?)
    assert plan(commit(has_children=True, parent_run_id="p")) is None
    lone = plan(commit(has_relatives=False))
    assert lone is not None and lone.tell is None and lone.topics() == {closed_topic("r")}


async def test_childrens_ends_write_exactly_what_the_bodies_write(
    opener: Opener, told: list[list[str]]
) -> None:
    rows = {}
    for name in ("together", "bodies"):
        store = await opener()
        if name == "bodies":
            store.applies_close_plans = False  # (every close is its body)
        await families(store)
        # (The last parents: on PostgreSQL they go in the group.)
        await close_behind(store, f"parent-{RUNS - 2}")
        commits = await child_ends(store, failing=-1)
        told.clear()
        results = await all_at_once(store, [store.commit_turn(c) for c in commits])
        assert results == [True] * RUNS
        if name == "together":
            alone = 0 if isinstance(store, SqliteStore) else RUNS - 3
            assert [sorted(t) for t in told] == [[f"parent-{i}" for i in range(alone, RUNS)]]
        else:
            assert told == []
        rows[name] = await _all_rows(store)
    assert comparable(rows["together"]) == comparable(rows["bodies"])
    # Every open parent got its child's end and a workflow task; the closed one nothing.
    got = rows["together"]
    told_runs = [f"parent-{i}" for i in range(RUNS) if i != RUNS - 2]
    assert sorted(r[1] for r in got["inbox"]) == sorted(told_runs)
    assert sorted(t[3] for t in got["tasks"] if t[1] == "workflow") == sorted(told_runs)
    ends = {r[1]: h.event_from_dict(json.loads(r[2])) for r in got["inbox"]}
    assert ends["parent-0"] == h.ChildWorkflowCompleted(
        ref=1, result={"child": 0, "text": 'a "quoted" \\ value, "ref":-7'}
    )
    assert ends[f"parent-{RUNS - 1}"] == h.ChildWorkflowFailed(
        ref=1, status="failed", failure=FAILED
    )


@pytest.mark.parametrize("first", ["parent", "child"])
async def test_a_childs_end_beside_its_parents_turn_still_reaches_the_parent(
    opener: Opener, told: list[list[str]], first: str
) -> None:
    """A child ends while its parent, woken by a signal, commits a turn with
    a ClaimedPlan in the same round or group: both are applied as plans,
    and the parent's inbox holds the child's end with a workflow task
    queued for it, as if the two had committed one after the other."""
    store = await opener()
    await families(store)
    (end,) = [c for c in await child_ends(store, failing=0) if c.run_id == f"child-{RUNS - 1}"]
    parents = [f"parent-{i}" for i in range(RUNS)]
    tasks = {}
    for parent in parents:
        await store.deliver(parent, None, h.SignalReceived(name="go", payload=parent))
        tasks[parent] = await claim_one(store, parent)
    writes = [store.commit_turn(await turn(store, tasks[p])) for p in parents]
    writes.insert(len(writes) if first == "parent" else len(writes) - 1, store.commit_turn(end))
    told.clear()

    results = await all_at_once(store, writes)

    assert results == [True] * len(writes)
    assert told == [[parents[-1]]]  # the child's end was applied as a plan
    after = await _all_rows(store)
    # (The other children's inboxes still hold their WorkflowStarted.)
    inbox = [(r[1], h.event_from_dict(json.loads(r[2]))) for r in after["inbox"]]
    assert [row for row in inbox if row[0] in parents] == [
        (parents[-1], h.ChildWorkflowCompleted(ref=1, result=end.result))
    ]
    workflow_tasks = [t for t in after["tasks"] if t[1] == "workflow" and t[3] in parents]
    assert [(t[3], t[7], t[8]) for t in workflow_tasks] == [(parents[-1], None, None)]
