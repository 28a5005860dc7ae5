"""Plain ``def`` activities whose attempt ends while their function still
runs (``_worker/threads.py``): the function is stopped in its thread, and the
worker keeps threads for new attempts meanwhile. Before, each such function
held one of the worker's threads until it returned: once as many hung as the
worker had slots, no plain ``def`` activity ran on that worker again, and
each new attempt timed out while it waited for a thread."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from datetime import timedelta

import pytest
from e2e_helpers import fast_worker, wait_until

import perdure
from perdure import RetryPolicy, activity, workflow

seen: Counter[str] = Counter()
blocked = threading.Event()  # what the blocking activity waits for
RETRY = RetryPolicy(max_attempts=2, initial_interval=timedelta(milliseconds=20))


@activity.defn(start_to_close_timeout=timedelta(seconds=0.3), retry=RETRY)
def spins(tag: str) -> str:
    seen["spins"] += 1
    try:
        while True:  # busy in Python for ever, as a stuck retry loop would be
            time.sleep(0.005)
    except BaseException as exc:
        seen[f"spins stopped by {type(exc).__name__}"] += 1
        raise


@activity.defn(start_to_close_timeout=timedelta(seconds=0.3), retry=RETRY)
def blocks(tag: str) -> str:
    seen["blocks"] += 1
    blocked.wait(20)  # in C, as a request with no timeout would be
    seen["blocks went on"] += 1  # (its next side effect: never reached)
    return tag


@activity.defn
def quick(i: int) -> int:
    return i


@workflow.defn
async def overruns(which: str) -> str:
    try:
        await (spins("s") if which == "spins" else blocks("b"))
    except perdure.ActivityError as exc:
        assert exc.cause is not None
        return f"{exc.cause.type} after {exc.attempt}"
    return "returned"


@workflow.defn
async def quick_one(i: int) -> int:
    return await quick(i)


async def _quick_ones_run(client: perdure.Client) -> None:
    done = await asyncio.gather(*(client.execute(quick_one, i, timeout=5) for i in range(6)))
    assert done == list(range(6))


@pytest.fixture(autouse=True)
def _fresh() -> None:
    seen.clear()
    blocked.clear()


async def test_a_function_busy_in_python_is_stopped_when_its_attempt_ends(
    client: perdure.Client,
) -> None:
    worker = fast_worker(client, [overruns, quick_one], [spins, quick], max_concurrent_activities=2)
    async with worker:
        results = await asyncio.gather(
            *(client.execute(overruns, "spins", timeout=20) for _ in range(2))
        )
        assert results == ["ActivityTimeoutError after 2"] * 2
        # Every attempt ran (the second ones had waited for a thread, and
        # timed out there without running), and each was stopped.
        assert seen["spins"] == 4
        runner = worker.activity_runner

        async def all_stopped() -> bool:
            return seen["spins stopped by AttemptEnded"] == 4 and not runner.overrunning

        await wait_until(all_stopped, 10, "the four functions to stop")
        await _quick_ones_run(client)


async def test_a_blocked_function_leaves_threads_for_new_attempts_and_stops_when_it_returns(
    client: perdure.Client,
) -> None:
    worker = fast_worker(
        client, [overruns, quick_one], [blocks, quick], max_concurrent_activities=1
    )
    async with worker:
        assert (
            await client.execute(overruns, "blocks", timeout=20) == "ActivityTimeoutError after 2"
        )
        assert seen["blocks"] == 2
        assert len(worker.activity_runner.overrunning) == 2  # both still blocked
        await _quick_ones_run(client)  # on the spare threads
        blocked.set()

        async def returned() -> bool:
            return not worker.activity_runner.overrunning

        await wait_until(returned, 10, "the blocked functions to return")
    assert seen["blocks went on"] == 0  # stopped as their blocking call returned
