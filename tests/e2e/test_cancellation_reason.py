"""``activity.cancellation_reason()`` tells the code that catches an
attempt's stop why the worker stopped it, as Temporal's
``activity.cancellation_details()`` does: a pause or a reset (the work may
resume in a later attempt), its workflow's cancellation, a timeout, a
heartbeat timeout. None before the stop and outside an activity. Both
backends; ``async def`` activities and a plain ``def`` one, whose stop
comes from its ``heartbeat()`` call."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from datetime import timedelta

import pytest
from e2e_helpers import fast_worker, wait_until

import perdure
from perdure import ActivityError, RetryPolicy, activity, workflow

reasons: defaultdict[str, list[str | None]] = defaultdict(list)  # tag -> one per stop
before: defaultdict[str, list[str | None]] = defaultdict(list)  # tag -> as each attempt began
released: set[str] = set()

QUICK = RetryPolicy(initial_interval=timedelta(milliseconds=20), backoff=1.0)
ONCE = RetryPolicy(max_attempts=1)


@pytest.fixture(autouse=True)
def _fresh() -> None:
    reasons.clear()
    before.clear()
    released.clear()


@activity.defn(retry=QUICK, heartbeat_timeout=timedelta(seconds=10))
async def beating(tag: str) -> str:
    """Heartbeats every 20 ms until released."""
    before[tag].append(activity.cancellation_reason())
    try:
        while tag not in released:
            activity.heartbeat()
            await asyncio.sleep(0.02)
    except asyncio.CancelledError:
        reasons[tag].append(activity.cancellation_reason())
        raise
    return f"done {tag}"


@activity.defn(retry=QUICK, heartbeat_timeout=timedelta(seconds=10))
def beating_in_a_thread(tag: str) -> str:
    before[tag].append(activity.cancellation_reason())
    try:
        while tag not in released:
            activity.heartbeat()  # (raises CancelledError once the attempt is stopped)
            time.sleep(0.02)
    except asyncio.CancelledError:
        reasons[tag].append(activity.cancellation_reason())
        raise
    return f"done {tag}"


@activity.defn(retry=ONCE, start_to_close_timeout=timedelta(seconds=0.3))
async def outlives_its_timeout(tag: str) -> str:
    try:
        await asyncio.sleep(60)
    except asyncio.CancelledError:
        reasons[tag].append(activity.cancellation_reason())
        raise
    return "never"


@activity.defn(retry=ONCE, heartbeat_timeout=timedelta(seconds=0.3))
async def goes_quiet(tag: str) -> str:
    try:
        await asyncio.sleep(60)  # (no heartbeat)
    except asyncio.CancelledError:
        reasons[tag].append(activity.cancellation_reason())
        raise
    return "never"


STEPS = {
    "beating": beating,
    "beating_in_a_thread": beating_in_a_thread,
    "outlives_its_timeout": outlives_its_timeout,
    "goes_quiet": goes_quiet,
}


@workflow.defn
async def one_step(kind: str, tag: str) -> str:
    try:
        return str(await STEPS[kind](tag))
    except ActivityError as exc:
        return f"failed: {exc.cause.type}"


@workflow.defn
async def gives_up(tag: str) -> str:
    try:
        await asyncio.wait_for(beating(tag), timeout=0.3)
    except TimeoutError:
        # (Waits: a run that ended would take its activity's task with it,
        # and the attempt's heartbeat would find it gone: "lost".)
        await workflow.wait_signal("finish")
        return "gave up"
    return "finished"


def _worker(client: perdure.Client) -> perdure.Worker:
    return fast_worker(client, [one_step, gives_up], list(STEPS.values()))


async def _stopped(tag: str, count: int = 1) -> None:
    await wait_until(
        lambda: asyncio.sleep(0, len(reasons[tag]) >= count), what=f"{tag}'s stop {count}"
    )


@pytest.mark.parametrize("kind", ["beating", "beating_in_a_thread"])
async def test_a_pause_and_a_reset_say_so(client: perdure.Client, kind: str) -> None:
    async with _worker(client):
        handle = await client.start(one_step, kind, "op", id=f"operator-{kind}")
        by_id = client.get_async_activity_handle(workflow_id=f"operator-{kind}", activity_id=1)
        await wait_until(lambda: asyncio.sleep(0, len(before["op"]) == 1), what="attempt 1")
        await by_id.pause()
        await _stopped("op")
        await by_id.unpause()
        await wait_until(lambda: asyncio.sleep(0, len(before["op"]) == 2), what="the next")
        await by_id.reset()
        await _stopped("op", 2)
        released.add("op")
        assert await handle.result(timeout=10) == "done op"
    assert reasons["op"] == ["paused", "reset"]
    assert before["op"] == [None, None, None]  # (each attempt began unstopped)


async def test_the_workflows_cancellation_says_cancelled(client: perdure.Client) -> None:
    async with _worker(client):
        handle = await client.start(gives_up, "wf", id="cancelled-by-its-workflow")
        await _stopped("wf")
        await handle.signal("finish", None)
        assert await handle.result(timeout=10) == "gave up"
    assert reasons["wf"] == ["cancelled"]


@pytest.mark.parametrize(
    ("kind", "reason", "failure"),
    [
        ("outlives_its_timeout", "timed_out", "ActivityTimeoutError"),
        ("goes_quiet", "heartbeat_timeout", "ActivityTimeoutError"),
    ],
)
async def test_a_timeout_says_which(
    client: perdure.Client, kind: str, reason: str, failure: str
) -> None:
    async with _worker(client):
        handle = await client.start(one_step, kind, kind, id=f"timeout-{kind}")
        assert await handle.result(timeout=10) == f"failed: {failure}"
    assert reasons[kind] == [reason]


def test_outside_an_activity_there_is_no_reason() -> None:
    assert activity.cancellation_reason() is None
