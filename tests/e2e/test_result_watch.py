"""Result waiters whose runs are ended by another process (here: another
client with its own store, which is all a process boundary changes for
wake-ups). The client's result watch checks every awaited run in one query
when the other process commits, so many waiters do not each re-read their
run on every foreign commit; and it is the safety net when no wake-up comes."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from e2e_helpers import fast_worker

import perdure
from perdure import activity, workflow


@activity.defn
async def tick(i: int) -> int:
    return i


@workflow.defn
async def ticks(n: int) -> int:
    total = 0
    for i in range(n):
        total += await tick(i)
    return total


def count_calls(store: Any, counts: Counter[str], *names: str) -> None:
    for name in names:
        method = getattr(store, name)

        async def counted(*args: Any, _method: Any = method, _name: str = name) -> Any:
            counts[_name] += 1
            return await _method(*args)

        setattr(store, name, counted)


async def test_waiters_in_another_process_are_woken_by_one_check(
    client: perdure.Client, db_url: str
) -> None:
    waiter = await perdure.Client.connect(db_url)
    waiter.poll_interval = 5.0  # the timed safety net stays out of the way
    counts: Counter[str] = Counter()
    count_calls(waiter.store, counts, "get_run", "ended_runs")
    try:
        handles = [await waiter.start(ticks, 5, task_queue="far") for _ in range(40)]
        results = [asyncio.ensure_future(h.result(timeout=60)) for h in handles]
        await asyncio.sleep(0.2)  # every waiter has read its open run once
        async with fast_worker(client, [ticks], [tick], task_queue="far"):
            assert await asyncio.gather(*results) == [10] * 40
    finally:
        await waiter.close()
    # Each waiter read its run when it began and once it was woken. The many
    # foreign commits (6 per workflow) did not wake all 40 waiters every time:
    # on SQLite, which only learns that another process committed something,
    # the watch checked the waited runs in one query each time; PostgreSQL's
    # NOTIFYs name the runs that ended, and only their waiters woke.
    assert counts["get_run"] <= 2 * 40 + 10, counts
    if db_url.startswith("postgresql"):
        assert counts["ended_runs"] == 0, counts
    else:
        assert counts["ended_runs"] >= 1, counts


async def test_the_watch_is_the_safety_net_when_no_wake_up_comes(
    client: perdure.Client, db_url: str
) -> None:
    waiter = await perdure.Client.connect(db_url)
    waiter.poll_interval = 0.05
    waiter.store.notify = lambda *topics: None  # type: ignore[method-assign]  # all wake-ups lost
    try:
        handle = await waiter.start(ticks, 3, task_queue="far")
        result = asyncio.ensure_future(handle.result(timeout=30))
        async with fast_worker(client, [ticks], [tick], task_queue="far"):
            assert await result == 3
    finally:
        await waiter.close()


async def test_a_run_ended_in_this_process_is_waited_for_without_reads(
    client: perdure.Client,
) -> None:
    # execute() listens before its start commits, so the start's own record is
    # its first look; the closing commit hands its waiters the ended run.
    counts: Counter[str] = Counter()
    count_calls(client.store, counts, "get_run")
    async with fast_worker(client, [ticks], [tick]):
        assert await client.execute(ticks, 3) == 3
        assert counts["get_run"] == 0
        # A handle's result() begins listening only when called: one first read.
        handle = await client.start(ticks, 4)
        assert await handle.result(timeout=10) == 6
        assert counts["get_run"] == 1
        # A start that finds the id in use waits for the run it found.
        assert await client.execute(ticks, 2, id="once") == 1
        assert await client.execute(ticks, 9, id="once", id_conflict="use_existing") == 1
