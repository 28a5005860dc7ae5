"""The Store contract for priorities: a claim hands a queue's due tasks out
by priority (1 first), then by due time; tasks not yet due, of any
priority, never hold back those that are; across queues the claim merges
by priority; a limited queue's room is spent on its first tasks by
priority; a run's priority reaches its workflow tasks and, unless they
have their own, its activities'."""

from __future__ import annotations

from typing import Any

from store_helpers import FakeClock, claim_one, new_run, turn

from perdure import _history as h
from perdure._store.base import NewActivity, QueueLimitsRecord, Store


def prioritised(run_id: str, priority: int, queue: str = "q", start_at: float | None = None):  # type: ignore[no-untyped-def]
    new = new_run(wid=f"wf-{run_id}", run_id=run_id, queue=queue)
    new.priority = priority
    new.start_at = start_at
    return new


async def claimed_runs(store: Store, queues: list[str], limit: int) -> list[str]:
    return [t.run_id for t in await store.claim_workflow_tasks(queues, "w", 30, limit)]


async def test_workflow_tasks_are_claimed_by_priority_then_age(
    open_store: Any, clock: FakeClock
) -> None:
    store: Store = await open_store()
    for run_id, priority in [("a5", 5), ("b3", 3), ("c1", 1), ("d3", 3), ("e1", 1), ("f2", 2)]:
        clock.advance(1)
        await store.create_run(prioritised(run_id, priority), "fail")
    assert await claimed_runs(store, ["q"], 2) == ["c1", "e1"]
    assert await claimed_runs(store, ["q"], 10) == ["f2", "b3", "d3", "a5"]
    assert (await store.get_run("wf-c1", None)).priority == 1  # type: ignore[union-attr]


async def test_tasks_not_yet_due_hold_back_no_one(open_store: Any, clock: FakeClock) -> None:
    store: Store = await open_store()
    # Many tasks of priority 1 due later (a delayed start, a leased task),
    # one of priority 4 due now: the claim finds it, and finds the first
    # priority's once due.
    for i in range(30):
        await store.create_run(prioritised(f"later-{i}", 1, start_at=clock.now + 60), "fail")
    await store.create_run(prioritised("now", 4), "fail")
    assert await claimed_runs(store, ["q"], 5) == ["now"]
    clock.advance(61)  # (and the first claim's lease ran out: due again, last)
    later = [f"later-{i}" for i in range(30)]
    assert await claimed_runs(store, ["q"], 100) == [*later, "now"]


async def test_a_claim_of_several_queues_merges_them_by_priority(
    open_store: Any, clock: FakeClock
) -> None:
    store: Store = await open_store()
    for run_id, priority, queue in [("x4", 4, "x"), ("y2", 2, "y"), ("x1", 1, "x"), ("y5", 5, "y")]:
        clock.advance(1)
        await store.create_run(prioritised(run_id, priority, queue), "fail")
    assert await claimed_runs(store, ["x", "y"], 3) == ["x1", "y2", "x4"]
    assert await claimed_runs(store, ["y", "x"], 3) == ["y5"]


async def test_a_limited_queues_room_goes_to_its_first_priorities(
    open_store: Any, clock: FakeClock
) -> None:
    store: Store = await open_store()
    await store.create_run(prioritised("run-1", 5), "fail")
    task = await claim_one(store, "run-1")
    # The run's activities: of its priority (5) but refs 2 and 4, their own.
    activities = [NewActivity(ref, "charge", "q", [], {}, {}, priority=5) for ref in (1, 3, 5)]
    activities += [
        NewActivity(ref, "charge", "q", [], {}, {"priority": 1}, priority=1) for ref in (2, 4)
    ]
    assert await store.commit_turn(await turn(store, task, activities=activities))
    await store.set_queue_limits("q", QueueLimitsRecord(max_running=3))
    first = await store.claim_activity_tasks(["q"], "w", 30, 10)
    assert [(t.ref, t.priority) for t in first] == [(2, 1), (4, 1), (1, 5)]
    # Room for no more; raised, the rest in order.
    assert await store.claim_activity_tasks(["q"], "w", 30, 10) == []
    await store.set_queue_limits("q", QueueLimitsRecord(max_running=10))
    rest = await store.claim_activity_tasks(["q"], "w", 30, 10)
    assert [t.ref for t in rest] == [3, 5]


