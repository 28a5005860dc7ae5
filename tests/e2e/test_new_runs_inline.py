"""A run started in the process of a worker that serves its queue: the worker
computes its first turn before the start commits, and the start's commit
writes the run and that turn together (see RunTaker.prepare); where it cannot,
the first workflow task is leased to the worker in that commit, without a
poll (see Store.take_new_runs); with no free slot, the ordinary poll takes it.
A computed first turn holds its slot only while it is computed."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from e2e_helpers import fast_worker, record_claims, settled

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
        await settled(worker)
        handle = await client.start(twice, 21)
        # No await since start returned: only the start's commit can have handed
        # the turn over (a poll needs the event loop to run first).
        assert not worker.idle
        assert await handle.result(timeout=10) == 42


async def test_a_burst_beyond_the_turn_slots_has_every_first_turn_with_its_start(
    client: perdure.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A first turn computed at its start holds its slot only while it is
    # computed: six starts at once with one slot need no poll for their turns.
    claimed = record_claims(client, monkeypatch, "claim_workflow_tasks")
    async with fast_worker(client, [twice], [double], max_concurrent_workflow_tasks=1):
        handles = await asyncio.gather(*(client.start(twice, i) for i in range(6)))
        results = await asyncio.gather(*(h.result(timeout=10) for h in handles))
        assert results == [0, 2, 4, 6, 8, 10]
    assert claimed == []


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
        await settled(worker)
        handle = await client.start(twice, 4)
        assert await handle.result(timeout=10) == 8
    assert loads == []


@workflow.defn
async def draws() -> list[Any]:
    # Everything a first turn may take from the engine rather than compute:
    # the seeded random numbers and ids, the workflow's time, its info.
    first = [
        workflow.random().random(),
        str(workflow.uuid4()),
        workflow.now().timestamp(),
        workflow.info().run_id,
    ]
    workflow.set_state("first", first)
    got = await workflow.wait_signal("go")
    return [first, got]


def count_writes(client: perdure.Client, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    store: Any = client.store
    write, write_planned = store._write, store._write_planned
    count = [0]

    async def counted(body: Any) -> Any:
        count[0] += 1
        return await write(body)

    async def counted_turn(body: Any, plan: Any) -> Any:
        # A planned write: SQLite's own path, or (elsewhere) _write, counted there.
        before = count[0]
        try:
            return await write_planned(body, plan)
        finally:
            count[0] = max(count[0], before + 1)

    monkeypatch.setattr(store, "_write", counted)
    monkeypatch.setattr(store, "_write_planned", counted_turn)  # (a turn, a start: plans)
    return count


GATE: list[asyncio.Event] = []


@activity.defn
async def gated(x: int) -> int:
    await GATE[0].wait()
    return 2 * x


@workflow.defn
async def gated_twice(x: int) -> int:
    return await gated(x)


async def test_a_run_started_here_writes_its_first_turn_with_its_start(
    client: perdure.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    GATE[:] = [asyncio.Event()]
    async with fast_worker(client, [gated_twice], [gated], poll_interval=60.0) as worker:
        await settled(worker)
        writes = count_writes(client, monkeypatch)
        handle = await client.start(gated_twice, 5)
        assert writes == [1]
        # The start's one commit holds the first turn, and the activity it
        # scheduled is already running here.
        kinds = [e["type"] for e in await handle.history()]
        assert kinds == ["WorkflowStarted", "ActivityScheduled"]
        assert not worker.idle and writes == [1]
        GATE[0].set()
        assert await handle.result(timeout=10) == 10
        assert writes == [2]  # the step's commit ended the run


async def test_a_first_turn_computed_before_its_start_replays_the_same(
    client: perdure.Client,
) -> None:
    async with fast_worker(client, [draws], [], poll_interval=0.05) as worker:
        await settled(worker)
        handle = await client.start(draws)
        # Written by the start's commit: no await ran the worker in between.
        first = await handle.state("first")
        assert first is not None and first[3] == handle.run_id
        worker.turns.evict_all()  # the signal's turn replays the history
        replays = worker.turns.replays
        await handle.signal("go", "now")
        assert await handle.result(timeout=10) == [first, "now"]
        assert worker.turns.replays == replays + 1


async def test_a_first_turn_that_cannot_be_computed_here_goes_the_ordinary_way(
    client: perdure.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with fast_worker(client, [twice], [double], poll_interval=60.0) as worker:
        await settled(worker)
        monkeypatch.setattr(worker.turns, "first_turn", lambda first: None)
        writes = count_writes(client, monkeypatch)
        handle = await client.start(twice, 3)
        assert await handle.result(timeout=10) == 6
        assert writes == [3]  # the start, the first turn, the step
