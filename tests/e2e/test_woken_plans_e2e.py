"""A real worker's turns woken by a signal reach SQLite's group commit as
plans: the turn that goes on (a ClaimedPlan), and the one that ends the run
(a ClosePlan for its claimed workflow task). The guard against these fast
paths silently going unused (a woken turn that plan_claimed or plan_close no
longer recognises), with the workflows' results checked."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from e2e_helpers import fast_worker, settled, wait_until

import perdure
from perdure import activity, workflow
from perdure._store import sqlitetx
from perdure._store.sqlclaimed import ClaimedPlan
from perdure._store.sqlplans import ClosePlan

RUNS = 8


@activity.defn
async def add_one(x: int) -> int:
    return x + 1


@workflow.defn
async def woken_twice(x: int) -> int:
    first = await workflow.wait_signal("go")  # woken: a claimed turn that goes on
    y = await add_one(x + first)
    second = await workflow.wait_signal("stop")  # woken: a claimed turn that ends it
    return y + second


async def test_woken_turns_are_applied_as_plans(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kinds: list[tuple[str, bool]] = []  # (plan type, has a claimed task) of each applied plan
    run_plans = sqlitetx.run_plans

    def spy(conn: Any, batch: Any) -> Any:
        jobs = run_plans(conn, batch)
        for job, _, _ in jobs or ():
            plan = job.plan
            claimed = type(plan) is ClaimedPlan or (type(plan) is ClosePlan and plan.consumed != ())
            kinds.append((type(plan).__name__, claimed))
        return jobs

    monkeypatch.setattr(sqlitetx, "run_plans", spy)
    client = await perdure.Client.connect(f"sqlite:///{tmp_path / 'woken.db'}")
    try:
        async with fast_worker(client, [woken_twice], [add_one]) as worker:
            await settled(worker)
            handles = [await client.start(woken_twice, 100 * i) for i in range(RUNS)]

            async def all_waiting_for(signal: str) -> bool:
                described = [await h.describe() for h in handles]
                return all(d.waiting_signals == [signal] for d in described)

            await wait_until(lambda: all_waiting_for("go"), what="every run to wait for go")
            await asyncio.gather(*(h.signal("go", 1) for h in handles))
            # (each run past its activity, so that "stop" wakes a turn of its own)
            await wait_until(lambda: all_waiting_for("stop"), what="every run to wait for stop")
            await asyncio.gather(*(h.signal("stop", 10) for h in handles))
            results = await asyncio.gather(*(h.result(timeout=20) for h in handles))
    finally:
        await client.close()
    assert results == [100 * i + 1 + 1 + 10 for i in range(RUNS)]
    assert kinds.count(("ClaimedPlan", True)) == RUNS  # every "go" turn
    assert kinds.count(("ClosePlan", True)) == RUNS  # every "stop" turn
