"""A real worker's inline steps reach SQLite's group commit as plans, and
applying them together gives the workflows their right results: the guard
against the fast path silently going unused (a turn of the worker's that
plan_turn no longer recognises)."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest
from e2e_helpers import fast_worker, settled, wait_until

import perdure
from perdure import activity, workflow
from perdure._store import sqlitetx
from perdure._store.sqlite import SqliteStore
from perdure._store.sqlstart import StartPlan

RUNS = 6
GATE: list[asyncio.Event] = []
STARTED: list[int] = []


@activity.defn
async def held_step(x: int) -> int:
    STARTED.append(x)
    await GATE[0].wait()
    return x


@activity.defn
async def next_step(x: int) -> int:
    return x + 1


@workflow.defn
async def two_steps(x: int) -> int:
    first = await held_step(x)
    return await next_step(first)  # started by the inline step's commit: a plan


async def test_inline_steps_of_one_flush_are_applied_as_plans(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    applied: list[int] = []  # turns applied as plans, per flush that applied any
    starts: list[int] = []  # the same for new runs' starts
    run_plans = sqlitetx.run_plans

    def spy(conn: Any, batch: Any) -> Any:
        jobs = run_plans(conn, batch)
        kinds = [type(job.plan) is StartPlan for job, _, _ in jobs or ()]
        for found, count in ((applied, kinds.count(False)), (starts, kinds.count(True))):
            if count:
                found.append(count)
        return jobs

    monkeypatch.setattr(sqlitetx, "run_plans", spy)
    GATE[:] = [asyncio.Event()]
    STARTED.clear()
    client = await perdure.Client.connect(f"sqlite:///{tmp_path / 'plans.db'}")
    store = client.store
    assert isinstance(store, SqliteStore)
    try:
        async with fast_worker(client, [two_steps], [held_step, next_step]) as worker:
            await settled(worker)
            handles = [await client.start(two_steps, 10 * i) for i in range(RUNS)]

            async def all_running() -> bool:
                return len(STARTED) == RUNS

            await wait_until(all_running, what="every first step to run")
            # Hold the store's thread while the steps end, so that their
            # inline turns queue up for one flush.
            gate, inside = threading.Event(), threading.Event()

            async def hold() -> None:
                inside.set()
                gate.wait(10)

            held = asyncio.ensure_future(store._on_thread(hold()))

            async def holding() -> bool:
                return inside.is_set()

            await wait_until(holding, what="the store's thread to be held")
            GATE[0].set()

            async def all_queued() -> bool:
                return store._jobs.qsize() >= RUNS

            try:
                await wait_until(all_queued, what="every inline turn to queue")
            finally:
                gate.set()
                await held
            results = [await h.result(timeout=10) for h in handles]
    finally:
        await client.close()
    assert results == [10 * i + 1 for i in range(RUNS)]
    assert applied[0] == RUNS  # one flush applied every step's plan, together
    assert sum(applied) == 2 * RUNS  # and each run's closing turn came as a plan too
    assert sum(starts) == RUNS  # as each run's start (its first turn computed here)