async def test_an_unlimited_claim_takes_activities_by_priority(
    open_store: Any, clock: FakeClock
) -> None:
    store: Store = await open_store()
    await store.create_run(prioritised("run-1", 3), "fail")
    task = await claim_one(store, "run-1")
    priorities = {1: 4, 2: 3, 3: 2, 4: 5, 5: 2}
    activities = [
        NewActivity(ref, "charge", "q", [], {}, {}, priority=p) for ref, p in priorities.items()
    ]
    assert await store.commit_turn(await turn(store, task, activities=activities))
    claimed = await store.claim_activity_tasks(["q"], "w", 30, 2)
    claimed += await store.claim_activity_tasks(["q"], "w", 30, 10)
    assert [t.ref for t in claimed] == [3, 5, 2, 1, 4]
    assert [t.priority for t in claimed] == [2, 2, 3, 4, 5]


async def test_a_change_of_priority_moves_the_runs_tasks_and_fences_its_turn(
    open_store: Any, clock: FakeClock
) -> None:
    store: Store = await open_store()
    await store.create_run(prioritised("run-1", 5), "fail")
    task = await claim_one(store, "run-1")
    # Its first turn: an activity of the run's priority, one of its own.
    activities = [
        NewActivity(1, "charge", "q", [], {}, {}, priority=5),
        NewActivity(2, "charge", "q", [], {}, {"priority": 2}, priority=2),
    ]
    assert await store.commit_turn(await turn(store, task, activities=activities))
    await store.deliver("wf-run-1", None, h.SignalReceived(name="go"))
    task = await claim_one(store, "run-1")
    in_flight = await turn(store, task, activities=[NewActivity(3, "charge", "q", [], {}, {})])

    changed = await store.set_priority("wf-run-1", None, 1)
    assert changed.priority == 1
    # The turn computed before the change is fenced out (its activity would
    # have had the old priority); the next one takes the change in.
    assert not await store.commit_turn(in_flight)
    data = await store.load_turn("run-1", 0)
    assert data.run.priority == 1
    assert [type(e).__name__ for _, e in data.inbox] == ["SignalReceived", "PriorityChanged"]
    held = await store._read(  # type: ignore[attr-defined]
        lambda tx: tx.all("SELECT kind, ref, priority FROM tasks ORDER BY id")
    )
    assert sorted(tuple(r) for r in held) == [
        ("activity", 1, 1),
        ("activity", 2, 2),
        ("workflow", None, 1),
    ]


async def test_a_queues_waiting_is_counted_by_priority(open_store: Any, clock: FakeClock) -> None:
    store: Store = await open_store()
    await store.create_run(prioritised("run-1", 5), "fail")
    task = await claim_one(store, "run-1")
    activities = [
        NewActivity(ref, "charge", "q", [], {}, {}, priority=p)
        for ref, p in enumerate([1, 1, 5, 5, 5, 3], start=1)
    ]
    assert await store.commit_turn(await turn(store, task, activities=activities))
    [queue] = await store.queues("q")
    assert queue.waiting == 6 and queue.waiting_by_priority == {1: 2, 3: 1, 5: 3}
    await store.claim_activity_tasks(["q"], "w", 30, 2)  # (the two of priority 1)
    [queue] = await store.queues("q")
    assert queue.running == 2 and queue.waiting_by_priority == {3: 1, 5: 3}


async def test_the_next_due_time_is_the_first_of_every_priority_and_key(
    open_store: Any, clock: FakeClock
) -> None:
    """An idle worker's next due time finds a queue's first task by one
    search per priority (and one of the keyed tasks): the earliest of them
    all, whichever priority or key it has."""
    store: Store = await open_store()
    await store.create_run(prioritised("run-1", 3), "fail")
    task = await claim_one(store, "run-1")
    activities = [
        NewActivity(1, "charge", "q", [], {}, {}, priority=5),
        NewActivity(2, "charge", "q", [], {}, {}, priority=1),
        NewActivity(3, "charge", "q", [], {}, {}, priority=3, fairness_key="k"),
    ]
    assert await store.commit_turn(await turn(store, task, activities=activities))
    error = {"type": "ConnectionError", "message": "down"}
    t0 = clock.now
    # (The first claim takes the unkeyed ones and learns of the keyed one.)
    claimed = await store.claim_activity_tasks(["q"], "w", 30, 10)
    claimed += await store.claim_activity_tasks(["q"], "w", 30, 10)
    tasks = {t.ref: t for t in claimed}
    for ref, wait in ((1, 10), (2, 20), (3, 40)):
        assert await store.retry_activity(tasks[ref], error, wait)
    assert await store.next_due(["q"], ("activity",)) == t0 + 10  # (priority 5's)
    # Each in turn comes due, is claimed and backs off for long: the next
    # due time is then priority 1's, then the keyed one's.
    for ref, due, then in ((1, t0 + 10, t0 + 20), (2, t0 + 20, t0 + 40)):
        clock.advance(due - clock.now)
        [again] = await store.claim_activity_tasks(["q"], "w", 30, 1)
        assert again.ref == ref
        assert await store.retry_activity(again, error, 1000)
        assert await store.next_due(["q"], ("activity",)) == then
