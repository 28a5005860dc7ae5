"""The concurrency rule of sqlrows on PostgreSQL: a writer that adds to a
run's inbox locks the run's row first. A turn's commit holds that lock
while it decides that the inbox is empty and drops the run's workflow task;
a writer that did not wait for it could insert its event meanwhile, having
found that task still there and inserted none: the event stranded in the
inbox, the run waiting for it for ever (session 59's chaos run left a
canceller so: an attempt of its cancelled activity, stopped by a pause,
wrote the cancelled outcome without the lock).

Here another connection holds the run's row as a turn in flight would, and
each writer of an inbox must wait for it, then leave its event there with
a workflow task to read it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pg_testdb
import psycopg
import pytest
from store_helpers import FakeClock, claim_one, new_run, schedule_charge, turn

from perdure import _history as h
from perdure._store.base import ActivityTask, NewActivity
from perdure._store.postgres import PostgresStore

FAILURE = {"type": "ValueError", "message": "boom", "retryable": True}
TIMER_DUE = 10.0


@dataclass
class Scene:
    store: PostgresStore
    attempt: ActivityTask  # run-1's activity 1, held by an attempt, cancelled by its run


Write = Callable[[Scene], Awaitable[Any]]


# Each writer of an inbox, and the event it leaves there.
WRITERS: dict[str, tuple[Write, type[h.Event]]] = {
    # An attempt of the cancelled activity stopped by a pause (or by a
    # worker that cannot run it), then one that failed: both end it.
    "hand_back": (lambda s: s.store.hand_back(s.attempt, 0.0, FAILURE), h.ActivityFailed),
    "retry_activity": (lambda s: s.store.retry_activity(s.attempt, FAILURE, 1.0), h.ActivityFailed),
    "complete_activity": (
        lambda s: s.store.complete_activity(s.attempt, h.activity_completed(1, "ok", 1, [])),
        h.ActivityCompleted,
    ),
    "end_activity": (  # (an operator's, by the activity's id)
        lambda s: s.store.end_activity(
            "run-1", 1, lambda state, now: h.ActivityFailed(ref=1, failure=FAILURE, attempt=1)
        ),
        h.ActivityFailed,
    ),
    "deliver": (
        lambda s: s.store.deliver("wf-1", None, h.SignalReceived(name="go")),
        h.SignalReceived,
    ),
    "signal_with_start": (
        lambda s: s.store.signal_with_start(
            new_run(wid="wf-1", run_id="run-2"), h.SignalReceived(name="go")
        ),
        h.SignalReceived,
    ),
    "set_priority": (lambda s: s.store.set_priority("wf-1", None, 1), h.PriorityChanged),
    "set_fairness_key": (
        lambda s: s.store.set_fairness_key("wf-1", None, "acme"),
        h.FairnessKeyChanged,
    ),
    "fire_due_timers": (lambda s: s.store.fire_due_timers(10), h.TimerFired),
}


async def _scene(store: PostgresStore, clock: FakeClock) -> Scene:
    """``run-1``, whose activity 1 a worker claimed, then a turn cancelled,
    waiting for it to end ("wait_cancellation_completed"), and started a
    timer; the run has no workflow task."""
    await store.create_run(new_run(wid="wf-1", run_id="run-1"), "fail")
    task = await claim_one(store, "run-1")
    queued = NewActivity(ref=1, name="charge", task_queue="q", args=[1], kwargs={}, options={})
    assert await store.commit_turn(
        await turn(store, task, [schedule_charge(1)], activities=[queued])
    )
    [attempt] = await store.claim_activity_tasks(["q"], "worker-2", 30.0, 1)
    await store.deliver("wf-1", None, h.SignalReceived(name="stop"))
    task = await claim_one(store, "run-1")
    due = clock() + TIMER_DUE
    cancel = await turn(
        store,
        task,
        [h.CancelActivity(ref=1, wait=True), h.StartTimer(ref=2, fire_at=due)],
        cancelled_activities=[1],
        cancel_waits=[1],
        timers=[(2, due)],
        task_queue="q",
    )
    assert await store.commit_turn(cancel)
    assert (await store.pending_work("run-1")).workflow_task is None
    clock.advance(TIMER_DUE + 1)  # (the timer is due: only the firer writes it)
    return Scene(store, attempt)


async def _waiting_for_a_lock(url: str) -> bool:
    """Whether a connection to the test's database waits for a lock."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        cur = await conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
        )
        row = await cur.fetchone()
        return bool(row and row[0])


@pytest.mark.parametrize("name", sorted(WRITERS))
async def test_a_writer_of_an_inbox_waits_for_the_runs_turn_in_flight(
    pg_database: pg_testdb.TestDatabase, name: str
) -> None:
    write, leaves = WRITERS[name]
    url = pg_database.fresh_url()
    clock = FakeClock()
    store = PostgresStore(url, clock=clock)
    await store.open()
    try:
        scene = await _scene(store, clock)
        async with await psycopg.AsyncConnection.connect(url) as turn_in_flight:
            await turn_in_flight.execute("SELECT 1 FROM runs WHERE run_id = 'run-1' FOR UPDATE")
            writing = asyncio.ensure_future(write(scene))
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 10.0
            while not writing.done() and not await _waiting_for_a_lock(url):
                assert loop.time() < deadline, "the write neither ended nor waited for a lock"
                await asyncio.sleep(0.01)
            assert not writing.done(), (
                f"{name} wrote the run's inbox without waiting for the run's row, which a "
                f"turn of the run held"
            )
            await turn_in_flight.rollback()
        await writing
        # Its event is in the inbox, and a workflow task will read it.
        task = await claim_one(store, "run-1")
        inbox = [e for _, e in (await store.load_turn(task.run_id, 0)).inbox]
        assert [type(e) for e in inbox] == [leaves], inbox
        if isinstance(inbox[0], h.ActivityFailed) and name != "end_activity":
            assert inbox[0].failure["type"] == "CancelledError"  # (what the attempt's end is)
    finally:
        await store.close()
