"""Both backends apply the commonest starts of one group commit together
(sqlstart.StartPlan): a new run whose first turn this process computed, or
one queued for any worker. The rows must be exactly those the starts'
bodies write, each caller must get the record and the task ids the body
would have given it, and a workflow id that is in use (or started twice in
one group) must cost the other starts nothing."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pg_testdb
import pytest
from store_helpers import FakeClock, child_start, new_run
from test_sqlite_plans import _all_rows
from test_store_new_runs import LEASED, SCHEDULE, Taker, first_turn, wakes

from perdure import _history as h
from perdure._store import postgres, sqlitetx, store_for_url
from perdure._store.base import NewChild, NewRun, RunRecord, TurnCommit, TurnInput
from perdure._store.postgres import PostgresStore
from perdure._store.postgres_group import GROUPS
from perdure._store.sqlstart import StartPlan
from perdure._store.sqlstore import SqlStore
from perdure.errors import WorkflowAlreadyStartedError

RUNS = GROUPS + 5  # (on PostgreSQL the first GROUPS writes of a burst go alone)
TIMER = h.StartTimer(ref=2, fire_at=500.0)


@pytest.fixture(params=["sqlite", "postgres"])
async def fresh_store(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock
) -> AsyncIterator[Callable[[], Any]]:
    """A factory of stores, each on a database of its own, or (``same_as``)
    on another one's (another process)."""
    opened: list[SqlStore] = []
    urls: dict[int, str] = {}

    async def make(same_as: SqlStore | None = None) -> SqlStore:
        if same_as is not None:
            url = urls[id(same_as)]
        elif request.param == "postgres":
            database: pg_testdb.TestDatabase = request.getfixturevalue("pg_database")
            url = database.fresh_url()
        else:
            url = f"sqlite:///{tmp_path / f'store-{len(opened)}.db'}"
        store = store_for_url(url, clock=clock)
        assert isinstance(store, SqlStore)
        await store.open()
        opened.append(store)
        urls[id(store)] = url
        return store

    yield make
    for store in opened:
        await store.close()


