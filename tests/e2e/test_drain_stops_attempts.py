"""A stopping worker whose drain_timeout passes stops its running activity
attempts and records their end: the next attempt is due at once, for the
other workers. They had been cancelled and left leased, so a deploy's
restart (a new worker identity) held each one back for lease_timeout: in the
probe, three 16-s workflows took 42 s after a SIGTERM instead of 17.

The stopped attempt counts, as one lost with a killed worker does: it may
have had effects (a card charged), so an activity allowed one attempt
fails rather than runs twice."""

from __future__ import annotations

import asyncio
import time

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


ACTIVITIES = [slow_async, slow_thread, once]
WORKFLOWS = [runs, runs_once]


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
