"""Client.delete_closed_runs (and ``perdure delete-closed``): a retention job
deletes the runs that closed before a time with every row of theirs (the
history, the streams, the search attributes' index), oldest first, in
batches; it never touches an open run, nor a closed run whose child still
runs. On every backend; "later" is a second client whose clock runs two
days ahead."""

from __future__ import annotations

import sqlite3
import time
from datetime import timedelta

import pytest
from e2e_helpers import fast_worker, wait_until

import perdure
from perdure import workflow

DAY = 86_400.0


@workflow.defn
async def filed(n: int) -> int:
    workflow.set_search_attributes({"ledger": "eu"})
    workflow.write_stream("log", n)
    return n


@workflow.defn
async def waits() -> str:
    return str(await workflow.wait_signal("go"))


@workflow.defn
async def parent_of_a_waiter() -> str:
    await workflow.start_child(waits, id="the-child", parent_close_policy="abandon")
    return "left its child running"


async def test_closed_runs_go_with_their_rows_open_ones_and_parents_of_open_ones_stay(
    db_url: str, client: perdure.Client, backend: str
) -> None:
    async with fast_worker(client, [filed, waits, parent_of_a_waiter], []):
        for n in range(3):
            assert await client.execute(filed, n, id=f"filed-{n}", timeout=10) == n
        open_run = await client.start(waits, id="still-open")
        parent = await client.start(parent_of_a_waiter, id="the-parent")
        assert await parent.result(timeout=10) == "left its child running"
        child = client.get_handle("the-child")

        async def child_waits() -> bool:
            return (await child.describe()).waiting_signals == ["go"]

        await wait_until(child_waits, what="the child's wait")
        later = await perdure.Client.connect(db_url, clock=lambda: time.time() + 2 * DAY)
        try:
            # Nothing closed three days before "later"'s now.
            assert await later.delete_closed_runs(timedelta(days=3)) == 0
            assert len(await client.list(search_attributes={"ledger": "eu"})) == 3
            # Closed a day before: the three filed runs, one per batch.
            assert await later.delete_closed_runs(timedelta(days=1), batch=1) == 3
        finally:
            await later.close()
        for n in range(3):
            with pytest.raises(perdure.WorkflowNotFoundError):
                await client.get_handle(f"filed-{n}").describe()
        assert await client.list(search_attributes={"ledger": "eu"}) == []
        # The open run, and the closed parent of a running child, stay.
        assert (await open_run.describe()).status == "running"
        assert (await parent.describe()).status == "completed"
        await open_run.signal("go", "still here")
        assert await open_run.result(timeout=10) == "still here"
        await child.signal("go", 1)
        assert await child.result(timeout=10) == "1"
    # Once the child has ended, its parent goes too; so do the others now closed.
    assert await client.delete_closed_runs(timedelta(0)) == 3
    assert await client.list() == []
    if backend == "sqlite":  # (and no row of theirs is left anywhere)
        with sqlite3.connect(db_url.removeprefix("sqlite:///")) as db:
            for table in ("runs", "events", "streams", "stream_heads", "run_attributes"):
                assert db.execute(f"SELECT count(*) FROM {table}").fetchone() == (0,), table


async def test_bad_arguments_are_refused(client: perdure.Client) -> None:
    for bad in (timedelta(seconds=-1), 30, None):
        with pytest.raises(ValueError, match="older_than must be a timedelta of 0 or more"):
            await client.delete_closed_runs(bad)  # type: ignore[arg-type]
    for batch in (0, 10_001, True):
        with pytest.raises(ValueError, match="batch must be an int from 1 to 10,000"):
            await client.delete_closed_runs(timedelta(days=1), batch=batch)


@workflow.defn
async def naps(n: int) -> int:
    for _ in range(3):
        await workflow.sleep(timedelta(milliseconds=20))
    return n


async def test_deleting_while_workers_commit_leaves_every_other_run_whole(
    client: perdure.Client,
) -> None:
    """Batches of deletes between a busy worker's commits: every run is
    either gone whole (it had closed) or still there whole, history and
    result readable, and the open ones all finish."""
    async with fast_worker(client, [naps, filed], []):
        done = [await client.start(filed, n, id=f"early-{n}") for n in range(30)]
        for handle in done:
            await handle.result(timeout=20)
        busy = [await client.start(naps, n, id=f"busy-{n}") for n in range(40)]
        deleted, passes = 0, 0

        async def ended(handle: perdure.WorkflowHandle[int]) -> bool:
            try:
                return (await handle.describe()).status == "completed"
            except perdure.WorkflowNotFoundError:
                return True  # (it had closed, and a batch took it)

        while True:  # (at least one pass: the busy runs may all have ended already)
            deleted += await client.delete_closed_runs(timedelta(0), batch=7)
            passes += 1
            if all([await ended(h) for h in busy]):
                break
            assert passes < 10_000, "the busy runs never ended"
        results = []
        for handle in busy:
            try:
                results.append(await handle.result(timeout=20))
                assert (await handle.history())[-1]["type"] == "WorkflowCompleted"
            except perdure.WorkflowNotFoundError:
                results.append(None)  # (it had closed, and a batch took it)
    assert deleted >= 30  # (the early runs, and any busy run that closed in time)
    assert deleted == 30 + results.count(None)
    assert [r for r in results if r is not None] == [
        n for n, r in enumerate(results) if r is not None
    ]
    assert len(await client.list(limit=1000)) == 70 - deleted
