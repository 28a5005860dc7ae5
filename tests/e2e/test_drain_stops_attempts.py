"""A stopping worker whose drain_timeout passes stops its running activity
attempts and records their end: the next attempt is due at once, for the
other workers. They had been cancelled and left leased, so a deploy's
restart (a new worker identity) held each one back for lease_timeout: in the
probe, three 16-s workflows took 42 s after a SIGTERM instead of 17.

The stopped attempt counts, as one lost with a killed worker does: it may
have had effects (a card charged), so an activity allowed one attempt
fails rather than runs twice.

The drain also waits for an attempt that a turn in flight at the stop
leases to its own worker as it commits: it is not left running, its lease
unrenewed, once the worker has ended."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest
from e2e_helpers import fast_worker, wait_until

import perdure
from perdure import ActivityError, RetryPolicy, activity, workflow

started: list[tuple[str, int]] = []


@activity.defn
async def slow_async(key: str) -> str:
    started.append((key, activity.info().attempt))
    if activity.info().attempt == 1:
        await asyncio.sleep(60)
    return f"{key} done"


@activity.defn
def slow_thread(key: str) -> str:
    started.append((key, activity.info().attempt))
    if activity.info().attempt == 1:
        for _ in range(600):  # stops at a line once the attempt is stopped
            time.sleep(0.1)
    return f"{key} done"


@activity.defn(retry=RetryPolicy(max_attempts=1))
async def once(key: str) -> str:
    started.append((key, activity.info().attempt))
    await asyncio.sleep(60)
    return "never"


@workflow.defn
async def runs(kind: str, key: str) -> str:
    step = {"async": slow_async, "thread": slow_thread}[kind]
    return await step(key)


@workflow.defn
async def runs_once(key: str) -> str:
    try:
        return await once(key)
    except ActivityError as exc:
        return f"failed: {exc.cause.type}"


@activity.defn
async def brief(key: str) -> str:
    started.append((key, activity.info().attempt))
    await asyncio.sleep(1.0)
    return f"{key} done"


@workflow.defn
async def on_go(key: str) -> str:
    await workflow.wait_signal("go")
    return await brief(key)


ACTIVITIES = [slow_async, slow_thread, once, brief]
WORKFLOWS = [runs, runs_once, on_go]


async def _stop_during_attempt(
    client: perdure.Client, started_with: tuple[str, int], **starts: object
) -> None:
    """Run a worker with a long lease until the first attempt has started,
    then stop it (drain_timeout 0.2 s)."""
    worker = fast_worker(client, WORKFLOWS, ACTIVITIES, lease_timeout=60.0, drain_timeout=0.2)
    async with worker:

        async def attempt_started() -> bool:
            return started_with in started

        await wait_until(attempt_started, what="the first attempt to start")


@pytest.mark.parametrize("kind", ["async", "thread"])
async def test_a_stopped_attempt_is_retried_at_once_by_another_worker(
    client: perdure.Client, kind: str
) -> None:
    started.clear()
    handle = await client.start(runs, kind, f"job-{kind}")
    await _stop_during_attempt(client, (f"job-{kind}", 1))
    loop = asyncio.get_running_loop()
    begun = loop.time()
    async with fast_worker(client, WORKFLOWS, ACTIVITIES, identity="successor"):
        assert await handle.result(timeout=20) == f"job-{kind} done"
    assert loop.time() - begun < 10  # not after the first worker's 60-s lease
    assert started == [(f"job-{kind}", 1), (f"job-{kind}", 2)]
    [completed] = [e for e in await handle.history() if e["type"] == "ActivityCompleted"]
    first, second = completed["attempts"]
    assert first["error"]["type"] == "WorkerStopped", first
    assert "its stopping worker ended its drain" in first["error"]["message"]
    assert (second["attempt"], second["error"]) == (2, None)


async def test_the_stopped_attempt_counts(client: perdure.Client) -> None:
    started.clear()
    handle = await client.start(runs_once, "pay-1")
    await _stop_during_attempt(client, ("pay-1", 1))
    async with fast_worker(client, WORKFLOWS, ACTIVITIES, identity="successor"):
        assert await handle.result(timeout=20) == "failed: WorkerStopped"
    assert started == [("pay-1", 1)]  # never run a second time


async def test_an_attempt_leased_by_a_turn_committing_at_the_stop_is_drained_too(
    client: perdure.Client, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The turn that schedules ``brief`` chose to run it here before the
    stop; its commit is held until the drain has begun. The drain waits for
    the attempt that commit starts (it is not among the tasks in flight when
    the drain began), so the run has completed once the worker has ended."""
    started.clear()
    store = client.store
    commit_turn = store.commit_turn
    held, release = asyncio.Event(), asyncio.Event()

    async def commit_held(commit: Any) -> Any:
        if commit.activities and not held.is_set():
            held.set()
            await release.wait()
        return await commit_turn(commit)

    monkeypatch.setattr(store, "commit_turn", commit_held)
    caplog.set_level(logging.INFO, logger="perdure.worker")
    worker = fast_worker(client, WORKFLOWS, ACTIVITIES)
    async with worker:
        handle = await client.start(on_go, "late", id="late-lease")
        await handle.signal("go", None)
        await asyncio.wait_for(held.wait(), timeout=10)
        worker.stop()

        async def draining() -> bool:
            return any("draining" in r.getMessage() for r in caplog.records)

        await wait_until(draining, what="the drain to begin")
        release.set()
    assert started == [("late", 1)]
    assert (await handle.describe()).status == "completed"  # not still running
    assert await handle.result(timeout=1) == "late done"
