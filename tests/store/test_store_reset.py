"""The Store contract for resetting an activity (Store.reset_activity): while
no attempt holds its task, its attempts are counted from 1 again and its
next attempt is due now (paused with keep_paused: when it is unpaused);
while one does, that attempt keeps its lease and the request waits in the
activity's options (RESET_REQUESTED) for the claim after it, which takes
the task as attempt 1 and drops the request, whether the attempt failed,
was handed back or was lost; that attempt's next heartbeat says "reset"
(and writes no details). Heartbeat details are kept unless cleared.
Every backend, on a hand-moved clock."""

from __future__ import annotations

from typing import Any

from store_helpers import FakeClock

from perdure import _history as h
from perdure._store.base import NEVER_DUE, RESET_REQUESTED, Store

from test_store_attempts import claim, schedule  # isort: skip

FAILURE = {"type": "ConnectionError", "message": "down"}


async def state(store: Store) -> Any:
    return (await store.pending_work("run-1")).activities[0]


async def test_a_waiting_activity_is_due_now_and_counted_from_one(
    open_store: Any, clock: FakeClock
) -> None:
    store = await open_store()
    await schedule(store, clock)
    for _ in range(2):
        attempt = await claim(store)
        assert await store.retry_activity(attempt, FAILURE, 0.0)
    third = await claim(store)
    assert third.attempt == 3
    assert await store.retry_activity(third, FAILURE, 3600.0)  # an hour's backoff
    assert await store.claim_activity_tasks(["q"], "w", 30, 10) == []
    before = await store.reset_activity("run-1", 1, keep_paused=False, clear_heartbeat=False)
    assert before is not None and before.state == "idle" and before.task.attempt == 3
    waiting = await state(store)
    assert (waiting.attempt, waiting.due_at, waiting.paused) == (0, clock.now, False)
    fresh = await claim(store)
    assert fresh.attempt == 1
    # (the ended attempts' records are kept: they are what happened)
    assert [a["attempt"] for a in fresh.attempts] == [1, 2, 3]
    assert RESET_REQUESTED not in fresh.options


async def test_a_paused_activity_is_unpaused_unless_kept_paused(
    open_store: Any, clock: FakeClock
) -> None:
    store = await open_store()
    await schedule(store, clock)
    assert await store.retry_activity(await claim(store), FAILURE, 3600.0)
    await store.set_activity_paused("run-1", 1, True)
    assert await store.reset_activity("run-1", 1, keep_paused=True, clear_heartbeat=False)
    kept = await state(store)
    assert (kept.attempt, kept.paused, kept.due_at) == (0, True, None)
    assert await store.next_due(["q"], ("activity",)) == NEVER_DUE
    clock.advance(7200)
    assert await store.claim_activity_tasks(["q"], "w", 30, 10) == []
    assert await store.reset_activity("run-1", 1, keep_paused=False, clear_heartbeat=False)
    assert not (await state(store)).paused
    assert (await claim(store)).attempt == 1


async def test_a_running_attempts_failure_is_followed_by_attempt_one(
    open_store: Any, clock: FakeClock
) -> None:
    store = await open_store()
    await schedule(store, clock)
    assert await store.retry_activity(await claim(store), FAILURE, 0.0)
    second = await claim(store)
    assert await store.record_heartbeat(second.task_id, second.token, {"page": 4}, 30) == "ok"
    await store.set_activity_paused("run-1", 1, True)
    held = await store.reset_activity("run-1", 1, keep_paused=False, clear_heartbeat=False)
    assert held is not None and held.state == "running"
    running = await state(store)
    # Its lease and count stand; the request is in its options; unpaused.
    assert running.running and running.attempt == 2 and not running.paused
    assert running.options[RESET_REQUESTED] is True
    options = await store.activity_options(second.task_id, second.token)
    assert options is not None and options[RESET_REQUESTED] is True
    assert await store.record_heartbeat(second.task_id, second.token, {"page": 5}, 30) == "reset"
    assert await store.retry_activity(second, FAILURE, 0.0)
    third = await claim(store)
    assert third.attempt == 1 and RESET_REQUESTED not in third.options
    assert third.heartbeat == {"page": 4}  # (kept)
    assert [a["attempt"] for a in third.attempts] == [1, 2]
    again = await state(store)
    assert RESET_REQUESTED not in again.options  # (dropped from the row too)
    assert await store.retry_activity(third, FAILURE, 0.0)
    assert (await claim(store)).attempt == 2


async def test_a_lost_or_handed_back_attempt_is_followed_by_attempt_one(
    open_store: Any, clock: FakeClock
) -> None:
    store = await open_store()
    await schedule(store, clock)
    first = await claim(store, lease=5)
    assert await store.reset_activity("run-1", 1, keep_paused=False, clear_heartbeat=False)
    clock.advance(6)  # its worker died: the lease runs out
    second = await claim(store, "w2")
    assert second.attempt == 1 and RESET_REQUESTED not in second.options
    assert [(a["attempt"], a["error"]["type"]) for a in second.attempts] == [(1, "LeaseExpired")]
    assert await store.record_heartbeat(first.task_id, first.token, None, 30) == "lost"
    # Handed back (its worker drains) after a reset: uncounted, then attempt 1.
    assert await store.reset_activity("run-1", 1, keep_paused=False, clear_heartbeat=False)
    assert await store.hand_back(second, 0.0)
    assert (await claim(store)).attempt == 1


