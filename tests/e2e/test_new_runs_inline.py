"""A run started in the process of a worker that serves its queue: the worker
has its first turn at once, leased in the start's own commit, without a poll
(see Store.take_new_runs); with no free slot, the ordinary poll takes it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from e2e_helpers import fast_worker, wait_until

import perdure
from perdure import activity, workflow


@activity.defn
async def double(x: int) -> int:
    return 2 * x


@workflow.defn
async def twice(x: int) -> int:
    return await double(x)


async def test_the_worker_has_the_first_turn_when_start_returns(client: perdure.Client) -> None:
    async with fast_worker(client, [twice], [double], poll_interval=60.0) as worker:

        async def settled() -> bool:
            return worker.idle

        await wait_until(settled, what="the worker to settle")
        handle = await client.start(twice, 21)
        # No await since start returned: only the start's commit can have handed
        # the turn over (a poll needs the event loop to run first).
        assert not worker.idle
        assert await handle.result(timeout=10) == 42


async def test_runs_beyond_the_free_slots_are_polled_and_all_finish(
    client: perdure.Client,
) -> None:
    async with fast_worker(client, [twice], [double], max_concurrent_workflow_tasks=1):
        handles = await asyncio.gather(*(client.start(twice, i) for i in range(6)))
        results = await asyncio.gather(*(h.result(timeout=10) for h in handles))
        assert results == [0, 2, 4, 6, 8, 10]


async def test_a_run_started_here_has_its_first_turn_without_a_read(
    client: perdure.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The start's commit hands the worker what it wrote (the run, WorkflowStarted),
    # and each inline step continues from the cached instance: no turn loads.
    loads: list[str] = []
    load_turn = client.store.load_turn

    async def counted(run_id: str, after_seq: int) -> Any:
        loads.append(run_id)
        return await load_turn(run_id, after_seq)

    monkeypatch.setattr(client.store, "load_turn", counted)
    async with fast_worker(client, [twice], [double], poll_interval=60.0) as worker:

        async def settled() -> bool:
            return worker.idle

        await wait_until(settled, what="the worker to settle")
        handle = await client.start(twice, 4)
        assert await handle.result(timeout=10) == 8
    assert loads == []
