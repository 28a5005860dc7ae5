"""New runs handed to an in-process worker (Store.take_new_runs), on every backend.

A run created while a worker of this process serves its queue has its first
workflow task leased to that worker in the creating commit: the worker runs the
turn at once, nobody needs waking, and no poll can claim the task meanwhile.
Whatever does not fit (no free slot, a delayed start, an id conflict, another
queue) goes the ordinary way.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from typing import Any

import pytest
from store_helpers import FakeClock, claim_one, new_run, turn

from perdure import _history as h
from perdure._store.base import (
    WORK,
    FirstTurn,
    NewActivity,
    Store,
    TurnCommit,
    TurnInput,
    WorkflowTask,
)
from perdure._store.sqlite import SqliteStore
from perdure._store.sqlrows import Tx
from perdure.errors import WorkflowAlreadyStartedError


class Taker:
    """Takes new runs' leased first tasks; with ``turns``, it computes their
    first turns instead, for the start's commit to write."""

    def __init__(
        self,
        free: bool = True,
        turns: Callable[[TurnInput], TurnCommit] | None = None,
        slots: int | None = None,
    ) -> None:
        self.free = free
        self.turns = turns
        self.slots = slots  # at most this many reserved at once
        self.reserved = 0
        self.taken: list[WorkflowTask | None] = []
        self.prepared: list[TurnInput] = []
        self.settled: list[bool] = []

    def reserve(self) -> tuple[str, float] | None:
        if not self.free or (self.slots is not None and self.reserved >= self.slots):
            return None
        self.reserved += 1
        return "me", 30.0

    def prepare(self, first: TurnInput) -> FirstTurn | None:
        if self.turns is None:
            return None
        self.prepared.append(first)
        return FirstTurn(self.turns(first), self.settled.append)

    def take(self, task: WorkflowTask | None) -> None:
        self.reserved -= 1
        self.taken.append(task)


def first_turn(commands: list[h.Command], **extra: Any) -> Callable[[TurnInput], TurnCommit]:
    """A first turn that consumes WorkflowStarted and issues ``commands``; an
    activity in ``extra`` is leased to the taker ("me")."""

    def compute(first: TurnInput) -> TurnCommit:
        return TurnCommit(
            task=None,
            run_id=first.run.run_id,
            expected_version=first.run.version,
            events=h.turn_events(0, 2.0, [e for _, e in first.inbox], commands),
            consumed_inbox=[],
            fresh=True,
            **extra,
        )

    return compute


SCHEDULE = h.ScheduleActivity(ref=1, name="a", task_queue="q", args=[1], kwargs={}, options={})
LEASED = NewActivity(1, "a", "q", [1], {}, {}, lease=("me", "token-1", 30.0))


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
    assert task is not None and task.turn_input is not None
    assert task.turn_input == await store.load_turn("run-1", 0)
    [(_, started)] = task.turn_input.inbox
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


async def test_a_new_run_s_first_turn_can_go_with_its_start(open_store: Any) -> None:
    # The taker computes the first turn before the run exists; the start's
    # commit writes the run and that turn together: no workflow task, no inbox
    # row, no wake-up, and the activity the turn leased is the taker's.
    store = await open_store()
    taker = Taker(turns=first_turn([SCHEDULE], activities=[LEASED]))
    store.take_new_runs("q", taker)
    woken = wakes(store)
    run, created = await store.create_run(new_run(), "fail")
    assert created and run.version == 1 and run.last_seq == 3
    assert taker.settled == [True] and taker.taken == [None] and taker.reserved == 0
    assert woken == [0]
    data = await store.load_turn("run-1", 0)
    assert [type(e).__name__ for e in data.events] == [
        "TurnStarted",
        "WorkflowStarted",
        "ActivityScheduled",
    ]
    assert data.inbox == [] and data.run.version == 1
    assert await store.claim_workflow_tasks(["q"], "other", 30, 10) == []
    assert await store.claim_activity_tasks(["q"], "other", 30, 10) == []  # leased to "me"


async def test_the_first_turn_reads_what_the_ordinary_way_would(open_store: Any) -> None:
    # What prepare() is given is what the leased first task carries (and what
    # a load would read), but for the database's own row and inbox ids.
    # The arguments as JSON gives them back (a tuple comes back a list), and
    # the run's input and the event's arguments are objects of their own.
    inputs = {"args": [(1, 2), {"k": 1.5}], "kwargs": {"x": [None, "é"]}}
    store = await open_store()
    ordinary = Taker()
    store.take_new_runs("q", ordinary)
    await store.create_run(
        dataclasses.replace(new_run(wid="wf-a", run_id="run-a"), **inputs), "fail"
    )
    [task] = ordinary.taken
    assert task is not None and task.turn_input is not None
    computing = Taker(turns=first_turn([SCHEDULE]))
    store.take_new_runs("q", computing)
    await store.create_run(
        dataclasses.replace(new_run(wid="wf-b", run_id="run-b"), **inputs), "fail"
    )
    [given] = computing.prepared
    [(_, started)] = given.inbox
    assert isinstance(started, h.WorkflowStarted)
    assert started.args == [[1, 2], {"k": 1.5}] and started.kwargs == {"x": [None, "é"]}
    assert given.run.input == {"args": started.args, "kwargs": started.kwargs}
    assert started.args is not given.run.input["args"]
    assert started.kwargs is not given.run.input["kwargs"]

    def same(data: TurnInput, run_id: str) -> Any:
        run = dataclasses.replace(data.run, run_id=run_id, workflow_id="wf", row_id=0)
        events = [dataclasses.replace(e, run_id=run_id, workflow_id="wf") for _, e in data.inbox]
        return run, events

    assert same(given, "x") == same(task.turn_input, "x")


