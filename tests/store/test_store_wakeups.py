"""Wake-ups: who a commit wakes, on every backend.

Workers listen for WORK; result waiters listen for the end of one run. A turn
that only hands an activity to its own worker wakes nobody (a sequential
workflow must not pay for polls it does not need); a run's end wakes the waiters
of that run only; and a commit made through another connection (another
process) wakes this one's listeners: NOTIFY on PostgreSQL, ``PRAGMA
data_version`` on SQLite.
"""

from __future__ import annotations

import asyncio
from typing import Any

from store_helpers import FakeClock, new_run, turn

from perdure import _history as h
from perdure._store.base import WORK, NewActivity, Store, closed_topic


class Ears:
    """Counts the wake-ups of a WORK listener and of one run's end listeners."""

    def __init__(self, store: Store, run_id: str) -> None:
        self.loop = asyncio.get_running_loop()
        self.work = 0
        self.closed = 0
        self.worked = asyncio.Event()  # set by the WORK listener only
        store.add_listener(self._on_work, (WORK,))
        store.add_run_listener(run_id, self._on_closed)

    def _on_work(self) -> None:
        self.work += 1
        self.loop.call_soon_threadsafe(self.worked.set)

    def _on_closed(self) -> None:
        self.closed += 1


async def started(store: Store, run_id: str = "run-1") -> Any:
    await store.create_run(new_run(wid=f"wf-{run_id}", run_id=run_id), "fail")
    [task] = await store.claim_workflow_tasks(["q"], "w", 30, 1)
    return task


async def test_a_turn_that_keeps_its_activity_inline_wakes_nobody(open_store: Any) -> None:
    store = await open_store()
    task = await started(store)
    ears = Ears(store, "run-1")
    inline = NewActivity(1, "charge", "q", [], {}, {"retry": {}}, ("w", "token-1", 30.0))
    assert await store.commit_turn(await turn(store, task, activities=[inline]))
    assert (ears.work, ears.closed) == (0, 0)


async def test_a_turn_with_new_work_for_others_wakes_workers(
    open_store: Any, clock: FakeClock
) -> None:
    store = await open_store()
    task = await started(store)
    ears = Ears(store, "run-1")
    queued = NewActivity(1, "charge", "q", [], {}, {"retry": {}})
    commit = await turn(store, task, activities=[queued], timers=[(2, clock.now + 60)])
    assert await store.commit_turn(commit)
    assert (ears.work, ears.closed) == (1, 0)


async def test_a_run_end_wakes_the_waiters_of_that_run_only(open_store: Any) -> None:
    store = await open_store()
    other = await started(store, "run-2")
    task = await started(store, "run-1")
    mine, theirs = Ears(store, "run-1"), Ears(store, "run-2")
    done = h.CompleteWorkflow(result=1)
    commit = await turn(store, task, [done], close_status="completed", result=1)
    assert await store.commit_turn(commit)
    assert mine.closed == 1 and theirs.closed == 0
    assert mine.work == 0  # a root run's end gives no worker anything to do
    await store.terminate("wf-run-2", None, "enough")
    assert theirs.closed == 1 and mine.closed == 1
    assert other.run_id == "run-2"


async def test_topics_name_the_run_that_ended(open_store: Any) -> None:
    store = await open_store()
    calls: list[str] = []
    store.add_run_listener("run-9", lambda: calls.append("run-9"))
    store.add_run_listener("run-8", lambda: calls.append("run-8"))
    store.notify(closed_topic("run-9"))
    assert calls == ["run-9"]
    store.notify()  # from another process: any run may have ended
    assert sorted(calls) == ["run-8", "run-9", "run-9"]


async def test_a_commit_through_another_connection_wakes_this_one(open_store: Any) -> None:
    here, elsewhere = await open_store(), await open_store()
    await started(here)
    ears = Ears(here, "run-1")
    listener = getattr(here, "_listener", None)
    if listener is not None:  # PostgreSQL: wait until LISTEN is in place
        await asyncio.wait_for(listener.connected.wait(), 5)
    await elsewhere.deliver("wf-run-1", None, h.SignalReceived(name="go"))
    # On SQLite the wake-up comes from the store's thread, which calls the run
    # listeners before the WORK listeners: wait for the one this test is about.
    await asyncio.wait_for(ears.worked.wait(), 5)
    assert ears.work >= 1


async def test_a_run_end_hands_its_record_to_the_waiters_of_this_process(open_store: Any) -> None:
    store = await open_store()
    unheard = await started(store, "run-2")
    task = await started(store, "run-1")
    ears = Ears(store, "run-1")
    done = h.CompleteWorkflow(result=5)
    assert await store.commit_turn(
        await turn(store, task, [done], close_status="completed", result=5)
    )
    # The commit read the ended run back: a waiter needs no read of its own.
    ended = store.ended_here("run-1")
    assert ended is not None and (ended.status, ended.result) == ("completed", 5)
    assert ended == await store.get_run("wf-run-1", "run-1")
    # Kept only while someone here listens for that run.
    store.remove_run_listener("run-1", ears._on_closed)
    assert store.ended_here("run-1") is None
    assert await store.commit_turn(
        await turn(store, unheard, [done], close_status="completed", result=5)
    )
    assert store.ended_here("run-2") is None
