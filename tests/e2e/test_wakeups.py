"""Wake-ups of cached workflows without reads. A timer's firing leases the
woken run's workflow task to the worker that fires it and reads the run's
inbox back (see TurnLease): the turn needs no claim. A claim (a signal's
turn, say) reads its runs and inboxes back with its commit. Either way a
worker whose cache holds the run's instance at that version runs the turn
without loading anything (see WorkflowTask.turn_input)."""

from __future__ import annotations

from typing import Any

import pytest
from e2e_helpers import fast_worker, settled

import perdure
from perdure import workflow


@workflow.defn
async def waits_twice() -> list[Any]:
    first = await workflow.wait_signal("go")
    return [first, await workflow.wait_signal("go")]


@workflow.defn
async def naps(n: int) -> int:
    for _ in range(n):
        await workflow.sleep(0.05)
    return n


def record_reads(client: perdure.Client, monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    store: Any = client.store
    seen: dict[str, list[str]] = {"loads": [], "claims": []}
    load_turn, claim = store.load_turn, store.claim_workflow_tasks

    async def loading(run_id: str, after_seq: int) -> Any:
        seen["loads"].append(run_id)
        return await load_turn(run_id, after_seq)

    async def claiming(*args: Any) -> Any:
        tasks = await claim(*args)
        seen["claims"] += [task.run_id for task in tasks]
        return tasks

    monkeypatch.setattr(store, "load_turn", loading)
    monkeypatch.setattr(store, "claim_workflow_tasks", claiming)
    return seen


async def test_a_timer_wakes_its_cached_workflow_without_a_claim_or_a_read(
    client: perdure.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with fast_worker(client, [naps], [], poll_interval=60.0) as worker:
        await settled(worker)
        seen = record_reads(client, monkeypatch)
        assert await client.execute(naps, 3, timeout=10) == 3
    assert seen == {"loads": [], "claims": []}


async def test_a_woken_run_no_longer_cached_is_read_and_replayed(
    client: perdure.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with fast_worker(client, [naps], [], poll_interval=60.0) as worker:
        await settled(worker)
        seen = record_reads(client, monkeypatch)
        handle = await client.start(naps, 2)
        worker.turns.evict_all()  # before its first timer fires
        replays = worker.turns.replays
        assert await handle.result(timeout=10) == 2
        assert seen["loads"] == [handle.run_id] and seen["claims"] == []
        assert worker.turns.replays == replays + 1


async def test_a_signal_wakes_its_cached_workflow_without_a_read(
    client: perdure.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with fast_worker(client, [waits_twice], [], poll_interval=60.0) as worker:
        await settled(worker)
        seen = record_reads(client, monkeypatch)
        handle = await client.start(waits_twice)
        await handle.signal("go", 1)
        await handle.signal("go", 2)
        assert await handle.result(timeout=10) == [1, 2]
    assert seen["loads"] == [] and seen["claims"]