async def test_a_computed_first_turn_frees_its_slot_before_the_commit(open_store: Any) -> None:
    # A burst of starts beyond the taker's slots: each first turn is computed
    # at its start and frees its slot at once, so every one of them goes with
    # its start's commit (none is left for a poll to claim).
    store = await open_store()
    taker = Taker(turns=first_turn([SCHEDULE]), slots=1)
    store.take_new_runs("q", taker)
    runs = await asyncio.gather(
        *(store.create_run(new_run(f"wf-{i}", f"run-{i}"), "fail") for i in range(4))
    )
    assert [created for _, created in runs] == [True] * 4
    assert len(taker.prepared) == 4 and taker.settled == [True] * 4
    assert taker.taken == [None] * 4 and taker.reserved == 0
    assert await store.claim_workflow_tasks(["q"], "other", 30, 10) == []
    for i in range(4):
        turn = await store.load_turn(f"run-{i}", 0)
        assert [type(e).__name__ for e in turn.events][-1] == "ActivityScheduled"


async def test_a_first_turn_that_ends_the_run_goes_with_its_start(open_store: Any) -> None:
    store = await open_store()
    complete = h.CompleteWorkflow(result=5)
    taker = Taker(turns=first_turn([complete], close_status="completed", result=5))
    store.take_new_runs("q", taker)
    heard: list[str] = []
    store.add_run_listener("run-1", lambda: heard.append("run-1"))
    run, _ = await store.create_run(new_run(), "fail")
    assert (run.status, run.result) == ("completed", 5)
    assert taker.settled == [True] and taker.reserved == 0
    # Its waiter here is woken and has the ended run without a read.
    assert heard and store.ended_here("run-1") == run
    assert await store.claim_workflow_tasks(["q"], "other", 30, 10) == []
    assert (await store.load_turn("run-1", 0)).inbox == []


async def test_an_id_in_use_drops_the_computed_first_turn(open_store: Any) -> None:
    store = await open_store()
    await store.create_run(new_run(), "fail")  # wf-1, before any taker
    taker = Taker(turns=first_turn([SCHEDULE], activities=[LEASED]))
    store.take_new_runs("q", taker)
    with pytest.raises(WorkflowAlreadyStartedError):
        await store.create_run(new_run(run_id="run-2"), "fail")
    # Its slot came back once the turn was computed; the slot reserved again,
    # for the leased task a new run would have had, came back with the error.
    assert taker.settled == [False] and taker.taken == [None, None] and taker.reserved == 0
    existing, created = await store.create_run(new_run(run_id="run-3"), "use_existing")
    assert (existing.run_id, created) == ("run-1", False)
    assert taker.settled == [False, False] and taker.reserved == 0
    # Replacing the run: the new one is created the ordinary way (the turn was
    # computed before the id was known to be taken), its first task leased.
    replaced, created = await store.create_run(new_run(run_id="run-4"), "terminate_existing")
    assert created and replaced.run_id == "run-4"
    assert taker.settled == [False, False, False]
    assert [t.run_id for t in taker.taken if t is not None] == ["run-4"]
    assert (await store.load_turn("run-4", 0)).events == []  # its turn is still to run


async def test_a_first_turn_that_cannot_be_written_gives_its_slot_back(open_store: Any) -> None:
    # Whatever fails between the turn's computation and the commit (here, an
    # event that cannot be encoded) hands the slot back and drops the turn.
    store = await open_store()
    unencodable = h.CompleteWorkflow(result={1, 2})  # a set: not JSON
    taker = Taker(turns=first_turn([unencodable], close_status="completed"))
    store.take_new_runs("q", taker)
    with pytest.raises(TypeError):
        await store.create_run(new_run(), "fail")
    assert taker.settled == [False] and taker.taken == [None] and taker.reserved == 0
    assert await store.get_run("wf-1") is None  # nothing was written


