"""The Store contract for worker builds (docs/versioning.md): a turn that
pins its run sends the run's workflow tasks, from then on, to its build's
queue (records.turn_queue), whatever wakes the run (a signal, an
activity's outcome, a timer); a run moved to another build has its turn
in flight fenced out and its task in the new queue at once; a queue's
current build is the one promoted last."""

from __future__ import annotations

from typing import Any

import pytest
from store_helpers import FakeClock, claim_one, leased_charge, new_run, schedule_charge, turn
from test_store_inline_rows import _continuation

from perdure import _history as h
from perdure._store.base import NewActivity, Store, turn_queue
from perdure._worker.turns import lost_turn_wait

B1 = turn_queue("q", "b1")
B2 = turn_queue("q", "b2")


async def runs_due(store: Store, queue: str) -> list[str]:
    """The runs whose workflow tasks a claim of ``queue`` takes (leased to "peek")."""
    return [t.run_id for t in await store.claim_workflow_tasks([queue], "peek", 30, 10)]


async def pinned_run(store: Store, clock: FakeClock) -> None:
    """run-1 (wf-1), pinned to b1 by its first turn, which starts a timer
    and an activity and then sees a signal that came while it ran."""
    await store.create_run(new_run(), "fail")
    task = await claim_one(store, "run-1")
    commit = await turn(
        store,
        task,
        [h.ScheduleActivity(ref=1, name="charge", task_queue="q", args=[], kwargs={}, options={})],
        activities=[NewActivity(1, "charge", "q", [], {}, {})],
        timers=[(2, clock.now + 60)],
        pin="b1",
    )
    await store.deliver("wf-1", None, h.SignalReceived(name="go", payload=None))
    assert await store.commit_turn(commit)


async def test_a_pinned_runs_turns_go_to_its_builds_queue(
    open_store: Any, clock: FakeClock
) -> None:
    store: Store = await open_store()
    await pinned_run(store, clock)
    run = await store.get_run("wf-1", None)
    assert run is not None and run.build_id == "b1" and run.turn_queue == B1
    # The signal's turn, requeued by the commit that pinned the run.
    assert await runs_due(store, "q") == []
    task = await claim_one(store, "run-1", B1)
    assert await store.commit_turn(await turn(store, task))
    # Its activity's outcome (the activity's own task stays in its queue).
    (attempt,) = await store.claim_activity_tasks(["q"], "w", 30, 10)
    outcome = h.ActivityCompleted(ref=1, result=5, attempt=1)
    assert await store.complete_activity(attempt, outcome)
    assert await runs_due(store, "q") == []
    task = await claim_one(store, "run-1", B1)
    assert await store.commit_turn(await turn(store, task))
    # Its timer.
    clock.advance(61)
    assert await store.fire_due_timers(10) == 1
    assert await runs_due(store, "q") == []
    assert await runs_due(store, B1) == ["run-1"]


async def test_a_move_fences_the_turn_in_flight_and_frees_its_task(
    open_store: Any, clock: FakeClock
) -> None:
    store: Store = await open_store()
    await pinned_run(store, clock)
    in_flight = await claim_one(store, "run-1", B1)
    commit = await turn(store, in_flight)
    moved = await store.set_run_build("wf-1", None, "b2")
    assert moved.build_id == "b2"
    assert not await store.commit_turn(commit)  # (build 1's turn: fenced out)
    # At once in build 2's queue, though build 1's lease had 30 s to run.
    assert await runs_due(store, B1) == []
    task = await claim_one(store, "run-1", B2)
    assert await store.commit_turn(await turn(store, task))
    # Unpinned: back in the queue's own, for its current build.
    await store.deliver("wf-1", None, h.SignalReceived(name="go", payload=None))
    await store.set_run_build("wf-1", None, None)
    assert (await store.get_run("wf-1", None)).build_id is None  # type: ignore[union-attr]
    assert await runs_due(store, B2) == []
    assert await runs_due(store, "q") == ["run-1"]


