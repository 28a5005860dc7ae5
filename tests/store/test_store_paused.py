"""The Store contract for a paused activity (Store.set_activity_paused): its
task is never claimed while no attempt holds it; an attempt holding it when
it was paused may complete, but a retry, a hand-back or a claim that finds
its lease run out parks the task until it is unpaused; a heartbeat tells the
attempt it is paused; unpausing makes it due now (attempts counted from 1
again only while no attempt holds it). Every backend, on a hand-moved clock."""

from __future__ import annotations

from typing import Any

from store_helpers import FakeClock

from perdure import _history as h
from perdure._store.base import NEVER_DUE, ActivityTask, Store
from perdure._store.records import QueueLimitsRecord

from test_store_attempts import claim, schedule  # isort: skip

FAILURE = {"type": "ConnectionError", "message": "down"}


async def state(store: Store) -> Any:
    return (await store.pending_work("run-1")).activities[0]


async def test_a_paused_task_is_not_claimed_and_unpausing_drops_its_backoff(
    open_store: Any, clock: FakeClock
) -> None:
    store = await open_store()
    await schedule(store, clock)
    first = await claim(store)
    assert await store.retry_activity(first, FAILURE, 3600.0)  # an hour's backoff
    before = await store.set_activity_paused("run-1", 1, True)
    assert before is not None and before.state == "idle" and not before.task.paused
    again = await store.set_activity_paused("run-1", 1, True)  # (idempotent)
    assert again is not None and again.task.paused
    waiting = await state(store)
    assert waiting.paused and waiting.due_at is None and waiting.next_attempt_at is None
    clock.advance(7200)  # past the backoff: still not claimed
    assert await store.claim_activity_tasks(["q"], "w", 30, 10) == []
    assert await store.next_due(["q"], ("activity",)) == NEVER_DUE
    assert await store.set_activity_paused("run-1", 1, False) is not None
    second = await claim(store)
    assert second.attempt == 2 and not second.paused and second.attempts[0]["attempt"] == 1


async def test_unpausing_what_is_not_paused_keeps_its_backoff(
    open_store: Any, clock: FakeClock
) -> None:
    store = await open_store()
    await schedule(store, clock)
    assert await store.retry_activity(await claim(store), FAILURE, 3600.0)
    due = (await state(store)).due_at
    await store.set_activity_paused("run-1", 1, False, reset_attempts=True)
    after = await state(store)
    assert (after.due_at, after.attempt, after.paused) == (due, 1, False)
    assert await store.claim_activity_tasks(["q"], "w", 30, 10) == []


async def test_a_running_attempt_may_complete_but_its_retry_is_parked(
    open_store: Any, clock: FakeClock
) -> None:
    store = await open_store()
    await schedule(store, clock)
    first = await claim(store)
    held = await store.set_activity_paused("run-1", 1, True)
    assert held is not None and held.state == "running"
    running = await state(store)
    assert running.running and running.paused
    assert await store.record_heartbeat(first.task_id, first.token, {"at": 3}, 30) == "paused"
    assert await store.retry_activity(first, FAILURE, 0.0)
    # Parked by the retry itself: no worker is woken for it.
    assert await store.next_due(["q"], ("activity",)) == NEVER_DUE
    assert await store.claim_activity_tasks(["q"], "w", 30, 10) == []
    assert await store.set_activity_paused("run-1", 1, False) is not None
    second = await claim(store)
    assert second.attempt == 2 and second.heartbeat == {"at": 3}
    # Paused again while attempt 2 runs: its result is still taken.
    await store.set_activity_paused("run-1", 1, True)
    done = h.activity_completed(1, '"ok"', 2, [])
    assert await store.complete_activity(second, done)
    assert (await store.pending_work("run-1")).activities == []


async def test_a_hand_back_of_a_paused_attempt_is_parked_uncounted(
    open_store: Any, clock: FakeClock
) -> None:
    store = await open_store()
    await schedule(store, clock)
    first = await claim(store)
    await store.set_activity_paused("run-1", 1, True)
    assert await store.hand_back(first, 0.0, {"type": "ActivityPaused", "message": "paused"})
    parked = await state(store)
    assert parked.attempt == 0 and parked.paused and not parked.running
    assert await store.next_due(["q"], ("activity",)) == NEVER_DUE
    assert await store.claim_activity_tasks(["q"], "w", 30, 10) == []
    await store.set_activity_paused("run-1", 1, False)
    assert (await claim(store)).attempt == 1


async def test_a_lost_attempt_of_a_paused_activity_is_parked_by_the_claim(
    open_store: Any, clock: FakeClock
) -> None:
    """The attempt's worker died while its activity was paused: the claim
    that finds the lease run out records the attempt as lost and parks the
    task, with no attempt started."""
    store = await open_store()
    await schedule(store, clock)
    t0 = clock.now
    first = await claim(store, lease=5)
    await store.set_activity_paused("run-1", 1, True)
    clock.advance(6)
    assert await store.claim_activity_tasks(["q"], "w2", 30, 10) == []
    parked = await state(store)
    assert parked.paused and not parked.running and parked.attempt == 1
    assert [(a["attempt"], a["error"]["type"]) for a in parked.attempts] == [(1, "LeaseExpired")]
    assert await store.next_due(["q"], ("activity",)) == NEVER_DUE
    # Its worker, back, finds the lease gone.
    assert await store.record_heartbeat(first.task_id, first.token, None, 30) == "lost"
    assert not await store.retry_activity(first, FAILURE, 0.0)
    await store.set_activity_paused("run-1", 1, False)
    second = await claim(store, "w2")
    assert second.attempt == 2 and second.started_at == t0 + 6
    assert [a["attempt"] for a in second.attempts] == [1]


