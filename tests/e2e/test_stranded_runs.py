"""The workers' safety net (perdure._worker.repairs): a run stranded with an
unread event in its inbox and no workflow task, as session 59's bug left
one (written here by hand), is found by a worker's look, given its task
back and goes on; the worker logs an error naming the run. A run that is
merely waiting is never touched."""

from __future__ import annotations

import asyncio
import logging

import pytest
from e2e_helpers import fast_worker, wait_until

import perdure
from perdure import _history as h
from perdure import workflow
from perdure._store.eventtext import event_text
from perdure._store.sqlrows import Tx


@workflow.defn
async def waits_for_go() -> int:
    return int(await workflow.wait_signal("go"))


async def test_a_stranded_run_is_given_its_task_back_and_goes_on(
    client: perdure.Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="perdure.worker")
    worker = fast_worker(client, [waits_for_go], [], lease_timeout=0.6)
    assert worker.repairs is not None
    worker.repairs.every, worker.repairs.after = 0.05, 0.0
    async with worker:
        waiting = await client.start(waits_for_go, id="waiting")
        stranded = await client.start(waits_for_go, id="stranded")
        for handle in (waiting, stranded):
            await wait_until(
                lambda handle=handle: _waits(handle), what=f"{handle.id} waiting for its signal"
            )
        looks = worker.repairs.repaired

        async def strand(tx: Tx) -> None:
            text = event_text(h.SignalReceived(name="go", payload=7))
            await tx.send(
                "INSERT INTO inbox (run_id, data, created_at) VALUES (?, ?, ?)",
                (stranded.run_id, text, 0.0),
            )

        await client.store._write(strand)  # type: ignore[attr-defined]
        assert await asyncio.wait_for(stranded.result(), timeout=20) == 7
        assert worker.repairs.repaired == looks + 1
        assert (await waiting.describe()).status == "running"  # (still waits, untouched)
    said = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(said) == 1 and stranded.run_id in said[0] and "no workflow task" in said[0]


async def _waits(handle: perdure.WorkflowHandle[int]) -> bool:
    return "go" in (await handle.describe()).waiting_signals


async def test_a_worker_of_activities_alone_does_not_look(client: perdure.Client) -> None:
    @perdure.activity.defn
    async def noop() -> None:
        return None

    assert fast_worker(client, [], [noop]).repairs is None
