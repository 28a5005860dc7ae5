"""A child run's end, which tells its parent, reaches SQLite's group commit
as a ClosePlan with a ParentTell (sqlplans.plan_close): the guard against
the fast path silently going unused (the worker must name the parent),
with the parents' results checked: each sums its children's, failed ones
included."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from e2e_helpers import fast_worker

import perdure
from perdure import activity, workflow
from perdure._store import sqlitetx
from perdure._store.sqlclaimed import ClaimedPlan
from perdure._store.sqlplans import ClosePlan, Plan

PARENTS = 4
CHILDREN = 5


@activity.defn
async def double(x: int) -> int:
    return 2 * x


@workflow.defn
async def child(x: int) -> int:
    doubled = await double(x)
    if x % CHILDREN == CHILDREN - 1:
        raise ValueError(f"child {x} fails")
    return doubled


@workflow.defn
async def parent(base: int) -> int:
    calls = [workflow.execute_child(child, base + i) for i in range(CHILDREN)]
    results = await asyncio.gather(*calls, return_exceptions=True)
    return sum(r for r in results if isinstance(r, int)) + 1000 * sum(
        1 for r in results if isinstance(r, perdure.ChildWorkflowError)
    )


@pytest.fixture
def told(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The run id of every ClosePlan applied that told a parent (by run_plans)."""
    runs: list[str] = []
    run_plans = sqlitetx.run_plans

    def spy(conn: Any, batch: Any) -> Any:
        jobs = run_plans(conn, batch)
        for job, _, _ in jobs or ():
            if type(job.plan) is ClosePlan and job.plan.tell is not None:
                runs.append(job.plan.run_id)
        return jobs

    monkeypatch.setattr(sqlitetx, "run_plans", spy)
    return runs


async def test_childrens_ends_are_applied_as_plans(tmp_path: Path, told: list[str]) -> None:
    client = await perdure.Client.connect(f"sqlite:///{tmp_path / 'kids.db'}")
    try:
        async with fast_worker(client, [parent, child], [double]):
            handles = [await client.start(parent, CHILDREN * i) for i in range(PARENTS)]
            results = await asyncio.gather(*(h.result(timeout=20) for h in handles))
            runs = await client.list(workflow="child")
    finally:
        await client.close()
    expected = [
        sum(2 * (CHILDREN * i + j) for j in range(CHILDREN - 1)) + 1000 for i in range(PARENTS)
    ]
    assert results == expected
    assert len(runs) == PARENTS * CHILDREN
    # Every child's end went as a plan that told its parent, the failed ones too.
    assert sorted(told) == sorted(r.run_id for r in runs)


@workflow.defn
async def step_then_children(base: int) -> int:
    start = await double(base)  # an inline step: the next turn is its continuation
    calls = [workflow.execute_child(child, start + i) for i in range(CHILDREN - 1)]
    return sum(await asyncio.gather(*calls))


@workflow.defn
async def signal_then_children(base: int) -> int:
    start = await workflow.wait_signal("go")  # a claimed turn takes the signal in
    calls = [workflow.execute_child(child, start + i) for i in range(CHILDREN - 1)]
    return sum(await asyncio.gather(*calls))


# How each parent gets to the turn that starts its children, and the plan
# that turn must come as: an inline step's continuation, or a claimed turn.
STARTERS = {
    "after a step": (step_then_children, Plan),
    "after a signal": (signal_then_children, ClaimedPlan),
}


@pytest.mark.parametrize("starter", list(STARTERS))
async def test_children_started_by_a_later_turn_are_applied_as_a_plan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, starter: str
) -> None:
    fn, kind = STARTERS[starter]
    parents: list[str] = []
    run_plans = sqlitetx.run_plans

    def spy(conn: Any, batch: Any) -> Any:
        jobs = run_plans(conn, batch)
        for job, _, _ in jobs or ():
            # (Children whose first turns come along are first_turns: see
            # test_child_first_turns.py.)
            if type(job.plan) is kind and (job.plan.children or job.plan.first_turns):
                parents.append(job.plan.run_id)
        return jobs

    monkeypatch.setattr(sqlitetx, "run_plans", spy)
    client = await perdure.Client.connect(f"sqlite:///{tmp_path / 'later.db'}")
    try:
        async with fast_worker(client, [fn, child], [double]):
            handles = [await client.start(fn, 10 * i) for i in range(PARENTS)]
            for handle in handles:
                if fn is signal_then_children:
                    await handle.signal("go", 2 * 10 * PARENTS)  # (any base: the sum is checked)
            results = await asyncio.gather(*(h.result(timeout=20) for h in handles))
    finally:
        await client.close()
    # Each child doubles its parent's start + i (2 * base after the step;
    # the signal's value after it); none fails: i stays below CHILDREN - 1.
    starts = [2 * 10 * p if fn is step_then_children else 2 * 10 * PARENTS for p in range(PARENTS)]
    assert results == [sum(2 * (start + i) for i in range(CHILDREN - 1)) for start in starts]
    assert sorted(parents) == sorted(h.run_id for h in handles)
