"""PostgreSQL applies a group commit's inline steps, plain closes (an
inline step's or a claimed workflow task's) and claimed tasks' turns that
start activities and timers together (postgres_plans): the turns that come
with a Plan, a ClosePlan or a ClaimedPlan
(sqlplans.plan_turn, plan_close) are written by one statement per kind, fed
by arrays. The rows must be exactly those the turns' bodies write; a tripped
fence must cost the other turns nothing (the group is rolled back and every
body runs alone)."""

from __future__ import annotations

import asyncio
from typing import Any

import pg_testdb
import psycopg
import pytest
from store_helpers import (
    FakeClock,
    wait_for,
)
from test_sqlite_plans import (
    _all_rows,
    _close,
    _continuation,
    _encoded,
    _first_activities,
    _rows,
    assert_closed_alike,
    assert_untouched,
    claimed_closes,
    claimed_turns,
    closes_to_apply,
    faulty,
    without_task_ids,
)

from perdure._store import postgres
from perdure._store.postgres import PostgresStore
from perdure._store.postgres_group import GROUPS
from perdure._store.sqlclaimed import plan_claimed
from perdure._store.sqlplans import plan_turn

RUNS = GROUPS + 5  # the first GROUPS writes of a burst go alone, the rest as a group


async def _open(database: pg_testdb.TestDatabase, clock: FakeClock) -> PostgresStore:
    store = PostgresStore(database.fresh_url(), clock=clock)
    await store.open()
    return store


