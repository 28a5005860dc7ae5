"""New runs handed to an in-process worker (Store.take_new_runs), on every backend.

A run created while a worker of this process serves its queue has its first
workflow task leased to that worker in the creating commit: the worker runs the
turn at once, nobody needs waking, and no poll can claim the task meanwhile.
Whatever does not fit (no free slot, a delayed start, an id conflict, another
queue) goes the ordinary way.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from store_helpers import FakeClock, new_run, turn

from perdure import _history as h
from perdure._store.base import WORK, Store, WorkflowTask
from perdure.errors import WorkflowAlreadyStartedError


class Taker:
    def __init__(self, free: bool = True) -> None:
        self.free = free
        self.reserved = 0
        self.taken: list[WorkflowTask | None] = []

    def reserve(self) -> tuple[str, float] | None:
        if not self.free:
            return None
        self.reserved += 1
        return "me", 30.0

    def take(self, task: WorkflowTask | None) -> None:
        self.reserved -= 1
        self.taken.append(task)


def wakes(store: Store) -> list[int]:
    count = [0]

    def heard() -> None:
        count[0] += 1

    store.add_listener(heard, (WORK,))
    return count


async def test_a_new_run_s_first_turn_is_leased_to_the_taker(open_store: Any) -> None:
    store = await open_store()
    taker = Taker()
    store.take_new_runs("q", taker)
    woken = wakes(store)
    await store.create_run(new_run(), "fail")
    [task] = taker.taken
    assert task is not None and (task.run_id, task.attempt) == ("run-1", 1)
    assert taker.reserved == 0 and woken == [0]
    # Leased: no poll can claim it, and its token fences a turn like a claimed one.
    assert await store.claim_workflow_tasks(["q"], "other", 30, 10) == []
    assert await store.commit_turn(await turn(store, task))
    stale = dataclasses.replace(task, token="not-the-lease")
    assert not await store.commit_turn(await turn(store, stale))


async def test_the_leased_first_task_carries_what_its_turn_would_read(open_store: Any) -> None:
    store = await open_store()
    taker = Taker()
    store.take_new_runs("q", taker)
    await store.create_run(new_run(), "fail")
    [task] = taker.taken
    assert task is not None and task.first_turn is not None
    assert task.first_turn == await store.load_turn("run-1", 0)
    [(_, started)] = task.first_turn.inbox
    assert isinstance(started, h.WorkflowStarted)
    assert (started.workflow_type, started.run_id, started.args) == ("t", "run-1", [1])


async def test_what_the_taker_cannot_take_goes_the_ordinary_way(
    open_store: Any, clock: FakeClock
) -> None:
    store = await open_store()
    busy = Taker(free=False)
    store.take_new_runs("q", busy)
    woken = wakes(store)
    await store.create_run(new_run(), "fail")
    assert busy.taken == [] and woken == [1]
    [claimed] = await store.claim_workflow_tasks(["q"], "w", 30, 10)
    assert claimed.run_id == "run-1"

    taker = Taker()
    store.take_new_runs("q", taker)  # the latest worker of the queue is asked
    delayed = dataclasses.replace(new_run(wid="wf-2", run_id="run-2"), start_at=clock.now + 60)
    await store.create_run(delayed, "fail")
    await store.create_run(new_run(wid="wf-3", run_id="run-3", queue="elsewhere"), "fail")
    assert taker.taken == []  # a delayed start and another queue: not offered

    with pytest.raises(WorkflowAlreadyStartedError):
        await store.create_run(new_run(wid="wf-1", run_id="run-4"), "fail")
    assert taker.taken == [None] and taker.reserved == 0  # the slot came back

    store.stop_taking_new_runs("q", busy)  # not the current taker: no effect
    await store.create_run(new_run(wid="wf-5", run_id="run-5"), "fail")
    assert [t.run_id for t in taker.taken if t is not None] == ["run-5"]
    store.stop_taking_new_runs("q", taker)
    await store.create_run(new_run(wid="wf-6", run_id="run-6"), "fail")
    assert len(taker.taken) == 2
