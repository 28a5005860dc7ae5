"""Held timers, on both backends: a timer names the worker whose turn started
it (TurnCommit.timer_holder), the worker that keeps the run's instance and
takes the timer in itself when it falls due. Another worker's firing leaves
it to that worker until HELD_TIMER_GRACE past its due time; the holder's own
firing, and anyone's for a timer nobody holds, take it when it is due.
next_due tells each worker when its firing would take the earliest timer."""

from __future__ import annotations

from typing import Any

from store_helpers import FakeClock, claim_one, new_run, turn

from perdure import _history as h
from perdure._store.base import HELD_TIMER_GRACE, Store

DUE_IN = 30.0


async def asleep(store: Store, clock: FakeClock, run_id: str, holder: str | None) -> float:
    """A run whose first turn started timer 1, held by ``holder``: its due time."""
    await store.create_run(new_run(wid=run_id, run_id=run_id), "fail")
    task = await claim_one(store, run_id)
    due = clock.now + DUE_IN
    commit = await turn(
        store, task, [h.StartTimer(ref=1, fire_at=due)], timers=[(1, due)], timer_holder=holder
    )
    assert await store.commit_turn(commit)
    return due


async def holders(store: Any) -> dict[str, str | None]:
    rows = await store._read(lambda tx: tx.all("SELECT run_id, holder FROM timers"))
    return dict(rows)


async def inboxes(store: Any) -> list[str]:
    rows = await store._read(lambda tx: tx.all("SELECT DISTINCT run_id FROM inbox"))
    return sorted(row[0] for row in rows)


async def test_a_timer_names_its_holder(open_store: Any, clock: FakeClock) -> None:
    store = await open_store()
    await asleep(store, clock, "held", "worker-a")
    await asleep(store, clock, "unheld", None)
    assert await holders(store) == {"held": "worker-a", "unheld": None}


async def test_another_worker_takes_a_held_timer_only_after_the_grace(
    open_store: Any, clock: FakeClock
) -> None:
    store = await open_store()
    due = await asleep(store, clock, "held", "worker-a")
    await asleep(store, clock, "unheld", None)
    clock.now = due + HELD_TIMER_GRACE / 2
    # Worker b fires what nobody holds, and leaves a's timer to a.
    assert await store.fire_due_timers(10, worker="worker-b") == 1
    assert await inboxes(store) == ["unheld"]
    assert await holders(store) == {"held": "worker-a"}
    assert await store.fire_due_timers(10) == 0  # (a firer that names nobody alike)
    clock.now = due + HELD_TIMER_GRACE
    assert await store.fire_due_timers(10, worker="worker-b") == 1  # a did not come
    assert await inboxes(store) == ["held", "unheld"]
    assert await holders(store) == {}


async def test_the_holder_takes_its_own_timer_when_it_is_due(
    open_store: Any, clock: FakeClock
) -> None:
    """The holder's own firing (its instance evicted, say) does not wait."""
    store = await open_store()
    due = await asleep(store, clock, "held", "worker-a")
    clock.now = due - 0.001
    assert await store.fire_due_timers(10, worker="worker-a") == 0  # not yet due
    clock.now = due
    assert await store.fire_due_timers(10, worker="worker-a") == 1
    assert await inboxes(store) == ["held"]


async def test_next_due_counts_from_when_the_worker_may_take_the_timer(
    open_store: Any, clock: FakeClock
) -> None:
    store = await open_store()
    start = clock.now
    due = await asleep(store, clock, "held", "worker-a")
    assert await store.next_due(["q"], (), "worker-a") == due
    assert await store.next_due(["q"], (), "worker-b") == due + HELD_TIMER_GRACE
    assert await store.next_due(["q"], ()) == due + HELD_TIMER_GRACE
    # A timer nobody holds, due after the grace, does not come first for b...
    clock.now = start + 2 * HELD_TIMER_GRACE
    await asleep(store, clock, "after", None)
    assert await store.next_due(["q"], (), "worker-b") == due + HELD_TIMER_GRACE
    # ...one due within it does.
    clock.now = start + HELD_TIMER_GRACE / 2
    within = await asleep(store, clock, "within", None)
    assert due < within < due + HELD_TIMER_GRACE
    assert await store.next_due(["q"], (), "worker-b") == within
    assert await store.next_due(["q"], (), "worker-a") == due
