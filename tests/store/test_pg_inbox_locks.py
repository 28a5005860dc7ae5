"""The concurrency rule of sqlrows on PostgreSQL: a writer that adds to a
run's inbox locks the run's row first. A turn's commit holds that lock
while it decides that the inbox is empty and drops the run's workflow task;
a writer that did not wait for it could insert its outcome meanwhile,
having found that task still there and inserted none: the outcome stranded
in the inbox, the run waiting for it for ever (one chaos run left a
canceller so). Here another connection holds the run's row as a turn would,
and each writer must wait for it, then leave its outcome with a workflow
task to read it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pg_testdb
import psycopg
import pytest
from store_helpers import FakeClock, claim_one, new_run, schedule_charge, turn

from perdure import _history as h
from perdure._store.base import ActivityTask, NewActivity
from perdure._store.postgres import PostgresStore

Write = Callable[[PostgresStore, ActivityTask], Awaitable[Any]]

FAILURE = {"type": "ValueError", "message": "boom", "retryable": True}


async def _hand_back(store: PostgresStore, task: ActivityTask) -> Any:
    # (A paused attempt's stop, whose activity was cancelled meanwhile.)
    return await store.hand_back(task, 0.0, FAILURE)


async def _retry(store: PostgresStore, task: ActivityTask) -> Any:
    # (A failed attempt, whose activity was cancelled meanwhile.)
    return await store.retry_activity(task, FAILURE, 1.0)


async def _complete(store: PostgresStore, task: ActivityTask) -> Any:
    return await store.complete_activity(task, h.activity_completed(task.ref, 1, task.attempt, []))


async def _cancelled_attempt(store: PostgresStore) -> ActivityTask:
    """Run ``run-1``'s activity 1, claimed by a worker, then cancelled by a
    turn that waits for it to end ("wait_cancellation_completed"): the
    attempt holds it, so its end is the attempt's to write."""
    await store.create_run(new_run(wid="wf-1", run_id="run-1"), "fail")
    task = await claim_one(store, "run-1")
    queued = NewActivity(ref=1, name="charge", task_queue="q", args=[1], kwargs={}, options={})
    assert await store.commit_turn(
        await turn(store, task, [schedule_charge(1)], activities=[queued])
    )
    [attempt] = await store.claim_activity_tasks(["q"], "worker-2", 30.0, 1)
    await store.deliver("wf-1", None, h.SignalReceived(name="stop"))
    task = await claim_one(store, "run-1")
    cancel = turn(
        store,
        task,
        [h.CancelActivity(ref=1, wait=True)],
        cancelled_activities=[1],
        cancel_waits=[1],
        task_queue="q",
    )
    assert await store.commit_turn(await cancel)
    assert (await store.pending_work("run-1")).workflow_task is None
    return attempt


async def _waiting_for_a_lock(url: str) -> bool:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        cur = await conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
        )
        row = await cur.fetchone()
        return bool(row and row[0])


@pytest.mark.parametrize(
    "write", [_hand_back, _retry, _complete], ids=["hand_back", "retry", "complete"]
)
async def test_an_attempt_of_a_cancelled_activity_waits_for_its_runs_turn(
    pg_database: pg_testdb.TestDatabase, write: Write
) -> None:
    url = pg_database.fresh_url()
    store = PostgresStore(url, clock=FakeClock())
    await store.open()
    try:
        attempt = await _cancelled_attempt(store)
        async with await psycopg.AsyncConnection.connect(url) as turn_in_flight:
            await turn_in_flight.execute("SELECT 1 FROM runs WHERE run_id = 'run-1' FOR UPDATE")
            writing = asyncio.ensure_future(write(store, attempt))
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 10.0
            while not writing.done() and not await _waiting_for_a_lock(url):
                assert loop.time() < deadline, "the write neither ended nor waited for a lock"
                await asyncio.sleep(0.01)
            assert not writing.done(), (
                "the attempt's end was written into the run's inbox without waiting for the "
                "run's row, which a turn of the run held"
            )
            await turn_in_flight.rollback()
        await writing
        # Its outcome is in the inbox, and a workflow task will read it.
        task = await claim_one(store, "run-1")
        [(_, ended)] = (await store.load_turn(task.run_id, 0)).inbox
        assert ended.ref == 1
        if write is not _complete:
            assert isinstance(ended, h.ActivityFailed)
            assert ended.failure["type"] == "CancelledError"
    finally:
        await store.close()