async def test_kept_paused_under_a_running_attempt_waits_for_the_unpause(
    open_store: Any, clock: FakeClock
) -> None:
    store = await open_store()
    await schedule(store, clock)
    assert await store.retry_activity(await claim(store), FAILURE, 0.0)
    second = await claim(store)
    await store.set_activity_paused("run-1", 1, True)
    assert await store.reset_activity("run-1", 1, keep_paused=True, clear_heartbeat=False)
    assert await store.retry_activity(second, FAILURE, 0.0)  # parked: still paused
    assert await store.claim_activity_tasks(["q"], "w", 30, 10) == []
    await store.set_activity_paused("run-1", 1, False)
    assert (await claim(store)).attempt == 1


async def test_heartbeat_details_are_kept_unless_cleared(open_store: Any, clock: FakeClock) -> None:
    store = await open_store()
    await schedule(store, clock)
    first = await claim(store)
    assert await store.record_heartbeat(first.task_id, first.token, {"page": 9}, 30) == "ok"
    assert await store.retry_activity(first, FAILURE, 3600.0)
    assert await store.reset_activity("run-1", 1, keep_paused=False, clear_heartbeat=False)
    assert (await state(store)).heartbeat == {"page": 9}
    assert await store.reset_activity("run-1", 1, keep_paused=False, clear_heartbeat=True)
    assert (await state(store)).heartbeat is None
    assert (await claim(store)).heartbeat is None


async def test_a_running_attempts_heartbeat_says_reset_and_leaves_the_details(
    open_store: Any, clock: FakeClock
) -> None:
    """The worker stops an attempt whose heartbeat says "reset" and hands its
    task back; the next attempt starts from the details the reset left."""
    store = await open_store()
    await schedule(store, clock)
    first = await claim(store)
    assert await store.record_heartbeat(first.task_id, first.token, {"page": 9}, 30) == "ok"
    assert await store.reset_activity("run-1", 1, keep_paused=False, clear_heartbeat=False)
    assert await store.record_heartbeat(first.task_id, first.token, {"page": 10}, 30) == "reset"
    assert (await state(store)).heartbeat == {"page": 9}  # as the reset found them
    assert await store.hand_back(first, 0.0, {"type": "ActivityReset", "message": "reset"})
    again = await claim(store)
    assert (again.attempt, again.heartbeat) == (1, {"page": 9})
    assert RESET_REQUESTED not in again.options
    assert await store.record_heartbeat(again.task_id, again.token, {"page": 1}, 30) == "ok"
    # Cleared: the heartbeats after the reset do not bring them back.
    assert await store.reset_activity("run-1", 1, keep_paused=False, clear_heartbeat=True)
    assert await store.record_heartbeat(again.task_id, again.token, {"page": 2}, 30) == "reset"
    assert (await state(store)).heartbeat is None
    # Paused as well: "paused" (the task is parked until the unpause).
    await store.set_activity_paused("run-1", 1, True)
    assert await store.record_heartbeat(again.task_id, again.token, {"page": 3}, 30) == "paused"


async def test_a_reset_that_meets_no_attempt_leaves_the_next_heartbeats_alone(
    open_store: Any, clock: FakeClock
) -> None:
    """Reset under an attempt that then failed, and reset again while it
    waits: the second takes effect at once, and the attempt it makes due
    is not stopped at its heartbeats by the first's request."""
    store = await open_store()
    await schedule(store, clock)
    first = await claim(store)
    assert await store.reset_activity("run-1", 1, keep_paused=False, clear_heartbeat=False)
    assert await store.retry_activity(first, FAILURE, 3600.0)
    assert await store.reset_activity("run-1", 1, keep_paused=False, clear_heartbeat=False)
    again = await claim(store)
    assert again.attempt == 1 and RESET_REQUESTED not in again.options
    assert await store.record_heartbeat(again.task_id, again.token, {"page": 1}, 30) == "ok"
    assert (await state(store)).heartbeat == {"page": 1}


async def test_what_is_not_pending_cannot_be_reset(open_store: Any, clock: FakeClock) -> None:
    store = await open_store()
    await schedule(store, clock)
    assert await store.reset_activity("no-such-run", 1, False, False) is None
    first = await claim(store)
    assert await store.complete_activity(first, h.activity_completed(1, '"ok"', 1, []))
    assert await store.reset_activity("run-1", 1, False, False) is None


async def test_a_reset_with_a_delay_is_due_that_much_later(
    open_store: Any, clock: FakeClock
) -> None:
    # (A reset's jitter: the handle draws the delay, the store applies it.)
    store = await open_store()
    await schedule(store, clock)
    assert await store.retry_activity(await claim(store), FAILURE, 3600.0)  # an hour's backoff
    await store.reset_activity("run-1", 1, keep_paused=False, clear_heartbeat=False, delay=90.0)
    waiting = await state(store)
    assert (waiting.attempt, waiting.due_at) == (0, clock.now + 90.0)
    clock.advance(89)
    assert await store.claim_activity_tasks(["q"], "w", 30, 10) == []
    clock.advance(1)
    assert (await claim(store)).attempt == 1