@pytest.fixture
def applied(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many plans each call of apply_plans had."""
    calls: list[int] = []
    apply_plans = postgres.apply_plans

    async def spy(tx: Any, plans: Any) -> None:
        calls.append(len(plans))
        await apply_plans(tx, plans)

    monkeypatch.setattr(postgres, "apply_plans", spy)
    return calls


async def test_plans_write_exactly_what_the_bodies_write(
    pg_database: pg_testdb.TestDatabase, applied: list[int]
) -> None:
    rows = {}
    for name in ("together", "bodies"):
        clock = FakeClock()
        store = await _open(pg_database, clock)
        if name == "bodies":
            store.applies_plans = False  # (no plan is built: every turn is its body)
        ids = await _first_activities(store, RUNS)
        commits = [await _continuation(store, r, t) for r, t in ids.items()]
        assert all(plan_turn(c, clock(), _encoded(c)) is not None for c in commits)
        applied.clear()
        results = await asyncio.gather(*(store.commit_turn(c) for c in commits))
        assert results == [True] * RUNS
        assert [c.created_tasks for c in commits] == [{2: t} for t in ids.values()]
        assert applied == ([RUNS - GROUPS] if name == "together" else [])
        assert store._writes.grouped == 1  # (plans or bodies, the burst's rest went as one)
        rows[name] = await _rows(store)
        await store.close()
    assert rows["together"] == rows["bodies"]
    assert len(rows["bodies"]["events"]) == RUNS * (3 + 3)  # the first turn's, the continuation's


@pytest.mark.parametrize("fault", ["stale version", "lost lease", "same run twice"])
async def test_a_tripped_fence_costs_the_other_turns_nothing(
    pg_database: pg_testdb.TestDatabase, applied: list[int], fault: str
) -> None:
    store = await _open(pg_database, FakeClock())
    ids = await _first_activities(store, RUNS)
    before = await _rows(store)
    commits = [await _continuation(store, r, t) for r, t in ids.items()]
    bad_run, bad_task = list(ids.items())[-1]  # (the last: it goes in the group)
    if fault == "stale version":
        commits[-1] = await _continuation(store, bad_run, bad_task, stale=True)
    elif fault == "lost lease":
        commits[-1] = await _continuation(store, bad_run, bad_task, token="not-mine")
    else:  # a second turn of the first run, from the same version: only one can win
        bad_run, bad_task = next(iter(ids.items()))
        commits.append(await _continuation(store, bad_run, bad_task))

    results = await asyncio.gather(*(store.commit_turn(c) for c in commits))

    assert applied and applied[0] >= 2  # the plans were tried together, and failed
    assert store._writes.grouped == 0  # so every body ran alone
    after = await _rows(store)
    if fault == "same run twice":
        assert results == [True] * RUNS + [False]
        assert len(after["events"]) == len(before["events"]) + 3 * RUNS
    else:
        assert results == [True] * (RUNS - 1) + [False]
        assert_untouched(before, after, bad_run)
        assert len(after["events"]) == len(before["events"]) + 3 * (RUNS - 1)
        assert commits[-1].created_tasks == {}
    await store.close()


@pytest.mark.parametrize("claimed", [False, True], ids=["inline", "claimed"])
async def test_closes_write_exactly_what_the_bodies_write(
    pg_database: pg_testdb.TestDatabase, applied: list[int], claimed: bool
) -> None:
    rows = {}
    seen: dict[str, list[Any]] = {}
    for name in ("together", "bodies"):
        clock = FakeClock()
        store = await _open(pg_database, clock)
        if name == "bodies":
            store.applies_close_plans = False
        ids, commits = await closes_to_apply(store, RUNS, clock(), claimed)
        results = await asyncio.gather(*(store.commit_turn(c) for c in commits))
        assert results == [True] * RUNS
        assert store._writes.grouped == 1
        seen[name] = [store.ended_here(r) for r in ids]
        rows[name] = await _all_rows(store)
        await store.close()
    assert_closed_alike(rows, seen, RUNS)
    assert rows["bodies"]["inbox"] == []  # (the signals the claimed closes consumed went)


@pytest.mark.parametrize("claimed", [False, True], ids=["inline", "claimed"])
@pytest.mark.parametrize("fault", ["stale version", "lost lease", "a signal came"])
async def test_a_tripped_close_costs_the_other_turns_nothing(
    pg_database: pg_testdb.TestDatabase, fault: str, claimed: bool
) -> None:
    store = await _open(pg_database, FakeClock())
    ids = await _first_activities(store, RUNS, leftovers=True)
    make = await claimed_closes(store, ids) if claimed else _close
    # (the last run's turn fails: the last writes of a burst go in the group)
    commits, bad_run = await faulty(store, ids, make, fault, -1)
    before = await _all_rows(store)

    results = await asyncio.gather(*(store.commit_turn(c) for c in commits))

    assert results == [True] * (RUNS - 1) + [False]
    assert store._writes.grouped == 0  # the group was rolled back: every body ran alone
    after = await _all_rows(store)
    assert_untouched(before, after, bad_run)
    assert sum(1 for r in after["runs"] if "completed" in r) == RUNS - 1
    await store.close()


async def test_claimed_turns_write_exactly_what_the_bodies_write(
    pg_database: pg_testdb.TestDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    apply_claimed = postgres.apply_claimed

    async def spy(tx: Any, plans: Any, requeued: Any) -> None:
        calls.append(len(plans))
        await apply_claimed(tx, plans, requeued)

    monkeypatch.setattr(postgres, "apply_claimed", spy)
    rows = {}
    told = {}
    for name in ("together", "bodies"):
        clock = FakeClock()
        store = await _open(pg_database, clock)
        ids = await _first_activities(store, RUNS)
        make = await claimed_turns(store, ids)
        commits = [await make(store, r, t) for r, t in ids.items()]
        assert all(plan_claimed(c, clock(), _encoded(c)) is not None for c in commits)
        if name == "bodies":
            store.applies_plans = False
        store._writes.grouped = 0
        calls.clear()
        results = await asyncio.gather(*(store.commit_turn(c) for c in commits))
        assert results == [True] * RUNS
        assert store._writes.grouped == 1
        assert calls == ([RUNS - GROUPS] if name == "together" else [])
        told[name] = [c.created_tasks for c in commits]
        rows[name] = await _all_rows(store)
        await store.close()
    # (The first writes of the burst ran alone, side by side: their new
    # tasks' ids come in any order.)
    together = without_task_ids(rows["together"], told["together"])
    assert together == without_task_ids(rows["bodies"], told["bodies"])
    assert together[1] == [{2: (run_id, 2)} for run_id in ids]
    assert rows["together"]["inbox"] == []


@pytest.mark.parametrize("fault", ["stale version", "lost lease", "a signal came"])
async def test_a_tripped_claimed_turn_costs_the_other_turns_nothing(
    pg_database: pg_testdb.TestDatabase, fault: str
) -> None:
    store = await _open(pg_database, FakeClock())
    ids = await _first_activities(store, RUNS)
    make = await claimed_turns(store, ids)
    # (the last run's turn fails: the last writes of a burst go in the group)
    commits, bad_run = await faulty(store, ids, make, fault, -1)
    before = await _all_rows(store)
    store._writes.grouped = 0

    results = await asyncio.gather(*(store.commit_turn(c) for c in commits))

    after = await _all_rows(store)
    if fault == "a signal came":
        # The group commits every turn, and requeues that one's task for the
        # new signal, as its body would.
        assert store._writes.grouped == 1
        assert results == [True] * RUNS
        (task,) = [t for t in after["tasks"] if t[1] == "workflow"]
        assert (task[3], task[7], task[8]) == (bad_run, None, None)
        return
    assert store._writes.grouped == 0  # the group was rolled back: every body ran alone
    assert results == [True] * (RUNS - 1) + [False]
    assert_untouched(before, after, bad_run)
    assert commits[-1].created_tasks == {}


async def test_a_group_that_waits_for_a_held_row_gives_way_to_the_bodies(
    pg_database: pg_testdb.TestDatabase,
) -> None:
    """A group whose transaction waits for a row lock that another
    transaction holds gives up after GROUP_LOCK_TIMEOUT, and its bodies run
    alone: the turns of other runs commit while the lock is still held (two
    groups waiting for each other's rows, in a cycle, waited for the
    server's deadlock_timeout, a second each), and the turn of the held run
    commits once it is released."""
    url = pg_database.fresh_url()
    store = PostgresStore(url, clock=FakeClock())
    await store.open()
    ids = await _first_activities(store, RUNS)
    before = await _rows(store)
    commits = [await _continuation(store, r, t) for r, t in ids.items()]
    held = list(ids)[-1]  # (the last: its turn goes in the group)
    async with await psycopg.AsyncConnection.connect(url) as other:
        await other.execute(
            "SELECT 1 FROM runs WHERE run_id = %s FOR UPDATE", (held,)
        )  # (psycopg opened a transaction: the row stays locked until the rollback)
        turns = [asyncio.ensure_future(store.commit_turn(c)) for c in commits]
        others = turns[:-1]
        await wait_for(lambda: all(t.done() for t in others), "the other runs' turns", 10.0)
        assert [t.result() for t in others] == [True] * (RUNS - 1)
        assert not turns[-1].done()  # its body waits for the row
        await other.rollback()
    assert await turns[-1]
    assert store._writes.grouped == 0  # the group gave way: every body ran alone
    after = await _rows(store)
    assert len(after["events"]) == len(before["events"]) + 3 * RUNS
    await store.close()
