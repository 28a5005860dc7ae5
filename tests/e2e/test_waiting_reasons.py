"""Why a pending activity waits, as describe() tells it, on every backend:
no live worker serves its queue with it (waiting_for_worker), or one does
and it waits in the queue's backlog behind ``ahead`` due tasks, counted in
claim order (a higher priority first, then the earlier due), while the
workers are busy (in_backlog) — not "no worker" when the workers are only
busy. (Limits: tests/e2e/test_queue_limits_e2e.py, held_by_limits.)"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from e2e_helpers import fast_worker, wait_until

import perdure
from perdure import activity, workflow

gate: dict[str, asyncio.Event] = {}


@activity.defn(task_queue="pool")
async def pooled(tag: str) -> str:
    if tag == "blocker":
        gate["running"].set()
        await gate["open"].wait()
    return tag


@activity.defn(task_queue="nobody-serves-this")
async def unserved(tag: str) -> str:
    return tag


@workflow.defn
async def use_the_pool(tag: str) -> str:
    return await pooled(tag)


@workflow.defn
async def use_nobody(tag: str) -> str:
    return await unserved(tag)


@workflow.defn
async def fan_out_to_nobody(count: int) -> list[str]:
    return list(await asyncio.gather(*(unserved(f"f{i}") for i in range(count))))


@pytest.fixture(autouse=True)
def _fresh() -> None:
    gate["open"], gate["running"] = asyncio.Event(), asyncio.Event()


async def _waiting(handle: perdure.WorkflowHandle[Any]) -> Any:
    """The run's one pending activity, once describe() says why it waits."""

    async def told() -> bool:
        pending = (await handle.describe()).pending_activities
        return bool(pending) and pending[0].ahead is not None

    await wait_until(told, 10, what="describe() to say why the activity waits")
    return (await handle.describe()).pending_activities[0]


async def test_no_live_worker_serving_the_queue_is_said(client: perdure.Client) -> None:
    async with fast_worker(client, [use_nobody], []):
        handle = await client.start(use_nobody, "x")
        step = await _waiting(handle)
    assert step.waiting_for_worker and not step.in_backlog and not step.held_by_limits
    assert step.ahead == 0 and step.task_queue == "nobody-serves-this"


async def test_busy_workers_are_a_backlog_counted_in_claim_order(client: perdure.Client) -> None:
    pool = perdure.Worker(
        client, activities=[pooled], task_queue="pool", max_concurrent_activities=1
    )
    async with fast_worker(client, [use_the_pool], []), pool:
        blocker = await client.start(use_the_pool, "blocker")
        await asyncio.wait_for(gate["running"].wait(), 20)  # (the pool's one slot)
        queued = [await client.start(use_the_pool, f"q{i}") for i in range(3)]
        for handle in queued:
            await _waiting(handle)
        urgent = await client.start(use_the_pool, "urgent", priority=1)
        first = await _waiting(urgent)
        last = (await queued[-1].describe()).pending_activities[0]
        assert first.in_backlog and not first.waiting_for_worker and first.ahead == 0
        assert last.in_backlog and not last.waiting_for_worker and not last.held_by_limits
        assert last.ahead == 3  # q0, q1 (due earlier) and urgent (priority 1)
        gate["open"].set()
        results = [await h.result(timeout=20) for h in [blocker, urgent, *queued]]
    assert results == ["blocker", "urgent", "q0", "q1", "q2"]
    assert not (await queued[0].describe()).pending_activities  # (ended: nothing waits)


async def _turn_waited(handle: perdure.WorkflowHandle[Any]) -> Any:
    async def told() -> bool:
        return (await handle.describe()).ahead is not None

    await wait_until(told, 10, what="describe() to say why the run's turn waits")
    return await handle.describe()


async def test_a_turn_no_live_worker_serves_is_said(client: perdure.Client) -> None:
    handle = await client.start(use_nobody, "t")
    described = await _turn_waited(handle)
    assert described.waiting_for_worker and not described.in_backlog and described.ahead == 0


async def test_a_turn_a_busy_worker_serves_waits_in_the_backlog(client: perdure.Client) -> None:
    # A live worker, as the registry knows it, that serves the queue with this
    # type but takes nothing now (all its slots busy, say): registered by hand.
    await client.store.register_worker(
        "busy-1",
        host="elsewhere",
        pid=1,
        task_queue="default",
        workflows=["use_nobody"],
        activities=[],
        lease_timeout=30.0,
    )
    first = await client.start(use_nobody, "a")
    second = await client.start(use_nobody, "b")
    described = await _turn_waited(second)
    assert described.in_backlog and not described.waiting_for_worker
    assert described.ahead == 1  # the first run's turn, due earlier
    await client.start(use_nobody, "c", priority=1)
    assert (await second.describe()).ahead == 2  # and one of a higher priority
    assert (await _turn_waited(first)).ahead == 1
    other = await client.start(use_the_pool, "d")  # a type the worker does not register
    assert (await _turn_waited(other)).waiting_for_worker


async def test_a_wide_fan_out_counts_the_backlog_of_its_first_twenty(
    client: perdure.Client,
) -> None:
    # (Two index-range counts per activity: a fan-out of thousands counts its
    # first twenty; the others still say why they wait.)
    async with fast_worker(client, [fan_out_to_nobody], []):
        handle = await client.start(fan_out_to_nobody, 25)

        async def all_waited() -> bool:
            pending = (await handle.describe()).pending_activities
            return len(pending) == 25 and all(a.waiting_for_worker for a in pending)

        await wait_until(all_waited, 10, what="the 25 activities to wait a while")
        pending = (await handle.describe()).pending_activities
    assert [a.ahead is not None for a in pending] == [True] * 20 + [False] * 5
    assert sorted(a.ahead for a in pending[:20]) == list(range(20))  # (their due order)
