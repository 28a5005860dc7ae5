"""PostgreSQL reads the turn loads made together in one read
(postgres_loads): each caller must get exactly what a load of its own
(SqlStore.load_turn) gives, and what fails for one run must fail that
caller alone."""

from __future__ import annotations

import asyncio
from typing import Any

import pg_testdb
import pytest
from store_helpers import FakeClock, claim_one, leased_charge, new_run, schedule_charge, turn

from perdure import _history as h
from perdure._store import postgres_loads
from perdure._store.postgres import PostgresStore
from perdure._store.sqlstore import SqlStore
from perdure.errors import StoreError, WorkflowNotFoundError

RUNS = 12


@pytest.fixture
async def store(pg_database: pg_testdb.TestDatabase) -> Any:
    opened = PostgresStore(pg_database.fresh_url(), clock=FakeClock())
    await opened.open()
    yield opened
    await opened.close()


@pytest.fixture
def reads(store: PostgresStore) -> list[int]:
    """How many loads each read of the batcher answered."""
    counted: list[int] = []
    read = store._loads._read

    async def spy(queries: Any) -> Any:
        counted.append(len(queries[1][1][0]))  # (the events query's callers)
        return await read(queries)

    store._loads._read = spy
    return counted


async def runs_with_history(store: PostgresStore, runs: int = RUNS) -> list[str]:
    """Runs with a first turn recorded (an activity scheduled), every third
    one with a signal waiting in its inbox."""
    made = []
    for i in range(runs):
        run_id = f"run-{i}"
        await store.create_run(new_run(wid=run_id, run_id=run_id), "fail")
        task = await claim_one(store, run_id)
        commit = await turn(
            store, task, [schedule_charge(1)], activities=[leased_charge(1, f"{run_id}/1")]
        )
        assert await store.commit_turn(commit)
        if i % 3 == 0:
            await store.deliver(run_id, None, h.SignalReceived(name="go", payload=i))
        made.append(run_id)
    return made


async def made_with_history(store: PostgresStore, reads: list[int], runs: int = RUNS) -> list[str]:
    """runs_with_history, the reads counted from then on."""
    run_ids = await runs_with_history(store, runs)
    reads.clear()
    return run_ids


async def test_loads_made_together_are_one_read_and_each_gets_its_own(
    store: PostgresStore, reads: list[int]
) -> None:
    run_ids = await made_with_history(store, reads)
    asked = [(run_id, i % 3) for i, run_id in enumerate(run_ids)]  # (after seq 0, 1 or 2)
    asked += [(run_ids[0], 0), (run_ids[0], 2)]  # one run twice, from two points

    got = await asyncio.gather(*(store.load_turn(r, after) for r, after in asked))

    assert reads == [len(asked)]
    for (run_id, after), data in zip(asked, got, strict=True):
        assert data == await SqlStore.load_turn(store, run_id, after), (run_id, after)
        assert [e.seq for e in data.events] == [s for s in range(after + 1, 4)]
    assert [len(d.inbox) for d in got[:RUNS]] == [1 if i % 3 == 0 else 0 for i in range(RUNS)]


async def test_what_fails_for_one_run_fails_that_caller_alone(
    store: PostgresStore, reads: list[int]
) -> None:
    run_ids = await made_with_history(store, reads, 4)
    broken = run_ids[1]

    async def corrupt(tx: Any) -> None:
        await tx.execute(
            "UPDATE events SET data = 'not json' WHERE run_id = ? AND seq = 2", (broken,)
        )

    await store._write(corrupt)

    got = await asyncio.gather(
        *(store.load_turn(r, 0) for r in [*run_ids, "no-such-run"]), return_exceptions=True
    )

    assert reads == [5]
    assert isinstance(got[1], h.HistoryFormatError)
    assert isinstance(got[4], WorkflowNotFoundError)
    for run_id, data in zip([run_ids[0], *run_ids[2:]], [got[0], *got[2:4]], strict=True):
        assert data == await SqlStore.load_turn(store, run_id, 0)


async def test_more_callers_than_a_batch_take_more_reads(
    store: PostgresStore, reads: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(postgres_loads, "MOST", 4)
    run_ids = await made_with_history(store, reads, 10)

    got = await asyncio.gather(*(store.load_turn(r, 0) for r in run_ids))

    assert reads == [4, 4, 2]
    assert [d.run.run_id for d in got] == run_ids
    assert all(len(d.events) == 3 for d in got)


async def test_a_cancelled_caller_costs_the_others_nothing(
    store: PostgresStore, reads: list[int]
) -> None:
    run_ids = await made_with_history(store, reads, 5)
    loads = [asyncio.create_task(store.load_turn(r, 0)) for r in run_ids]
    await asyncio.sleep(0)  # (each task has asked; the batch has not run yet)
    loads[2].cancel()

    got = await asyncio.gather(*loads, return_exceptions=True)

    assert isinstance(got[2], asyncio.CancelledError)
    assert reads == [4]  # (the cancelled caller was left out of the read)
    assert [d.run.run_id for d in [*got[:2], *got[3:]]] == [*run_ids[:2], *run_ids[3:]]


async def test_a_failed_read_fails_its_callers_and_the_next_load_reads_again(
    store: PostgresStore,
) -> None:
    run_ids = await runs_with_history(store, 3)
    read = store._loads._read

    async def failing(queries: Any) -> Any:
        raise StoreError("the server went away")

    store._loads._read = failing
    got = await asyncio.gather(*(store.load_turn(r, 0) for r in run_ids), return_exceptions=True)
    assert [str(e) for e in got] == ["the server went away"] * 3

    store._loads._read = read
    again = await store.load_turn(run_ids[0], 0)
    assert again == await SqlStore.load_turn(store, run_ids[0], 0)