async def test_a_run_handed_on_keeps_its_count_of_lost_attempts(
    open_store: Any, clock: FakeClock
) -> None:
    """A worker of the old build that moves a new run to the ramping build
    (TurnRunner._hand_to_ramp) lets go of the lease it held: the new build's
    claim is that attempt again, not one more. Counted, the move of a run
    whose turn had lost two attempts (and waited) read as a third loss, and
    the run waited again, for 8 s, then 32 s (seen in a chaos run)."""
    store: Store = await open_store()
    await store.create_run(new_run(), "fail")
    for _ in range(2):  # (two attempts lost with their workers: their leases ran out)
        await claim_one(store, "run-1")
        clock.advance(31)
    third = await claim_one(store, "run-1")
    run = await store.get_run("wf-1", None)
    assert run is not None and third.attempt == 3
    wait = lost_turn_wait(third.attempt, run.last_error)
    assert wait is not None
    assert await store.fail_turn(third, wait[1], wait[0])
    clock.advance(wait[0])
    fourth = await claim_one(store, "run-1")
    run = await store.get_run("wf-1", None)
    assert run is not None and lost_turn_wait(fourth.attempt, run.last_error) is None
    await store.set_run_build("wf-1", None, "b2")  # (handed on, not run)
    again = await claim_one(store, "run-1", B2)
    assert again.attempt == fourth.attempt == 4
    assert lost_turn_wait(again.attempt, run.last_error) is None  # (it runs, at once)
    # A task no lease holds keeps its count: its claims were all attempts.
    assert await store.fail_turn(again, "", 0.0)
    await store.set_run_build("wf-1", None, None)
    assert (await claim_one(store, "run-1")).attempt == 5


async def test_a_move_fences_an_inline_turn_of_the_old_build(open_store: Any) -> None:
    """A worker of the old build that runs the run's activity itself takes
    the outcome into its cached instance, with no workflow task to lose:
    the move's new version fences that turn, and the outcome goes through
    the inbox to the new build."""
    store: Store = await open_store()
    await store.create_run(new_run(), "fail")
    task = await claim_one(store, "run-1")
    first = await turn(
        store, task, [schedule_charge(1)], activities=[leased_charge(1, "t1")], pin="b1"
    )
    assert await store.commit_turn(first)
    data = await store.load_turn("run-1", 0)
    await store.set_run_build("wf-1", None, "b2")
    assert not await store.commit_turn(_continuation(data, (first.created_tasks[1], "t1")))
    assert await runs_due(store, B2) == []  # (nothing reached the inbox: no turn)


async def test_a_closing_turn_does_not_pin(open_store: Any) -> None:
    store: Store = await open_store()
    await store.create_run(new_run(), "fail")
    task = await claim_one(store, "run-1")
    commit = await turn(
        store, task, [h.CompleteWorkflow(result=1)], close_status="completed", result=1, pin="b1"
    )
    assert await store.commit_turn(commit)
    run = await store.get_run("wf-1", None)
    assert run is not None and run.status == "completed" and run.build_id is None


async def test_a_queues_current_build_is_the_one_promoted_last(
    open_store: Any, clock: FakeClock
) -> None:
    store: Store = await open_store()
    fields: dict[str, Any] = {
        "host": "h",
        "pid": 1,
        "task_queue": "q",
        "workflows": ["t"],
        "activities": [],
        "lease_timeout": 30.0,
    }
    await store.register_worker("w1", build_id="b1", **fields)
    clock.advance(-5)  # (the next worker's host has a clock behind: b2 is still the newer)
    await store.register_worker("w2", build_id="b2", **fields)
    assert [b[0] for b in await store.queue_builds("q")] == ["b2", "b1"]
    # A worker of b1 that starts again does not make b1 current again.
    clock.advance(1)
    await store.register_worker("w3", build_id="b1", **fields)
    await store.register_worker("w4", **fields)  # (no build: none recorded)
    # A worker that runs no workflow of its own (activities only) promotes nothing.
    await store.register_worker("w5", build_id="b9", promotes=False, **fields)
    assert [b[0] for b in await store.queue_builds("q")] == ["b2", "b1"]
    # An operator does: even with a clock behind the promotions so far.
    clock.advance(-100)
    await store.set_current_build("q", "b1")
    assert [b[0] for b in await store.queue_builds("q")] == ["b1", "b2"]
    await store.set_current_build("q", "b3")  # (no worker of it yet)
    assert [b[0] for b in await store.queue_builds("q")] == ["b3", "b1", "b2"]
    assert await store.queue_builds("other") == []
    assert await store.current_build("q") == "b3"
    assert await store.current_build("other") is None
    assert {w.identity: w.build_id for w in await store.list_workers()} == {
        "w1": "b1",
        "w2": "b2",
        "w3": "b1",
        "w4": None,
        "w5": "b9",
    }


async def test_a_builds_open_runs_are_counted(open_store: Any, clock: FakeClock) -> None:
    store: Store = await open_store()
    await store.set_current_build("q", "b1")
    await pinned_run(store, clock)
    await store.create_run(new_run("wf-2", "run-2"), "fail")
    await store.set_run_build("wf-2", None, "b1")
    await store.create_run(new_run("wf-3", "run-3"), "fail")
    assert await store.queue_builds("q", with_runs=True) == [("b1", clock.now, 2, None)]
    await store.terminate("wf-2", None, "done with it")
    assert [b[2] for b in await store.queue_builds("q", with_runs=True)] == [1]
    assert [b[2] for b in await store.queue_builds("q")] == [None]


