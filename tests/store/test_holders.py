"""Held runs and timers, on both backends: a turn names the worker that
keeps its run's instance (TurnCommit.holder) in the run's row and in the
rows of the timers it starts. Another worker's claim of the run's workflow
task, or firing of such a timer, leaves it to that worker until HELD_GRACE
past its due time; the holder's own claim or firing, and anyone's for what
nobody holds, take it when it is due. next_due tells each worker when its
claim or firing would take the earliest task or timer."""

from __future__ import annotations

from typing import Any

import pytest
from store_helpers import FakeClock, claim_one, new_run, turn

from perdure import _history as h
from perdure._store.base import HELD_GRACE, Store

DUE_IN = 30.0


async def asleep(store: Store, clock: FakeClock, run_id: str, holder: str | None) -> float:
    """A run whose first turn started timer 1, held by ``holder``: its due time."""
    await store.create_run(new_run(wid=run_id, run_id=run_id), "fail")
    task = await claim_one(store, run_id)
    due = clock.now + DUE_IN
    commit = await turn(
        store, task, [h.StartTimer(ref=1, fire_at=due)], timers=[(1, due)], holder=holder
    )
    assert await store.commit_turn(commit)
    return due


async def holders(store: Any, table: str = "timers") -> dict[str, str | None]:
    rows = await store._read(lambda tx: tx.all(f"SELECT run_id, holder FROM {table}"))
    return dict(rows)


async def waiting(store: Store, run_id: str, holder: str | None) -> None:
    """A run whose first turn (held by ``holder``) left it waiting."""
    await store.create_run(new_run(wid=run_id, run_id=run_id), "fail")
    task = await claim_one(store, run_id)
    assert await store.commit_turn(await turn(store, task, holder=holder))


async def signalled(store: Store, run_id: str) -> float:
    """Wake a waiting run with a signal: when its workflow task became due."""
    await store.deliver(run_id, None, h.SignalReceived(name="go", payload=1))
    [(at,)] = await store._read(  # type: ignore[attr-defined]
        lambda tx: tx.all("SELECT visible_at FROM tasks WHERE run_id = ?", (run_id,))
    )
    return float(at)


async def claimed(store: Store, worker: str) -> list[str]:
    return sorted(t.run_id for t in await store.claim_workflow_tasks(["q"], worker, 30, 10))


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
    clock.now = due + HELD_GRACE / 2
    # Worker b fires what nobody holds, and leaves a's timer to a.
    assert await store.fire_due_timers(10, worker="worker-b") == 1
    assert await inboxes(store) == ["unheld"]
    assert await holders(store) == {"held": "worker-a"}
    assert await store.fire_due_timers(10) == 0  # (a firer that names nobody alike)
    clock.now = due + HELD_GRACE
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
    assert await store.next_due(["q"], (), "worker-b") == due + HELD_GRACE
    assert await store.next_due(["q"], ()) == due + HELD_GRACE
    # A timer nobody holds, due after the grace, does not come first for b...
    clock.now = start + 2 * HELD_GRACE
    await asleep(store, clock, "after", None)
    assert await store.next_due(["q"], (), "worker-b") == due + HELD_GRACE
    # ...one due within it does.
    clock.now = start + HELD_GRACE / 2
    within = await asleep(store, clock, "within", None)
    assert due < within < due + HELD_GRACE
    assert await store.next_due(["q"], (), "worker-b") == within
    assert await store.next_due(["q"], (), "worker-a") == due


async def test_a_run_names_the_worker_that_holds_it(open_store: Any) -> None:
    store = await open_store()
    await waiting(store, "held", "worker-a")
    await waiting(store, "unheld", None)
    assert await holders(store, "runs") == {"held": "worker-a", "unheld": None}


@pytest.mark.parametrize("first", ["the holder", "another worker"])
async def test_another_worker_claims_a_held_runs_task_only_after_the_grace(
    open_store: Any, clock: FakeClock, first: str
) -> None:
    store = await open_store()
    await waiting(store, "held", "worker-a")
    await waiting(store, "unheld", None)
    due = await signalled(store, "held")
    await signalled(store, "unheld")
    if first == "the holder":
        assert await claimed(store, "worker-a") == ["held", "unheld"]
        return
    assert await claimed(store, "worker-b") == ["unheld"]
    clock.now = due + HELD_GRACE / 2
    assert await claimed(store, "worker-b") == []
    clock.now = due + HELD_GRACE
    assert await claimed(store, "worker-b") == ["held"]  # a did not come


async def test_next_due_counts_from_when_the_worker_may_claim_the_task(
    open_store: Any, clock: FakeClock
) -> None:
    store = await open_store()
    for run_id, holder in (("held", "worker-a"), ("after", None), ("within", None)):
        await waiting(store, run_id, holder)
    start = clock.now
    due = await signalled(store, "held")
    kinds = ("workflow",)
    assert await store.next_due(["q"], kinds, "worker-a") == due
    assert await store.next_due(["q"], kinds, "worker-b") == due + HELD_GRACE
    assert await store.next_due(["q"], kinds) == due + HELD_GRACE
    # A task of a run nobody holds, due after the grace, does not come first
    # for b (the signal that wakes it arrives after the grace)...
    clock.now = start + 2 * HELD_GRACE
    await signalled(store, "after")
    assert await store.next_due(["q"], kinds, "worker-b") == due + HELD_GRACE
    # ...one due within it does.
    clock.now = start + HELD_GRACE / 2
    within = await signalled(store, "within")
    assert due < within < due + HELD_GRACE
    assert await store.next_due(["q"], kinds, "worker-b") == within
    assert await store.next_due(["q"], kinds, "worker-a") == due
