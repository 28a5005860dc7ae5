"""Schedules on the real clock, on every backend: a schedule whose workers
were away starts one run, for the latest time that passed (not one per
time), counts the others as missed, and goes on. Each time's run is started
once, under its time's id. (The catch-up window is tested in
tests/testing/test_schedules.py, on the virtual clock.)"""

from __future__ import annotations

import asyncio
import math
import sqlite3
import time
from datetime import timedelta

import pytest
from e2e_helpers import fast_worker, wait_until

import perdure
from perdure import activity, workflow
from perdure._schedule_spec import START_ACTIVITY
from perdure._schedule_workflow import _Started, _StartRequest
from perdure.codecs import ZlibCodec


@workflow.defn
async def tick(label: str) -> str:
    return f"{label}@{workflow.now().timestamp():.0f}"


async def test_workers_back_after_an_outage_start_one_run_for_the_latest_time(
    client: perdure.Client,
) -> None:
    schedule = await client.create_schedule("ticker", tick, "t", every=timedelta(seconds=1))
    created = time.time()
    await asyncio.sleep(3.3)  # no worker: three or four times pass
    async with fast_worker(client, [tick], []):
        back = time.time()

        async def three_runs() -> bool:
            return (await schedule.describe()).runs_started >= 3

        await wait_until(three_runs, timeout=15, what="three runs of the schedule")
        described = await schedule.describe()
        done = [await client.get_handle(r.workflow_id).result(timeout=10) for r in described.recent]
    first, *later = described.recent
    # The outage's times: one run, for the latest of them; the rest missed.
    # (A few milliseconds pass between the clock reads here and the store's.)
    assert math.floor(back) <= first.scheduled_at <= back + 1
    passed = first.scheduled_at - math.floor(created)
    assert described.times_missed >= 2
    assert abs(described.times_missed - (passed - 1)) <= 1
    # Then one run a second, each under its own time's id, each run once.
    assert [r.scheduled_at for r in later] == [
        first.scheduled_at + i for i in range(1, len(later) + 1)
    ]
    assert len({r.workflow_id for r in described.recent}) == len(described.recent)
    assert all(r.workflow_id == f"ticker@{_iso(r.scheduled_at)}" for r in described.recent)
    assert all(d.startswith("t@") for d in done)
    assert len(await client.list(workflow="tick")) == described.runs_started


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


async def test_a_schedule_sealed_by_codecs_needs_them_to_be_read(db_url: str) -> None:
    """A schedule made through codecs (its arguments sealed at rest) is
    described by a client with them; one without says which converter it
    needs, and can still pause it and delete it."""
    sealed = await perdure.Client.connect(db_url, converter=perdure.DataConverter([ZlibCodec()]))
    plain = await perdure.Client.connect(db_url)
    try:
        made = await sealed.create_schedule("zipped", tick, "z", every=timedelta(hours=1))
        assert (await made.describe()).every == timedelta(hours=1)
        with pytest.raises(perdure.PayloadCodecError, match="payload codecs this client"):
            await plain.get_schedule("zipped").describe()
        async with fast_worker(sealed, [tick], []):
            await plain.get_schedule("zipped").pause("from a plain client")

            async def paused() -> bool:
                return (await made.describe()).paused

            await wait_until(paused, what="the pause")
        assert (await made.describe()).note == "from a plain client"
        with pytest.raises(perdure.WorkflowNotFoundError, match="no schedule 'nope'"):
            await plain.get_schedule("nope").pause()
        await plain.get_schedule("zipped").delete()
        assert (await made.describe()).status == "terminated"
    finally:
        await sealed.close()
        await plain.close()


@pytest.mark.sqlite_only
async def test_the_last_run_deleted_by_a_retention_job_does_not_stop_the_schedule(
    db_url: str, client: perdure.Client
) -> None:
    """With overlap "skip" the schedule looks at its last run before the next;
    a retention job (docs/operations.md) may have deleted it: not running."""
    schedule = await client.create_schedule("kept", tick, "k", every=timedelta(seconds=1))
    async with fast_worker(client, [tick], []):

        async def started(n: int) -> bool:
            return (await schedule.describe()).runs_started >= n

        await wait_until(lambda: started(1), what="the first run")
        first = (await schedule.describe()).recent[0]
        await client.get_handle(first.workflow_id).result(timeout=10)
        path = db_url.removeprefix("sqlite:///")
        with sqlite3.connect(path, timeout=30) as db:  # (the retention job's statements)
            db.execute("DELETE FROM events WHERE run_id = ?", (first.run_id,))
            db.execute("DELETE FROM runs WHERE run_id = ?", (first.run_id,))
        await wait_until(lambda: started(3), what="two more runs")
        described = await schedule.describe()
    assert all(r.skipped is None for r in described.recent)


async def test_a_schedule_that_stays_behind_still_publishes_what_it_started(
    client: perdure.Client,
) -> None:
    """A schedule whose runs take longer to start than its interval goes
    from one run's start straight to the next time's: describe() must count
    the runs started so far, not those of the last time it caught up.
    (The start activity is replaced by one held until the test lets it go.)"""
    calls: list[str] = []
    release = asyncio.Event()
    free = False  # (set when the test ends, failed or not: no start waits then)

    @activity.defn(name=START_ACTIVITY)
    async def held_start(request: _StartRequest) -> _Started:
        calls.append(request.workflow_id)
        if not free:
            await release.wait()
            release.clear()
        handle = await client.start(
            request.workflow, *request.args, id=request.workflow_id, id_conflict="use_existing"
        )
        return _Started(handle.run_id)

    schedule = await client.create_schedule("behind", tick, "b", every=timedelta(seconds=1))
    async with fast_worker(client, [tick], [held_start]):
        try:
            await wait_until(lambda: _true(len(calls) == 1), what="the first start")
            await asyncio.sleep(1.2)  # the next time comes while the first run starts
            release.set()
            await wait_until(lambda: _true(len(calls) == 2), what="the second start")
            described = await schedule.describe()
            assert described.runs_started == 1
            assert [r.workflow_id for r in described.recent] == calls[:1]
        finally:
            free = True
            release.set()
        await wait_until(lambda: _true(len(calls) >= 3), what="the schedule to go on", timeout=15)
    assert (await schedule.describe()).runs_started >= 2


async def _true(value: bool) -> bool:
    return value