async def test_a_lost_attempt_of_a_paused_and_cancelled_activity_is_not_parked(
    open_store: Any, clock: FakeClock
) -> None:
    """Cancelled by its workflow too (a turn set cancel_requested): nobody
    will unpause it for its workflow's sake, so the claim returns the task,
    whose worker records the cancellation (ActivityRunner.run), instead of
    parking it; a workflow that waits for it to end then goes on."""
    store = await open_store()
    await schedule(store, clock)
    await claim(store, lease=5)
    await store.set_activity_paused("run-1", 1, True)

    async def cancel(tx: Any) -> None:
        await tx.execute("UPDATE tasks SET cancel_requested = 1 WHERE kind = 'activity'", ())

    await store._write(cancel)  # type: ignore[attr-defined]
    clock.advance(6)
    [found] = await store.claim_activity_tasks(["q"], "w2", 30, 10)
    assert found.cancel_requested and found.paused


async def test_a_paused_task_of_a_limited_queue_uses_no_start(
    open_store: Any, clock: FakeClock
) -> None:
    """A claim of a queue with limits that parks a lost paused attempt does
    not count it as a start in the queue's window."""
    store = await open_store()
    await schedule(store, clock)
    await claim(store, lease=5)
    await store.set_queue_limits("q", QueueLimitsRecord(max_running=5, max_starts=1, per=60.0))
    await store.set_activity_paused("run-1", 1, True)
    clock.advance(6)
    assert await store.claim_activity_tasks(["q"], "w2", 30, 10, limited=True) == []
    await store.set_activity_paused("run-1", 1, False)
    [task] = await store.claim_activity_tasks(["q"], "w2", 30, 10, limited=True)
    assert task.attempt == 2


async def test_attempts_count_from_one_again_only_while_none_holds_the_task(
    open_store: Any, clock: FakeClock
) -> None:
    store = await open_store()
    await schedule(store, clock)
    first = await claim(store)
    await store.set_activity_paused("run-1", 1, True)
    refused = await store.set_activity_paused("run-1", 1, False, reset_attempts=True)
    assert refused is not None and refused.state == "running" and refused.task.paused
    assert (await state(store)).paused  # (nothing changed)
    assert await store.retry_activity(first, FAILURE, 0.0)
    assert await store.set_activity_paused("run-1", 1, False, reset_attempts=True) is not None
    again: ActivityTask = await claim(store)
    assert again.attempt == 1 and [a["attempt"] for a in again.attempts] == [1]


async def test_what_is_not_pending_cannot_be_paused(open_store: Any, clock: FakeClock) -> None:
    store = await open_store()
    await schedule(store, clock)
    assert await store.set_activity_paused("run-1", 2, True) is None
    assert await store.set_activity_paused("no-such-run", 1, True) is None
    first = await claim(store)
    assert await store.complete_activity(first, h.activity_completed(1, '"ok"', 1, []))
    assert await store.set_activity_paused("run-1", 1, True) is None


async def test_a_queue_counts_its_paused_activities_apart(
    open_store: Any, clock: FakeClock
) -> None:
    """Store.queues: a paused activity that no attempt runs is counted as
    paused, not as waiting or backing off; one whose attempt runs, as
    running."""
    store = await open_store()
    await schedule(store, clock)
    first = await claim(store)
    await store.set_activity_paused("run-1", 1, True)
    [q] = await store.queues("q")
    assert (q.running, q.waiting, q.backing_off, q.paused) == (1, 0, 0, 0)
    assert q.paused_activities == []  # (its attempt runs: not held back yet)
    assert await store.retry_activity(first, FAILURE, 5.0)
    [q] = await store.queues("q")
    assert (q.running, q.waiting, q.backing_off, q.paused) == (0, 0, 0, 1)
    assert q.waiting_by_priority == {}
    assert q.paused_activities == [("wf-1", "run-1", 1, "charge")]
    await store.set_activity_paused("run-1", 1, False)
    [q] = await store.queues("q")
    assert (q.running, q.waiting, q.backing_off, q.paused) == (0, 1, 0, 0)


async def test_an_unpause_with_a_delay_is_due_that_much_later(
    open_store: Any, clock: FakeClock
) -> None:
    # (An unpause's jitter: the handle draws the delay, the store applies it.)
    store = await open_store()
    await schedule(store, clock)
    assert await store.retry_activity(await claim(store), FAILURE, 3600.0)  # an hour's backoff
    await store.set_activity_paused("run-1", 1, True)
    await store.set_activity_paused("run-1", 1, False, delay=90.0)
    waiting = await state(store)
    assert not waiting.paused and waiting.due_at == clock.now + 90.0
    clock.advance(89)
    assert await store.claim_activity_tasks(["q"], "w", 30, 10) == []
    clock.advance(1)
    assert (await claim(store)).attempt == 2
