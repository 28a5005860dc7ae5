"""Activities run by a worker that serves only their task queue deliver
their outcomes through the runs' inboxes, and on SQLite those deliveries
reach the group commit as CompletePlans (sqlcomplete): the guard against
the fast path silently going unused, with the workflows' results checked,
for steps one after another and for parallel ones (several outcomes of one
run in flight at once)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from e2e_helpers import fast_worker

import perdure
from perdure import activity, workflow
from perdure._store import sqlitetx
from perdure._store.sqlcomplete import CompletePlan

RUNS = 6
STEPS = 3


@activity.defn(task_queue="far")
async def far_add(x: int, y: int) -> int:
    return x + y


@workflow.defn
async def far_steps(x: int) -> int:
    for i in range(STEPS):
        x = await far_add(x, i + 1)  # each outcome wakes the run, which waits for it alone
    return x


@workflow.defn
async def far_fan(x: int) -> int:
    return sum(await asyncio.gather(*(far_add(x, i) for i in range(STEPS))))


@pytest.fixture
def delivered(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The run id of every CompletePlan applied (by run_plans)."""
    runs: list[str] = []
    run_plans = sqlitetx.run_plans

    def spy(conn: Any, batch: Any) -> Any:
        jobs = run_plans(conn, batch)
        runs.extend(job.plan.run_id for job, _, _ in jobs or () if type(job.plan) is CompletePlan)
        return jobs

    monkeypatch.setattr(sqlitetx, "run_plans", spy)
    return runs


async def test_outcomes_from_an_activity_worker_are_applied_as_plans(
    tmp_path: Path, delivered: list[str]
) -> None:
    client = await perdure.Client.connect(f"sqlite:///{tmp_path / 'far.db'}")
    try:
        async with (
            fast_worker(client, [far_steps, far_fan], []),
            fast_worker(client, [], [far_add], task_queue="far"),
        ):
            steps = [await client.start(far_steps, 100 * i) for i in range(RUNS)]
            fans = [await client.start(far_fan, 100 * i) for i in range(RUNS)]
            results = await asyncio.gather(*(h.result(timeout=20) for h in steps + fans))
    finally:
        await client.close()
    total = sum(range(1, STEPS + 1))
    assert results[:RUNS] == [100 * i + total for i in range(RUNS)]
    assert results[RUNS:] == [STEPS * 100 * i + sum(range(STEPS)) for i in range(RUNS)]
    # Every outcome of the one-at-a-time steps went as a plan (its run had
    # no turn in flight); the parallel ones as plans or, beside their run's
    # turn in the same round, as bodies.
    by_run = {h.run_id: delivered.count(h.run_id) for h in steps}
    assert by_run == {h.run_id: STEPS for h in steps}
    assert all(delivered.count(h.run_id) <= STEPS for h in fans)
