"""The Store contract for an activity's options changed in flight
(Store.update_activity_options, Store.activity_options): the task's options
and queue change in one transaction with the due time the plan gives; the
schedule_to_close deadline's timer moves with the option (or is made, if the
activity had none), and a firer that finds the deadline moved later arms it
again rather than failing the activity; a plan that raises changes nothing;
an attempt reads the options as they are now, while it holds the task.
Every backend, on a hand-moved clock."""

from __future__ import annotations

from typing import Any

import pytest
from store_helpers import FakeClock, claim_one, new_run, turn

from perdure import _history as h
from perdure._store.base import ActivityState, NewActivity, Store

from test_store_attempts import claim  # isort: skip

RETRY = {"initial_interval": 1.0, "backoff": 2.0, "max_interval": 100.0, "max_attempts": None}
FAILURE = {"type": "ConnectionError", "message": "down"}


async def schedule(store: Store, **options: Any) -> None:
    """Run-1 with one activity (ref 1) scheduled with ``options`` on queue q."""
    await store.create_run(new_run(), "fail")
    task = await claim_one(store, "run-1")
    activity = NewActivity(1, "charge", "q", [], {}, {"retry": dict(RETRY), **options}, None)
    assert await store.commit_turn(await turn(store, task, activities=[activity]))


def setting(**changes: Any) -> Any:
    """A plan that sets ``changes`` (``due``: the next attempt's due time)."""
    due = changes.pop("due", None)

    def plan(state: ActivityState, row_due: float, now: float) -> tuple[dict[str, Any], Any]:
        seen.append((state.state, row_due, now))
        return {**state.task.options, **changes}, due

    seen: list[tuple[str, float, float]] = []
    plan.seen = seen  # type: ignore[attr-defined]
    return plan


async def pending(store: Store) -> Any:
    return (await store.pending_work("run-1")).activities


async def test_options_and_queue_change_together(open_store: Any, clock: FakeClock) -> None:
    store = await open_store()
    await schedule(store, start_to_close_timeout=30.0)
    plan = setting(start_to_close_timeout=90.0)
    before = await store.update_activity_options("run-1", 1, plan, task_queue="q2")
    assert before is not None and before.state == "idle"
    assert before.task.options["start_to_close_timeout"] == 30.0  # (read before the change)
    assert plan.seen == [("idle", clock.now, clock.now)]
    [info] = await pending(store)
    assert info.options["start_to_close_timeout"] == 90.0 and info.task_queue == "q2"
    # Its next attempt comes from the new queue, with the new options.
    assert await store.claim_activity_tasks(["q"], "w", 30, 10) == []
    [task] = await store.claim_activity_tasks(["q2"], "w", 30, 10)
    assert task.options["start_to_close_timeout"] == 90.0 and task.name == "charge"


async def test_the_plans_due_time_moves_the_next_attempt(open_store: Any, clock: FakeClock) -> None:
    store = await open_store()
    await schedule(store)
    assert await store.retry_activity(await claim(store), FAILURE, 3600.0)
    waiting = await store.update_activity_options("run-1", 1, setting(due=clock.now + 5))
    assert waiting is not None and waiting.state == "idle"
    [info] = await pending(store)
    assert info.due_at == clock.now + 5
    clock.advance(4)
    assert await store.claim_activity_tasks(["q"], "w", 30, 10) == []
    clock.advance(1)
    assert (await claim(store)).attempt == 2


async def test_a_plan_that_raises_changes_nothing(open_store: Any, clock: FakeClock) -> None:
    store = await open_store()
    await schedule(store, start_to_close_timeout=30.0)

    def refuse(state: ActivityState, due: float, now: float) -> Any:
        raise ValueError("not a policy")

    with pytest.raises(ValueError, match="not a policy"):
        await store.update_activity_options("run-1", 1, refuse, task_queue="q2")
    [info] = await pending(store)
    assert info.task_queue == "q" and info.options["start_to_close_timeout"] == 30.0
    assert await store.update_activity_options("run-1", 2, setting()) is None  # not pending


async def test_an_attempt_reads_the_options_as_they_are_now(
    open_store: Any, clock: FakeClock
) -> None:
    store = await open_store()
    await schedule(store)
    first = await claim(store)
    assert await store.activity_options(first.task_id, first.token) == first.options
    running = await store.update_activity_options("run-1", 1, setting(heartbeat_timeout=5.0))
    assert running is not None and running.state == "running"
    now = await store.activity_options(first.task_id, first.token)
    assert now is not None and now["heartbeat_timeout"] == 5.0
    assert await store.retry_activity(first, FAILURE, 0.0)
    assert await store.activity_options(first.task_id, first.token) is None  # (its lease went)


async def test_the_deadline_moves_with_schedule_to_close(open_store: Any, clock: FakeClock) -> None:
    store = await open_store()
    t0 = clock.now
    await schedule(store, schedule_to_close_timeout=10.0)
    await store.update_activity_options("run-1", 1, setting(schedule_to_close_timeout=100.0))
    clock.advance(20)  # past the old deadline
    assert await store.fire_due_timers(10) == 0
    assert len(await pending(store)) == 1
    clock.advance(81)  # past the new one, counted from when it was scheduled
    assert await store.fire_due_timers(10) == 1
    assert await pending(store) == []
    [(_, failed)] = (await store.load_turn("run-1", 0)).inbox
    assert isinstance(failed, h.ActivityFailed) and "of 100s" in failed.failure["message"]
    assert clock.now > t0 + 100


async def test_a_deadline_is_made_for_an_activity_that_had_none(
    open_store: Any, clock: FakeClock
) -> None:
    store = await open_store()
    await schedule(store)
    clock.advance(5)
    # Counted from when it was scheduled: it has passed already.
    await store.update_activity_options("run-1", 1, setting(schedule_to_close_timeout=2.0))
    assert await store.fire_due_timers(10) == 1
    assert await pending(store) == []


async def test_a_firer_that_finds_the_deadline_moved_later_arms_it_again(
    open_store: Any, clock: FakeClock
) -> None:
    """The update leaves a timer a firer holds (PostgreSQL) to that firer,
    which reads the deadline from the task's options: here the timer is
    put back at the old deadline by hand, as if a firer had held it."""
    store = await open_store()
    t0 = clock.now
    await schedule(store, schedule_to_close_timeout=10.0)
    await store.update_activity_options("run-1", 1, setting(schedule_to_close_timeout=100.0))

    async def old_deadline(tx: Any) -> None:
        await tx.send(
            "UPDATE timers SET fire_at = ? WHERE run_id = ? AND ref = ?", (t0 + 10, "run-1", -1)
        )

    await store._write(old_deadline)  # type: ignore[attr-defined]
    clock.advance(20)
    assert await store.fire_due_timers(10) == 1  # (fired, and armed again)
    assert len(await pending(store)) == 1 and (await store.load_turn("run-1", 0)).inbox == []
    clock.advance(81)
    assert await store.fire_due_timers(10) == 1
    assert await pending(store) == []