async def test_a_first_turn_written_with_its_start_leaves_the_row_a_claimed_one_would(
    open_store: Any,
) -> None:
    # A run that stays open after a first turn computed at its start is
    # inserted with that turn's outcome (one statement, not an INSERT and an
    # UPDATE): its row must be the one the ordinary way leaves, a claimed
    # first task's turn, column for column but for the columns naming it.
    store = await open_store()
    extra: dict[str, Any] = {"state": {"phase": "b", "n": 2.5}, "waiting": {"signals": ["go"]}}
    timeout = {"execution_timeout": 60.0}
    ordinary = dataclasses.replace(new_run(wid="wf-a", run_id="run-a"), **timeout)
    await store.create_run(ordinary, "fail")
    task = await claim_one(store, "run-a")
    commit = await turn(store, task, [SCHEDULE], **extra)
    assert await store.commit_turn(commit)
    taker = Taker(turns=first_turn([SCHEDULE], **extra))
    store.take_new_runs("q", taker)
    started, created = await store.create_run(
        dataclasses.replace(new_run(wid="wf-b", run_id="run-b"), **timeout), "fail"
    )
    assert created and taker.settled == [True]
    rows = {run_id: await _row(store, run_id) for run_id in ("run-a", "run-b")}
    naming = {"id", "run_id", "workflow_id"}
    assert {k: v for k, v in rows["run-b"].items() if k not in naming} == {
        k: v for k, v in rows["run-a"].items() if k not in naming
    }
    assert rows["run-b"]["version"] == 1 and rows["run-b"]["last_seq"] == 3
    # What create_run returned is that row, read back.
    assert (started.version, started.state, started.waiting) == (
        1,
        extra["state"],
        extra["waiting"],
    )
    # Both have their execution-timeout timer, due at the same moment.
    timers = await _all(store, "SELECT run_id, ref, fire_at FROM timers ORDER BY run_id")
    assert [(r, ref) for r, ref, _ in timers] == [("run-a", 0), ("run-b", 0)]
    assert timers[0][2] == timers[1][2] == started.deadline


_COLUMNS = {
    True: "SELECT name FROM pragma_table_info('runs') ORDER BY cid",
    False: "SELECT column_name FROM information_schema.columns"
    " WHERE table_name = 'runs' AND table_schema = current_schema() ORDER BY ordinal_position",
}


async def _all(store: Store, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    async def body(tx: Tx) -> list[tuple[Any, ...]]:
        return await tx.all(sql, params)

    return await store._read(body)  # type: ignore[attr-defined,no-any-return]


async def _row(store: Store, run_id: str) -> dict[str, Any]:
    names = [row[0] for row in await _all(store, _COLUMNS[isinstance(store, SqliteStore)])]
    [found] = await _all(store, f"SELECT {', '.join(names)} FROM runs WHERE run_id = ?", (run_id,))
    return dict(zip(names, found, strict=True))


async def test_what_a_start_returns_is_its_row_as_read(open_store: Any, clock: FakeClock) -> None:
    # create_run builds the new run's record itself (only the row's id comes
    # back from the INSERT): it must equal what a read gives, field for
    # field, for every shape of start: queued, leased to a taker, with a first
    # turn that leaves the run open (with state, a signal waited for and an
    # execution timeout), and with one that ends it (read back).
    store = await open_store()
    timeout = {"execution_timeout": 60.0}
    extra: dict[str, Any] = {"state": {"phase": "b", "n": 2.5}, "waiting": {"signals": ["go"]}}
    returned = [await store.create_run(new_run(wid="wf-q", run_id="run-q"), "fail")]
    delayed = dataclasses.replace(new_run(wid="wf-d", run_id="run-d"), start_at=clock.now + 60)
    returned.append(await store.create_run(delayed, "fail"))
    store.take_new_runs("q", Taker())
    returned.append(await store.create_run(new_run(wid="wf-l", run_id="run-l"), "fail"))
    store.take_new_runs("q", Taker(turns=first_turn([SCHEDULE], activities=[LEASED], **extra)))
    with_turn = dataclasses.replace(new_run(wid="wf-t", run_id="run-t"), **timeout)
    returned.append(await store.create_run(with_turn, "fail"))
    complete = h.CompleteWorkflow(result={"n": 5})
    store.take_new_runs("q", Taker(turns=first_turn([complete], close_status="completed")))
    returned.append(await store.create_run(new_run(wid="wf-c", run_id="run-c"), "fail"))
    # An id in use, with "use_existing": the existing run, as read.
    returned.append(await store.create_run(new_run(wid="wf-q", run_id="run-x"), "use_existing"))
    assert [created for _, created in returned] == [True] * 5 + [False]
    for run, _ in returned:
        assert run == await store.get_run(run.workflow_id, run.run_id)
    ids = [run.row_id for run, _ in returned[:5]]
    assert ids == sorted(ids) and len(set(ids)) == 5 and ids[0] > 0
    assert returned[3][0].version == 1 and returned[3][0].state == extra["state"]
    assert returned[3][0].deadline == clock.now + 60
    assert returned[4][0].status == "completed"