@pytest.fixture
def applied(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many StartPlans each application was given (either backend; on
    SQLite 0 for a round whose plans tripped a fence: its bodies ran)."""
    counts: list[int] = []
    run_plans, apply_starts = sqlitetx.run_plans, postgres.apply_starts

    def sqlite_spy(conn: Any, batch: Any) -> Any:
        count = sum(type(job.plan) is StartPlan for job in batch)
        got = run_plans(conn, batch)
        if count:
            counts.append(0 if got is None else count)
        return got

    async def pg_spy(tx: Any, starts: Any, parents: Any = ()) -> Any:
        counts.append(len(starts))
        return await apply_starts(tx, starts, parents)

    monkeypatch.setattr(sqlitetx, "run_plans", sqlite_spy)
    monkeypatch.setattr(postgres, "apply_starts", pg_spy)
    return counts


def _news(shape: str, clock: FakeClock) -> list[NewRun]:
    news = [new_run(f"wf-{i}", f"run-{i}") for i in range(RUNS)]
    if shape == "queued, delayed":
        news = [dataclasses.replace(n, start_at=clock.now + 60) for n in news]
    # Every other run has an execution timeout: a timer of its own (ref 0).
    return [
        dataclasses.replace(n, execution_timeout=3600.0) if i % 2 else n for i, n in enumerate(news)
    ]


def _taker(shape: str) -> tuple[Taker | None, list[TurnCommit]]:
    """The taker of ``shape``'s starts, and the first turns it computes."""
    commits: list[TurnCommit] = []
    if shape == "first turn":  # an activity leased here: nobody to wake
        compute = first_turn([SCHEDULE], activities=[LEASED])
    elif shape == "first turn, queued work":  # an activity for any worker, a timer
        queued = dataclasses.replace(LEASED, lease=None)
        compute = first_turn(
            [SCHEDULE, TIMER], activities=[queued], timers=[(2, 500.0)], holder="me"
        )
    elif shape == "first turn, children":  # two children, queued for any worker
        compute = _with_children
    else:
        return None, commits  # a client process's starts: queued for any worker

    def computed(first: TurnInput) -> TurnCommit:
        commits.append(compute(first))
        return commits[-1]

    return Taker(turns=computed), commits


def _kid(run_id: str, ref: int) -> tuple[h.StartChild, NewChild]:
    """Child ``ref`` of ``run_id`` ("<run id>-kid-<ref>", queue "kids")."""
    kid = f"{run_id}-kid-{ref}"
    return child_start(ref, kid, kid, workflow_type="k", policy="terminate")


def _with_children(first: TurnInput, kid: Callable[[str, int], Any] = _kid) -> TurnCommit:
    """A first turn that starts children 1 and 2 (``kid`` makes each)."""
    starts = [kid(first.run.run_id, ref) for ref in (1, 2)]
    return first_turn([c for c, _ in starts], children=[k for _, k in starts])(first)


SHAPES = [
    "first turn",
    "first turn, queued work",
    "first turn, children",
    "queued",
    "queued, delayed",
]


@pytest.mark.parametrize("shape", SHAPES)
async def test_starts_together_write_exactly_what_their_bodies_write(
    fresh_store: Callable[[], Any], clock: FakeClock, applied: list[int], shape: str
) -> None:
    seen: dict[str, Any] = {}
    for name in ("together", "bodies"):
        store = await fresh_store()
        store.applies_start_plans = name == "together"
        taker, commits = _taker(shape)
        if taker is not None:
            store.take_new_runs("q", taker)
        woken = wakes(store)
        applied.clear()
        made: list[tuple[RunRecord, bool]] = await asyncio.gather(
            *(store.create_run(new, "fail") for new in _news(shape, clock))
        )
        assert [created for _, created in made] == [True] * RUNS
        if isinstance(store, postgres.PostgresStore):
            assert sum(applied) == (RUNS - GROUPS if name == "together" else 0), applied
            assert store._writes.grouped == 1  # (the burst's rest went as one)
        else:
            assert sum(applied) == (RUNS if name == "together" else 0), applied
        rows = await _all_rows(store)
        records = [record for record, _ in made]
        # Each caller was told its row's id, and the taker its activities' task ids.
        parents = [row for row in rows["runs"] if row[3] != "k"]  # (not a child)
        assert {r.run_id: r.row_id for r in records} == {row[1]: row[0] for row in parents}
        tasks = {c.run_id: c.created_tasks for c in commits}
        if shape == "first turn":  # (each activity leased here)
            assert tasks == {task[3]: {1: task[0]} for task in rows["tasks"]}
        # The rest must be alike, but the ids: concurrent transactions take
        # them in any order on PostgreSQL (the burst's first writes go alone).
        seen[name] = (
            [dataclasses.replace(r, row_id=0) for r in records],
            taker and (taker.settled, taker.taken, taker.reserved),
            woken[0] > 0,
            _without_ids(rows),
        )
    assert seen["together"] == seen["bodies"]
    _, _, woke, rows = seen["together"]
    assert woke == (shape != "first turn")
    turn_timers = RUNS if shape == "first turn, queued work" else 0
    assert len(rows["timers"]) == RUNS // 2 + turn_timers
    if shape == "first turn, children":  # (each parent told of both, its task queued)
        assert len(rows["runs"]) == 3 * RUNS
        told = [r for r in rows["inbox"] if "ChildWorkflowStarted" in r[1]]
        assert sorted(r[0] for r in told) == sorted(f"run-{i}" for i in range(RUNS) for _ in "12")
        assert len(rows["tasks"]) == 3 * RUNS


_IDS = {"runs", "tasks", "inbox"}  # the tables whose first column is an identity


def _without_ids(rows: dict[str, list[tuple[Any, ...]]]) -> dict[str, list[tuple[Any, ...]]]:
    return {
        table: sorted(row[1:] if table in _IDS else row for row in found)
        for table, found in rows.items()
    }


@pytest.mark.parametrize("shape", ["first turn", "queued"])
@pytest.mark.parametrize("fault", ["open run's id", "closed run's id", "same id twice"])
async def test_a_used_workflow_id_costs_the_other_starts_nothing(
    fresh_store: Callable[[], Any], clock: FakeClock, applied: list[int], shape: str, fault: str
) -> None:
    # (Only the plans' fence stops a closed run's id: the unique index on
    # PostgreSQL holds open runs only.)
    store = await fresh_store()
    await store.create_run(new_run("wf-used", "run-old"), "fail")
    if fault == "closed run's id":
        await store.terminate("wf-used", None, "for the test")
    taker, _ = _taker(shape)
    if taker is not None:
        store.take_new_runs("q", taker)
    applied.clear()
    # The last starts of the burst go in a group on either backend.
    news = _news(shape, clock)
    if fault != "same id twice":
        news[-1] = dataclasses.replace(news[-1], workflow_id="wf-used")
    else:
        news.append(dataclasses.replace(news[-1], run_id="run-again"))
    answers = await asyncio.gather(
        *(store.create_run(new, "fail") for new in news), return_exceptions=True
    )
    assert applied, "the starts were tried as plans"
    [error] = [a for a in answers if isinstance(a, BaseException)]
    assert isinstance(error, WorkflowAlreadyStartedError)
    if fault != "same id twice":
        assert answers[-1] is error
    else:  # one of the two starts of one new id was created, the other refused
        assert any(a is error for a in answers[-2:])
    rows = await _all_rows(store)
    by_workflow: dict[str, list[str]] = {}
    for run in rows["runs"]:
        by_workflow.setdefault(run[2], []).append(run[1])
    assert by_workflow["wf-used"] == ["run-old"]
    assert all(len(runs) == 1 for runs in by_workflow.values())
    created = {a[0].run_id for a in answers if isinstance(a, tuple)}
    assert len(created) == len(news) - 1
    assert created | {"run-old"} == {run[1] for run in rows["runs"]}
    if taker is not None:
        assert taker.reserved == 0 and taker.settled.count(True) == len(created)
    # Each new run is whole: its rows as its body writes them.
    for run_id in created:
        data = await store.load_turn(run_id, 0)
        shape_of = (len(data.events), len(data.inbox), data.run.version)
        assert shape_of == ((3, 0, 1) if taker is not None else (0, 1, 0)), run_id


async def test_two_stores_racing_to_start_the_same_ids_start_each_once(
    fresh_store: Callable[[], Any], clock: FakeClock, applied: list[int]
) -> None:
    # Two processes' bursts of starts of the same new workflow ids, each
    # burst applied as plans: each id gets one run, and the losing start of
    # each gets the ordinary answer (the id is in use), never a store error.
    first = await fresh_store()
    second = await fresh_store(same_as=first)
    news = _news("queued", clock)
    again = [dataclasses.replace(n, run_id=f"{n.run_id}-b") for n in news]
    answers = await asyncio.gather(
        *(first.create_run(n, "fail") for n in news),
        *(second.create_run(n, "fail") for n in again),
        return_exceptions=True,
    )
    assert applied, "the starts were tried as plans"
    assert [type(a) for a in answers].count(tuple) == RUNS
    assert all(isinstance(a, tuple | WorkflowAlreadyStartedError) for a in answers), answers
    rows = await _all_rows(first)
    assert sorted(run[2] for run in rows["runs"]) == sorted(n.workflow_id for n in news)


async def test_start_plans_also_commit_once_their_statements_are_prepared(
    pg_database: pg_testdb.TestDatabase, clock: FakeClock, applied: list[int]
) -> None:
    # One connection: it sends the plans' statements again and again, and
    # prepares them after the second time (postgres_prepared). A prepared
    # statement's parameters are typed: an array of NULLs (no run has a
    # parent) must still fit them, or every group would fail and run its
    # starts one by one.
    store = PostgresStore(pg_database.fresh_url() + "&pool_max_size=1", clock=clock)
    await store.open()
    try:
        for burst in range(6):
            shape = ["first turn", "queued", "first turn, children"][burst % 3]
            taker, _ = _taker(shape)
            if taker is not None:
                store.take_new_runs("q", taker)
            else:
                store._run_takers.clear()
            news = [
                dataclasses.replace(
                    n, workflow_id=f"{n.workflow_id}-{burst}", run_id=f"{n.run_id}-{burst}"
                )
                for n in _news(shape, clock)
            ]
            applied.clear()
            await asyncio.gather(*(store.create_run(new, "fail") for new in news))
            # The burst's rest went as one group, and as plans.
            assert store._writes.grouped == burst + 1, f"burst {burst} ({shape})"
            assert len(applied) == 1 and applied[0] >= 2, f"burst {burst} ({shape})"
        prepared = [sql for kept in store._statements.values() for sql in kept.names]
        assert any("INSERT INTO runs" in sql and "unnest" in sql for sql in prepared)
    finally:
        await store.close()


async def test_a_childs_used_workflow_id_costs_the_other_starts_nothing(
    fresh_store: Callable[[], Any], clock: FakeClock, applied: list[int]
) -> None:
    """First turns that start children, as plans; one child's id is in use:
    the plans' fence trips, every start is written by its body, and only
    that child's parent is told it could not start (its sibling started)."""
    store = await fresh_store()
    await store.create_run(new_run("wf-used", "run-old"), "fail")
    last = f"run-{RUNS - 1}"  # (the last starts of a burst go in a group on either backend)

    def kid(run_id: str, ref: int) -> tuple[h.StartChild, NewChild]:
        command, child = _kid(run_id, ref)
        if run_id == last and ref == 1:
            command = dataclasses.replace(command, workflow_id="wf-used")
            child = dataclasses.replace(child, workflow_id="wf-used")
        return command, child

    store.take_new_runs("q", Taker(turns=lambda first: _with_children(first, kid)))
    applied.clear()
    made = await asyncio.gather(*(store.create_run(n, "fail") for n in _news("first turn", clock)))

    assert [created for _, created in made] == [True] * RUNS
    assert applied, "the starts were tried as plans"
    rows = await _all_rows(store)
    told: dict[str, list[str]] = {}
    for row in rows["inbox"]:
        event = h.event_from_dict(json.loads(row[2]))
        if isinstance(event, h.ChildWorkflowStarted | h.ChildWorkflowStartFailed):
            told.setdefault(row[1], []).append(type(event).__name__)
    assert told == {
        f"run-{i}": ["ChildWorkflowStarted"] * 2
        if i < RUNS - 1
        else ["ChildWorkflowStartFailed", "ChildWorkflowStarted"]
        for i in range(RUNS)
    }
    kids = sorted(row[2] for row in rows["runs"] if row[3] == "k")
    every = [f"run-{i}-kid-{ref}" for i in range(RUNS) for ref in (1, 2)]
    assert kids == sorted(k for k in every if k != f"{last}-kid-1")
