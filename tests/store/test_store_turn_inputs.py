"""Leased workflow tasks that come with their turn's input
(WorkflowTask.turn_input), on every backend: claims, and timer firings that
lease the turns they wake (Store.fire_due_timers with a TurnLease).

The worker that fires a timer takes the workflow task of the run it woke in
the firing's own commit, with the run and its inbox read back: it runs that
turn at once, without a claim, and without a read if it holds the run's
instance. What it may not take (another queue, a task leased elsewhere or
backing off, beyond its limit) goes the ordinary way.
"""

from __future__ import annotations

from typing import Any

from store_helpers import FakeClock, claim_one, new_run, turn

from perdure import _history as h
from perdure._store.base import Store, TurnLease


async def sleeping(store: Store, run_id: str, queue: str = "q", at: float = 10.0) -> None:
    """A run whose first turn started a timer (ref 1) due ``at`` from now."""
    await store.create_run(new_run(wid=f"wf-{run_id}", run_id=run_id, queue=queue), "fail")
    task = await claim_one(store, run_id, queue)
    assert await store.commit_turn(await turn(store, task, timers=[(1, store.clock() + at)]))


def lease(limit: int = 10, queues: tuple[str, ...] = ("q",)) -> TurnLease:
    return TurnLease("me", 30.0, frozenset(queues), limit)


async def test_a_firing_leases_the_turn_it_wakes_with_what_it_reads(
    open_store: Any, clock: FakeClock
) -> None:
    store = await open_store()
    await sleeping(store, "run-1")
    clock.advance(10)
    asked = lease()
    assert await store.fire_due_timers(10, asked) == 1
    [task] = asked.taken
    assert (task.run_id, task.attempt) == ("run-1", 1)
    known = task.turn_input
    assert known is not None and known.events == []
    # The run as it is now, and its inbox: what a load would read after the
    # events the worker's instance has already applied.
    loaded = await store.load_turn("run-1", known.run.last_seq)
    assert known == loaded
    [(_, fired)] = known.inbox
    assert isinstance(fired, h.TimerFired) and fired.ref == 1
    # Leased: no poll claims it, and its token fences the turn.
    assert await store.claim_workflow_tasks(["q"], "other", 30, 10) == []
    assert await store.commit_turn(await turn(store, task))


async def test_a_firing_leases_only_what_its_worker_may_take(
    open_store: Any, clock: FakeClock
) -> None:
    store = await open_store()
    for run_id in ("run-1", "run-3", "run-4"):
        await sleeping(store, run_id)
    await sleeping(store, "run-2", queue="other")
    # run-3's workflow task is taken before its timer fires: a signal woke it
    # and another worker claimed that turn.
    await store.deliver("wf-run-3", None, h.SignalReceived(name="s", payload=None))
    busy = await claim_one(store, "run-3")
    # run-4's last turn failed: its task waits out a backoff.
    await store.deliver("wf-run-4", None, h.SignalReceived(name="s", payload=None))
    failing = await claim_one(store, "run-4")
    assert await store.fail_turn(failing, "boom", 60.0)
    clock.advance(10)
    asked = lease()
    assert await store.fire_due_timers(10, asked) == 4
    assert [t.run_id for t in asked.taken] == ["run-1"]
    # Everything else is as before: every timer reached its inbox, and the
    # free task is there for any worker's claim.
    for run_id in ("run-2", "run-3", "run-4"):
        inbox = (await store.load_turn(run_id, 0)).inbox
        assert any(isinstance(e, h.TimerFired) for _, e in inbox), run_id
    claimed = await store.claim_workflow_tasks(["q", "other"], "w", 30, 10)
    assert [t.run_id for t in claimed] == ["run-2"]  # run-4 still backs off
    assert await store.commit_turn(await turn(store, busy))  # still its claimer's


async def test_a_firing_leases_no_more_turns_than_its_limit(
    open_store: Any, clock: FakeClock
) -> None:
    store = await open_store()
    for run_id in ("run-1", "run-2", "run-3"):
        await sleeping(store, run_id)
    clock.advance(10)
    asked = lease(limit=2)
    assert await store.fire_due_timers(10, asked) == 3
    assert [t.run_id for t in asked.taken] == ["run-1", "run-2"]  # in run-id order
    [left] = await store.claim_workflow_tasks(["q"], "w", 30, 10)
    assert left.run_id == "run-3"


async def test_a_timer_that_ends_its_run_leases_nothing(open_store: Any, clock: FakeClock) -> None:
    # The execution timeout is a timer with ref 0: its firing closes the run.
    store = await open_store()
    await store.create_run(new_run(), "fail")
    task = await claim_one(store, "run-1")
    assert await store.commit_turn(await turn(store, task, timers=[(0, clock.now + 5)]))
    clock.advance(5)
    asked = lease()
    assert await store.fire_due_timers(10, asked) == 1
    assert asked.taken == []
    run = await store.get_run("wf-1")
    assert run is not None and run.status == "timed_out"


async def test_a_claim_reads_back_what_its_turns_read(open_store: Any, clock: FakeClock) -> None:
    store = await open_store()
    for run_id in ("run-1", "run-2"):
        await sleeping(store, run_id)
    for n in range(2):
        await store.deliver("wf-run-2", None, h.SignalReceived(name="s", payload=n))
    claimed = await store.claim_workflow_tasks(["q"], "w", 30, 10)
    assert [t.run_id for t in claimed] == ["run-2"]
    [task] = claimed
    known = task.turn_input
    assert known is not None and known.events == []
    assert known == await store.load_turn("run-2", known.run.last_seq)
    assert [e.payload for _, e in known.inbox] == [0, 1]  # type: ignore[attr-defined]


async def test_a_firing_of_many_timers_writes_each_to_its_inbox_in_order(
    open_store: Any, clock: FakeClock
) -> None:
    # One firing, many runs, some with two timers due: every TimerFired
    # reaches its run's inbox in the order the timers fell due, each run
    # gets one workflow task, and the leased ones come back in run-id order.
    store = await open_store()
    runs = [f"run-{i}" for i in range(1, 6)]
    for run_id in runs:
        await store.create_run(new_run(wid=f"wf-{run_id}", run_id=run_id), "fail")
        task = await claim_one(store, run_id)
        timers = [(2, clock.now + 3.0), (1, clock.now + 5.0)]
        if run_id == "run-2":
            timers.append((0, clock.now + 4.0))  # its execution timeout, between the two
        assert await store.commit_turn(await turn(store, task, timers=timers))
    clock.advance(10)
    asked = lease(limit=3)
    assert await store.fire_due_timers(100, asked) == 11
    assert [t.run_id for t in asked.taken] == ["run-1", "run-3", "run-4"]
    run = await store.get_run("wf-run-2")
    assert run is not None and run.status == "timed_out"
    for run_id in runs:
        inbox = (await store.load_turn(run_id, 0)).inbox
        fired = [e.ref for _, e in inbox if isinstance(e, h.TimerFired)]
        assert fired == ([] if run_id == "run-2" else [2, 1]), run_id
    # Leased or claimable: one task per open run, none for the closed one.
    claimed = await store.claim_workflow_tasks(["q"], "w", 30, 10)
    assert [t.run_id for t in claimed] == ["run-5"]
    for task in [*asked.taken, *claimed]:
        assert await store.commit_turn(await turn(store, task))
    assert await store.claim_workflow_tasks(["q"], "w", 30, 10) == []
