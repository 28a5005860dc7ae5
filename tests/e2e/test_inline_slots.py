"""Inline activities at full load, and a worker's start.

An inline attempt that ends hands its slot to the activity its workflow
schedules next (Worker._deliver): with every slot busy, that activity still
runs at once, in the slot of the one that ended, instead of going to the
queue for a later poll; and never more activities run at once than the
worker allows. ``async with Worker(...)`` returns once the worker serves, so
the block's first start already gets its first turn from the start's commit.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from e2e_helpers import fast_worker, record_claims

import perdure
from perdure import activity, workflow

running: list[int] = [0, 0]  # [now, most at once]


@activity.defn
async def tick(i: int) -> int:
    running[0] += 1
    running[1] = max(running[1], running[0])
    try:
        await asyncio.sleep(0)  # let the other runs' work interleave
        return i
    finally:
        running[0] -= 1


@workflow.defn
async def ticks(k: int) -> int:
    total = 0
    for i in range(k):
        total += await tick(i)
    return total


@pytest.mark.parametrize("slots", [1, 3])
async def test_a_finishing_attempt_hands_its_slot_to_the_next_step(
    client: perdure.Client, monkeypatch: pytest.MonkeyPatch, slots: int
) -> None:
    running[:] = [0, 0]
    claimed = record_claims(client, monkeypatch, "claim_activity_tasks")
    runs = 2 * slots
    async with fast_worker(client, [ticks], [tick], max_concurrent_activities=slots):
        handles = await asyncio.gather(*(client.start(ticks, 5) for _ in range(runs)))
        results = await asyncio.gather(*(h.result(timeout=20) for h in handles))
    assert results == [10] * runs
    assert running[1] <= slots  # the limit holds
    # Once a run had a slot, it kept it from step to step: only first steps
    # waited in the queue (the runs beyond the slots, and any whose start met
    # the worker's first poll holding the slots). Before, at full load every
    # step after the first went to the queue.
    assert claimed, "the runs beyond the slots must have queued"
    assert [task.ref for task in claimed] == [1] * len(claimed)


async def test_the_first_start_in_the_block_is_taken_by_its_commit(
    client: perdure.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    claimed = record_claims(client, monkeypatch, "claim_workflow_tasks")
    async with fast_worker(client, [ticks], [tick], poll_interval=60.0):
        # No settling first: the worker serves once the block begins.
        handle = await client.start(ticks, 3)
        assert await handle.result(timeout=10) == 3
    assert claimed == []  # its first turn came with the start, not from a poll


async def test_a_worker_that_cannot_start_raises_from_the_block(
    client: perdure.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("no registry today")

    worker = fast_worker(client, [ticks], [tick])
    monkeypatch.setattr(worker._registration, "register", broken)
    entered = False
    with pytest.raises(RuntimeError, match="no registry today"):
        async with worker:
            entered = True
    assert not entered  # the worker never served: the block did not run


async def test_a_start_cancelled_before_the_worker_serves_stops_it(
    client: perdure.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = asyncio.Event()
    registering = asyncio.Event()

    async def slow_register(*args: Any, **kwargs: Any) -> None:
        registering.set()
        await gate.wait()

    worker = fast_worker(client, [ticks], [tick])
    monkeypatch.setattr(worker._registration, "register", slow_register)

    async def enter() -> None:
        async with worker:
            pytest.fail("the block must not run")

    entering = asyncio.ensure_future(enter())
    await asyncio.wait_for(registering.wait(), 10)
    entering.cancel()
    gate.set()  # registering ends, and the stopped worker winds down
    with pytest.raises(asyncio.CancelledError):
        await entering
    assert worker._background is not None and worker._background.done()


@workflow.defn
async def two_at_once() -> int:
    first = await tick(0)
    a, b = await asyncio.gather(tick(1), tick(2))
    return first + a + b


async def test_a_turn_that_fails_midway_gives_its_reserved_slots_back(
    client: perdure.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The turn after the first step (an inline continuation) reserves a slot
    # for its first activity to run here; building it raises (once). The
    # turn is dropped, and so is what it had reserved: no slot stays
    # promised to an activity that nobody will run.
    from perdure._worker import commands

    real = commands.NewActivity
    built: list[int] = []

    def second_fails(*args: Any) -> Any:
        built.append(1)
        if len(built) == 2:
            raise RuntimeError("the second activity cannot be built")
        return real(*args)

    monkeypatch.setattr(commands, "NewActivity", second_fails)
    async with fast_worker(client, [two_at_once], [tick], max_concurrent_activities=2) as worker:
        assert await client.execute(two_at_once, timeout=20) == 3
    assert len(built) > 2  # the turn failed once, then was computed again
    # (Checked once the worker stopped: a poll reserves slots while it claims.)
    assert worker._inline_reserved == 0
