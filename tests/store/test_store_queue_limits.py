"""The Store contract for task queue limits: claims of a queue's activity
tasks, from any connection, never start more attempts than its limits
allow; the next due time waits for the limits; ``queues`` reports them."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from store_helpers import FakeClock, claim_one, new_run, turn

from perdure._store.base import ActivityTask, NewActivity, QueueLimitsRecord, Store

ERROR = {"type": "ConnectionError", "message": "down"}
HINTED = [False]


@pytest.fixture(autouse=True, params=[False, True], ids=["found", "hinted"])
def _hinted(request: pytest.FixtureRequest) -> None:
    """Each test twice: claims that find the limits, and claims told to
    expect them (Store.claim_activity_tasks's ``limited``, which a worker
    passes once it knows its queue has limits)."""
    HINTED[0] = request.param


async def schedule(store: Store, count: int, queue: str = "q", run: str = "run-1") -> None:
    """A run (of queue "q") with ``count`` activities on ``queue``, none claimed."""
    await store.create_run(new_run(wid=f"wf-{run}", run_id=run), "fail")
    task = await claim_one(store, run)
    activities = [NewActivity(ref, "charge", queue, [], {}, {}) for ref in range(1, count + 1)]
    assert await store.commit_turn(await turn(store, task, activities=activities))


async def claim(
    store: Store, want: int = 10, queues: list[str] | None = None
) -> list[ActivityTask]:
    return await store.claim_activity_tasks(queues or ["q"], "w", 30, want, HINTED[0])


async def test_no_connection_claims_past_max_running(open_store: Any, clock: FakeClock) -> None:
    a, b = await open_store(), await open_store()
    await schedule(a, 5)
    assert await a.set_queue_limits("q", QueueLimitsRecord(max_running=2)) is False
    first = await claim(a)
    assert len(first) == 2
    assert await claim(b) == []  # another worker process: the same two slots
    clock.advance(1)
    # An attempt that ends (here retried in 60 s) frees its slot.
    assert await a.retry_activity(first[0], ERROR, 60)
    assert len(await claim(b)) == 1
    assert await claim(a) == []
    # An attempt whose worker died holds its slot until its lease runs out:
    # then its task is due again, and the claim takes it as a lost attempt.
    clock.advance(30)
    assert len(await claim(b)) == 2
    # Raised, the limit lets the rest start at once.
    assert await b.set_queue_limits("q", QueueLimitsRecord(max_running=4)) is True
    assert len(await claim(a)) == 2  # (of the three due: two lost attempts, one never started)


async def test_the_rate_limit_is_a_sliding_window(open_store: Any, clock: FakeClock) -> None:
    a, b = await open_store(), await open_store()
    await schedule(a, 10)
    await a.set_queue_limits("q", QueueLimitsRecord(max_starts=3, per=10.0))
    t0 = clock.now
    assert len(await claim(a, want=2)) == 2
    clock.advance(4)
    assert len(await claim(b)) == 1  # the third start of the window
    assert await claim(a) == []
    # The next start may come when the first two leave the window.
    assert await a.next_due(["q"], ("activity",)) == t0 + 10
    clock.advance(6)  # t0 + 10: the window (t0, t0 + 10] holds one start
    assert len(await claim(b)) == 2
    assert await b.next_due(["q"], ("activity",)) == t0 + 14
    [q] = await a.queues("q")
    assert (q.running, q.waiting, q.started, q.held_until) == (5, 5, 3, t0 + 14)
    clock.advance(4)
    assert len(await claim(a)) == 1


async def test_both_limits_together_take_the_smaller_room(
    open_store: Any, clock: FakeClock
) -> None:
    store = await open_store()
    await schedule(store, 10)
    await store.set_queue_limits("q", QueueLimitsRecord(max_running=3, max_starts=4, per=10.0))
    running = await claim(store)
    assert len(running) == 3
    for task in running:
        assert await store.retry_activity(task, ERROR, 1000)
    assert len(await claim(store)) == 1  # the fourth start of the window
    clock.advance(10)
    assert len(await claim(store)) == 2  # the window is empty; one of three slots is taken


async def test_next_due_waits_for_a_slot_of_a_full_queue(open_store: Any, clock: FakeClock) -> None:
    store = await open_store()
    await schedule(store, 3)
    await store.set_queue_limits("q", QueueLimitsRecord(max_running=1))
    t0 = clock.now
    assert await store.next_due(["q"], ("activity",)) == t0  # due, and room
    [running] = await claim(store)
    # Full: no sooner than the running attempt's lease runs out (an attempt
    # that ends wakes the workers instead).
    assert await store.next_due(["q"], ("activity",)) == running.lease_until == t0 + 30
    await store.set_queue_limits("q", None)
    assert await store.next_due(["q"], ("activity",)) == t0


async def test_a_claim_of_two_queues_obeys_each_queues_limits(
    open_store: Any, clock: FakeClock
) -> None:
    store = await open_store()
    await schedule(store, 4, queue="slow", run="run-1")
    await schedule(store, 4, queue="fast", run="run-2")
    await store.set_queue_limits("slow", QueueLimitsRecord(max_running=1))
    taken = await claim(store, want=10, queues=["slow", "fast"])
    assert sorted(t.run_id for t in taken) == ["run-1"] + ["run-2"] * 4
    assert await claim(store, queues=["slow", "fast"]) == []


async def test_concurrent_claims_from_many_connections_share_the_limit(
    open_store: Any, clock: FakeClock
) -> None:
    stores = [await open_store() for _ in range(4)]
    await schedule(stores[0], 40)
    await stores[0].set_queue_limits("q", QueueLimitsRecord(max_running=5, max_starts=7, per=5.0))
    for _ in range(3):
        taken = await asyncio.gather(*(claim(s, want=3) for s in stores for _ in range(3)))
        assert sum(map(len, taken)) == 5  # (on PostgreSQL they take turns at the limits row)
        for task in [t for batch in taken for t in batch]:
            assert await stores[0].retry_activity(task, ERROR, 1000)
        taken = await asyncio.gather(*(claim(s, want=3) for s in stores))
        assert sum(map(len, taken)) == 2  # the rate limit's last two
        for task in [t for batch in taken for t in batch]:
            assert await stores[0].retry_activity(task, ERROR, 1000)
        clock.advance(5)


async def test_queues_reports_tasks_and_limits(open_store: Any, clock: FakeClock) -> None:
    store = await open_store()
    await schedule(store, 4, queue="a", run="run-1")
    await schedule(store, 1, queue="b", run="run-2")
    await store.set_queue_limits("c", QueueLimitsRecord(max_starts=5, per=1.0))
    [running, *_] = await claim(store, want=2, queues=["a"])
    assert await store.retry_activity(running, ERROR, 60)
    found = {q.queue: q for q in await store.queues()}
    assert list(found) == ["a", "b", "c"]
    a, b, c = found["a"], found["b"], found["c"]
    assert (a.limits, a.running, a.waiting, a.backing_off, a.started) == (None, 1, 2, 1, 0)
    assert (b.running, b.waiting, b.backing_off) == (0, 1, 0)
    assert c.limits == QueueLimitsRecord(None, 5, 1.0)
    assert (c.running, c.waiting, c.started, c.held_until) == (0, 0, 0, None)
    [unknown] = await store.queues("nothing-here")
    assert (unknown.limits, unknown.running, unknown.waiting) == (None, 0, 0)
    assert await store.queue_limits("c") == QueueLimitsRecord(None, 5, 1.0)
    assert await store.set_queue_limits("c", None) is True
    assert await store.queue_limits("c") is None
    assert await store.set_queue_limits("c", None) is False


async def test_the_window_survives_a_change_of_limits_but_not_their_removal(
    open_store: Any, clock: FakeClock
) -> None:
    store = await open_store()
    await schedule(store, 10)
    await store.set_queue_limits("q", QueueLimitsRecord(max_starts=2, per=60.0))
    assert len(await claim(store)) == 2
    # A new limit counts the starts already in its window...
    await store.set_queue_limits("q", QueueLimitsRecord(max_starts=3, per=60.0))
    assert len(await claim(store)) == 1
    # ...and one set again after a removal starts from an empty window.
    await store.set_queue_limits("q", None)
    await store.set_queue_limits("q", QueueLimitsRecord(max_starts=2, per=60.0))
    assert len(await claim(store)) == 2
