"""Held runs, with real workers on every backend: a run's row names the
worker that keeps its instance (runs.holder), and another worker's claim
leaves the run's workflow task to that worker for HELD_GRACE past its due
time. So with several workers on one queue, a signal's turn goes to the
worker that holds the run, which needs no replay."""

from __future__ import annotations

import pytest
from e2e_helpers import fast_worker, settled

import perdure
from perdure import workflow
from perdure._store import sqlwake


@workflow.defn
async def listener(k: int) -> int:
    total = 0
    for _ in range(k):
        total += await workflow.wait_signal("add")
    return total


async def test_the_worker_that_holds_a_run_takes_its_signals(
    client: perdure.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Runs that one worker advanced wait for signals while a second worker
    serves the same queue: each signal's turn goes to the holder, which
    needs no replay; the other worker replays nothing. (A long grace: on a
    loaded machine the holder may take a while to come round.)"""
    monkeypatch.setattr(sqlwake, "HELD_GRACE", 30.0)
    async with fast_worker(client, [listener], [], identity="w-1") as first:
        handles = [await client.start(listener, 3) for _ in range(8)]
        await settled(first)
        async with fast_worker(client, [listener], [], identity="w-2") as second:
            for _ in range(3):
                for handle in handles:
                    await handle.signal("add", 1)
                await settled(first)
            assert [await h.result(timeout=30) for h in handles] == [3] * 8
            assert second.turns.turns_committed == second.turns.replays == 0
        assert first.turns.replays == len(handles)  # each run's first turn only
