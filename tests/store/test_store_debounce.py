"""The Store contract for debounced starts (Client.debounce, docs/workflows.md
"Debouncing"): calls of one key and workflow type make one run while no
worker has taken it, pushed back by each call (but not past its max_delay)
and holding the last call's arguments; a call after a worker took it makes
another; calls at once from two connections make one run."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from store_helpers import FakeClock, claim_one, new_run, turn

from perdure import _history as h
from perdure._store.base import NewRun, Store


def call(clock: FakeClock, n: int, delay: float = 10.0, **changes: Any) -> NewRun:
    """The run the n-th debounce call of a client would create (due ``delay``
    from now, as Client.debounce sets it), with argument ``n``."""
    made = new_run(f"wf-{n}", f"run-{n}")
    return dataclasses.replace(made, args=[n], start_at=clock.now + delay, **changes)


async def first_due(store: Store) -> float | None:
    """When the first workflow task of queue "q" is due."""
    return await store.next_due(["q"], ("workflow",))


async def started_args(store: Store, run_id: str) -> list[Any]:
    data = await store.load_turn(run_id, 0)
    [(_, started)] = data.inbox
    assert isinstance(started, h.WorkflowStarted)
    assert data.run.input["args"] == started.args
    return started.args


async def test_calls_of_a_key_make_one_run_with_the_last_arguments(
    open_store: Any, clock: FakeClock
) -> None:
    store: Store = await open_store()
    first, created = await store.debounce(call(clock, 1), "user-7", 10.0, None)
    assert created and first.run_id == "run-1"
    clock.advance(6)
    again, created = await store.debounce(call(clock, 2), "user-7", 10.0, None)
    assert not created and again.run_id == "run-1" and again.input["args"] == [2]
    assert await started_args(store, "run-1") == [2]
    assert await first_due(store) == clock.now + 10  # 16 s after the first call
    # Another key, and another workflow type with the same key, are runs of their own.
    _, other_key = await store.debounce(call(clock, 3), "user-8", 10.0, None)
    typed = dataclasses.replace(call(clock, 4), workflow_type="other")
    _, other_type = await store.debounce(typed, "user-7", 10.0, None)
    assert other_key and other_type
    clock.advance(10)
    await claim_one(store, "run-1")
    assert await started_args(store, "run-1") == [2]
    assert (await store.get_run("wf-2", None)) is None  # (the second call made no run)


async def test_no_push_goes_past_max_delay(open_store: Any, clock: FakeClock) -> None:
    store: Store = await open_store()
    began = clock.now
    await store.debounce(call(clock, 1), "k", 10.0, 25.0)
    dues = []
    for n in range(2, 6):  # calls 8 s apart: each would push it 10 s further
        clock.advance(8)
        run, created = await store.debounce(call(clock, n), "k", 10.0, 25.0)
        assert not created and run.run_id == "run-1"
        dues.append(await first_due(store))
    # 25 s after the first call at the latest; the fourth push, 32 s after
    # it, leaves it due at once, with the last call's arguments.
    assert dues == [began + 18, began + 25, began + 25, clock.now]
    await claim_one(store, "run-1")
    assert await started_args(store, "run-1") == [5]


async def test_a_call_after_a_worker_took_the_run_starts_another(
    open_store: Any, clock: FakeClock
) -> None:
    store: Store = await open_store()
    await store.debounce(call(clock, 1), "k", 10.0, None)
    clock.advance(10)
    task = await claim_one(store, "run-1")
    # Taken (its first turn computing): the next call begins another burst.
    second, created = await store.debounce(call(clock, 2), "k", 10.0, None)
    assert created and second.run_id == "run-2"
    assert await store.commit_turn(await turn(store, task))
    third, created = await store.debounce(call(clock, 3), "k", 10.0, None)
    assert not created and third.run_id == "run-2"
    clock.advance(10)
    task = await claim_one(store, "run-2")
    assert await started_args(store, "run-2") == [3]
    # A run whose first turn is recorded is not pending any more, even with
    # its task free again: a call starts another.
    assert await store.commit_turn(await turn(store, task))
    _, created = await store.debounce(call(clock, 4), "k", 10.0, None)
    assert created


async def test_a_call_after_the_run_was_cancelled_starts_another(
    open_store: Any, clock: FakeClock
) -> None:
    store: Store = await open_store()
    await store.debounce(call(clock, 1), "k", 10.0, None)
    await store.deliver("wf-1", None, h.SignalReceived(name="extra", payload=1))
    # A signal to the pending run leaves it pending: the call moves it.
    again, created = await store.debounce(call(clock, 2), "k", 10.0, None)
    assert not created and again.run_id == "run-1"
    await store.deliver("wf-1", None, h.CancelRequested(reason="not wanted"))
    third, created = await store.debounce(call(clock, 3), "k", 10.0, None)
    assert created and third.run_id == "run-3"
    data = await store.load_turn("run-1", 0)
    assert [type(e).__name__ for _, e in data.inbox] == [
        "WorkflowStarted", "SignalReceived", "CancelRequested",
    ]  # fmt: skip


async def test_the_execution_timeout_moves_with_the_start(
    open_store: Any, clock: FakeClock
) -> None:
    store: Store = await open_store()
    first, _ = await store.debounce(call(clock, 1, execution_timeout=60.0), "k", 10.0, None)
    assert first.deadline == clock.now + 60
    clock.advance(4)
    pushed, _ = await store.debounce(call(clock, 2, execution_timeout=60.0), "k", 10.0, None)
    assert pushed.deadline == first.deadline + 4
    found = await store.get_run("wf-1", None)
    assert found is not None and found.deadline == pushed.deadline


async def test_calls_at_once_from_two_connections_make_one_run(
    open_store: Any, clock: FakeClock
) -> None:
    one: Store = await open_store()
    two: Store = await open_store()
    calls = [
        (one if n % 2 else two).debounce(call(clock, n), "burst", 10.0, None) for n in range(12)
    ]
    made = await asyncio.gather(*calls)
    assert len({run.run_id for run, _ in made}) == 1
    assert [created for _, created in made].count(True) == 1
    [run_id] = {run.run_id for run, _ in made}
    assert await started_args(one, run_id) in [[n] for n in range(12)]