async def test_a_ramping_build_beside_the_current_one(open_store: Any, clock: FakeClock) -> None:
    """One build ramps at a time, never the current one and never without
    one; a build set to ramp before its first worker starts is not made
    current by that start; made current, it stops ramping."""
    store: Store = await open_store()
    refused = "task queue 'q' has no current build for 'b2' to ramp beside"
    with pytest.raises(ValueError, match=refused):
        await store.set_ramping_build("q", "b2", 10.0)
    assert await store.queue_builds("q") == [] and await store.ramping_build("q") is None
    await store.set_current_build("q", "b1")
    with pytest.raises(ValueError, match="'b1' is the current build of task queue 'q'"):
        await store.set_ramping_build("q", "b1", 10.0)
    assert await store.ramping_build("q") is None
    await store.set_ramping_build("q", "b2", 10.0)  # (no worker of it yet)
    assert await store.ramping_build("q") == ("b2", 10.0)
    assert await store.ramping_build("other") is None
    assert await store.queue_builds("q") == [("b1", clock.now, None, None), ("b2", 0, None, 10.0)]
    # Its first worker's start does not make it current: the ramp stays.
    clock.advance(1)
    await store.register_worker(
        "w2", host="h", pid=1, task_queue="q", workflows=["t"], activities=[],
        lease_timeout=30.0, build_id="b2",
    )  # fmt: skip
    assert await store.current_build("q") == "b1"
    await store.set_ramping_build("q", "b2", 50.0)
    assert await store.ramping_build("q") == ("b2", 50.0)
    # Another build's ramp replaces it.
    await store.set_ramping_build("q", "b3", 5.0)
    assert await store.ramping_build("q") == ("b3", 5.0)
    assert [(b[0], b[3]) for b in await store.queue_builds("q")] == [
        ("b1", None), ("b3", 5.0), ("b2", None)
    ]  # fmt: skip
    # Made current, a ramping build stops ramping.
    await store.set_current_build("q", "b3")
    assert await store.ramping_build("q") is None
    assert [(b[0], b[3]) for b in await store.queue_builds("q")] == [
        ("b3", None), ("b1", None), ("b2", None)
    ]  # fmt: skip
    await store.set_ramping_build("q", "b1", 100.0)
    assert await store.ramping_build("q") == ("b1", 100.0)
    await store.set_ramping_build("q", None, 0.0)
    assert await store.ramping_build("q") is None
    assert await store.current_build("q") == "b3"


async def test_the_queues_that_have_builds(open_store: Any) -> None:
    """A queue has builds once a worker of workflows with a build registers
    on it, or once a build is made current or set to ramp beside one; by
    name, in one order on both databases (code points, not a collation's:
    "B" before "a")."""
    store: Store = await open_store()
    assert await store.every_queue_builds() == {}
    fields: dict[str, Any] = {
        "host": "h", "pid": 1, "workflows": ["t"], "activities": [], "lease_timeout": 30.0,
    }  # fmt: skip
    await store.register_worker("w1", task_queue="plain", **fields)  # (no build)
    # (An activity worker's build is not recorded: it promotes nothing.)
    await store.register_worker("w0", task_queue="acts", build_id="b1", promotes=False, **fields)
    assert await store.every_queue_builds() == {}
    await store.register_worker("w2", task_queue="orders", build_id="b1", **fields)
    await store.register_worker("w3", task_queue="orders", build_id="b2", **fields)
    await store.set_current_build("a/b", "b1")
    await store.set_ramping_build("a/b", "b2", 10.0)
    await store.set_current_build("B", "b1")
    every = await store.every_queue_builds()
    assert list(every) == ["B", "a/b", "orders"]
    assert {q: [b[0] for b in found] for q, found in every.items()} == {
        "B": ["b1"], "a/b": ["b1", "b2"], "orders": ["b2", "b1"],
    }  # fmt: skip
    assert every["a/b"][1][3] == 10.0 and every["orders"] == await store.queue_builds("orders")
    await store.create_run(new_run(queue="orders"), "fail")
    await store.set_run_build("wf-1", None, "b1")
    with_runs = await store.every_queue_builds(with_runs=True)
    assert {q: [b[2] for b in found] for q, found in with_runs.items()} == {
        "B": [0], "a/b": [0, 0], "orders": [0, 1],
    }  # fmt: skip
