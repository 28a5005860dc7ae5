"""An operator resets one activity (``AsyncActivityHandle.reset``, by id, as
Temporal's ``temporal activity reset``): its attempts are counted from 1
again (a fresh ``max_attempts``) and its backoff is dropped. Waiting for a
retry, its next attempt starts now; paused, it is unpaused too, unless
``keep_paused``; an attempt running when it is reset is stopped at its next
heartbeat and the next starts at once as attempt 1; one that does not
heartbeat runs on, and if it fails, the next attempt starts at once as
attempt 1, even past the old count's end. Heartbeat details are kept
unless cleared; nothing goes into the history. Both backends.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from e2e_helpers import activity_by_id as by_id
from e2e_helpers import fast_worker, wait_until
from e2e_helpers import pending_activity as pending

import perdure
from perdure import ActivityError, RetryPolicy, activity, workflow

calls: Counter[str] = Counter()
seen_attempts: defaultdict[str, list[int]] = defaultdict(list)
seen_details: defaultdict[str, list[Any]] = defaultdict(list)
gates: defaultdict[str, asyncio.Event] = defaultdict(asyncio.Event)
healthy: set[str] = set()
tokens: list[str] = []
stopped: list[str] = []


@pytest.fixture(autouse=True)
def _fresh() -> None:
    calls.clear()
    seen_attempts.clear()
    seen_details.clear()
    gates.clear()  # (an Event is bound to the loop of its first wait)
    healthy.clear()
    tokens.clear()
    stopped.clear()


def note(tag: str) -> None:
    calls[tag] += 1
    seen_attempts[tag].append(activity.info().attempt)
    seen_details[tag].append(activity.info().heartbeat_details)
    tokens.append(activity.info().task_token)


@activity.defn(retry=RetryPolicy(initial_interval=timedelta(hours=1), max_attempts=3))
async def hourly(tag: str) -> str:
    """Fails until ``tag`` is healthy; its retries are an hour apart."""
    note(tag)
    activity.heartbeat({"page": calls[tag] * 10})
    if tag not in healthy:
        raise RuntimeError("down: the next try is in an hour")
    return f"shipped {tag}"


@activity.defn(retry=RetryPolicy(initial_interval=timedelta(milliseconds=20), max_attempts=2))
async def gated(tag: str) -> str:
    """Fails until ``tag`` is healthy; attempt 2 waits for its gate, then
    fails whatever the health."""
    note(tag)
    if seen_attempts[tag] == [1, 2]:
        await gates[tag].wait()
        raise RuntimeError("still down")
    if tag not in healthy:
        raise RuntimeError("still down")
    return f"done {tag}"


@activity.defn(retry=RetryPolicy(max_attempts=1))
async def beating(tag: str) -> str:
    """Its first call heartbeats ``{"pages": 10}`` every 20 ms for ever;
    later calls return at once."""
    note(tag)
    first = calls[tag] == 1
    try:
        while first:
            activity.heartbeat({"pages": 10})
            await asyncio.sleep(0.02)
    except asyncio.CancelledError:
        stopped.append(tag)
        raise
    return f"done {tag}"


@activity.defn(retry=RetryPolicy(max_attempts=1))
def beating_in_a_thread(tag: str) -> str:
    """``beating``, a plain ``def``: its heartbeat call raises once stopped."""
    note(tag)
    first = calls[tag] == 1
    try:
        while first:
            activity.heartbeat({"pages": 10})
            time.sleep(0.02)
    except asyncio.CancelledError:
        stopped.append(tag)
        raise
    return f"done {tag}"


STEPS = {
    "hourly": hourly,
    "gated": gated,
    "beating": beating,
    "beating_in_a_thread": beating_in_a_thread,
}


@workflow.defn
async def one_step(kind: str, tag: str) -> dict[str, Any]:
    try:
        return {"result": await STEPS[kind](tag)}
    except ActivityError as exc:
        cause = exc.cause
        return {"failed": cause.type, "message": cause.message, "attempt": exc.attempt}


def worker(client: perdure.Client) -> perdure.Worker:
    return fast_worker(client, [one_step], list(STEPS.values()))


async def test_a_waiting_activity_runs_now_counted_from_one(client: perdure.Client) -> None:
    async with worker(client):
        handle = await client.start(one_step, "hourly", "h", id="reset-waiting")
        waiting = await pending(handle, lambda a: a.attempt == 1 and not a.running, "the wait")
        assert waiting.next_attempt_at is not None and not waiting.reset_requested
        await by_id(client, "reset-waiting").reset()  # attempt 1 again, now
        await wait_until(
            lambda: asyncio.sleep(0, calls["h"] == 2), what="the attempt after the reset"
        )
        again = await pending(handle, lambda a: not a.running, "its second wait")
        assert again.attempt == 1 and len(again.attempts) == 2  # (both ended attempts kept)
        healthy.add("h")
        await by_id(client, "reset-waiting").reset()
        assert await handle.result(timeout=10) == {"result": "shipped h"}
    assert seen_attempts["h"] == [1, 1, 1]
    # The details of the last heartbeat went to each next attempt (kept).
    assert seen_details["h"] == [None, {"page": 10}, {"page": 20}]
    history = await handle.history()
    assert not any("reset" in e["type"].lower() for e in history)


async def test_a_running_attempts_failure_is_retried_at_once_past_the_old_count(
    client: perdure.Client,
) -> None:
    async with worker(client):
        handle = await client.start(one_step, "gated", "g", id="reset-running")
        await pending(handle, lambda a: a.running and a.attempt == 2, "attempt 2 running")
        await by_id(client, "reset-running").reset()
        info = await pending(handle, lambda a: a.reset_requested, "the reset requested")
        assert info.running and info.attempt == 2
        # (Healthy first: the attempt after the reset must not race the test
        # to fail twice more, its retries 20 ms apart, on a loaded machine.)
        healthy.add("g")
        gates["g"].set()  # attempt 2 fails: the last of max_attempts 2, but reset
        assert await handle.result(timeout=10) == {"result": "done g"}
    assert seen_attempts["g"][:3] == [1, 2, 1]


@pytest.mark.parametrize(
    ("kind", "clear"),
    [("beating", False), ("beating", True), ("beating_in_a_thread", False)],
)
async def test_a_heartbeating_attempt_stops_at_its_heartbeat_and_runs_again_as_attempt_1(
    client: perdure.Client, kind: str, clear: bool
) -> None:
    # (As Temporal's reset does: max_attempts 1 would allow no other.)
    async with worker(client):
        handle = await client.start(one_step, kind, "b", id=f"reset-beating-{clear}")
        await pending(handle, lambda a: a.heartbeat_details is not None, "a heartbeat")
        await by_id(client, f"reset-beating-{clear}").reset(clear_heartbeat_details=clear)
        assert await handle.result(timeout=10) == {"result": "done b"}
    # (A thread's attempt stops at its next heartbeat call, soon after.)
    await wait_until(lambda: asyncio.sleep(0, stopped == ["b"]), what="the first attempt stopped")
    assert seen_attempts["b"] == [1, 1]
    # The next attempt starts from the details as the reset left them: the
    # heartbeats the stopped attempt sent after it did not bring them back.
    assert seen_details["b"] == [None, None if clear else {"pages": 10}]
    [done] = [e for e in await handle.history() if e["type"] == "ActivityCompleted"]
    # Handed back uncounted (as a pause's is): attempt 1 is the one recorded.
    assert [(a["attempt"], a["error"]) for a in done["attempts"]] == [(1, None)]


async def test_without_a_reset_the_same_failure_ends_the_activity(
    client: perdure.Client,
) -> None:
    """The control for the test above: attempt 2 was the last allowed."""
    async with worker(client):
        handle = await client.start(one_step, "gated", "c", id="reset-control")
        await pending(handle, lambda a: a.running and a.attempt == 2, "attempt 2 running")
        healthy.add("c")  # (as above: only the reset differs)
        gates["c"].set()
        result = await handle.result(timeout=10)
    assert result["failed"] == "RuntimeError" and result["attempt"] == 2
    assert seen_attempts["c"] == [1, 2]


async def test_a_paused_activity_is_unpaused_unless_kept_paused(client: perdure.Client) -> None:
    async with worker(client):
        handle = await client.start(one_step, "hourly", "p", id="reset-paused")
        await pending(handle, lambda a: a.attempt == 1 and not a.running, "the wait")
        named = by_id(client, "reset-paused")
        await named.pause()
        await named.reset(keep_paused=True, clear_heartbeat_details=True)
        kept = await pending(handle, lambda a: a.paused, "still paused")
        assert kept.attempt == 0 and kept.heartbeat_details is None
        await asyncio.sleep(0.2)
        assert calls["p"] == 1  # (no attempt while paused)
        healthy.add("p")
        await named.reset()  # unpaused, now
        assert await handle.result(timeout=10) == {"result": "shipped p"}
    assert seen_attempts["p"] == [1, 1]
    assert seen_details["p"] == [None, None]  # (cleared)


async def test_refusals_change_nothing(client: perdure.Client) -> None:
    async with worker(client):
        handle = await client.start(one_step, "hourly", "r", id="reset-refused")
        await pending(handle, lambda a: a.attempt == 1 and not a.running, "the wait")
        named = by_id(client, "reset-refused")
        with pytest.raises(TypeError, match="keep_paused must be a bool"):
            await named.reset(keep_paused="yes")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="names an activity by id"):
            await client.get_async_activity_handle(tokens[0]).reset()
        with pytest.raises(TypeError, match="jitter must be a timedelta"):
            await named.reset(jitter=60)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="jitter must be from 0 to 100 years"):
            await named.reset(jitter=timedelta(days=40_000))
        with pytest.raises(perdure.AsyncActivityNotFoundError, match="not pending"):
            await by_id(client, "reset-refused", ref=7).reset()
        with pytest.raises(perdure.AsyncActivityNotFoundError, match="no such run"):
            await by_id(client, "no-such-workflow").reset()
        [still] = (await handle.describe()).pending_activities
        assert still.attempt == 1 and still.next_attempt_at is not None


async def test_a_jittered_reset_is_due_within_the_span(client: perdure.Client) -> None:
    async with worker(client):
        handle = await client.start(one_step, "hourly", "j", id="reset-jitter")
        await pending(handle, lambda a: a.attempt == 1 and not a.running, "the wait")
        before = datetime.now(UTC)
        await by_id(client, "reset-jitter").reset(jitter=timedelta(minutes=10))
        [info] = (await handle.describe()).pending_activities
        assert info.attempt == 0 and info.next_attempt_at is not None
        assert before <= info.next_attempt_at <= datetime.now(UTC) + timedelta(minutes=10)
        # (and unpaused the same way: paused, then unpaused with a jitter)
        named = by_id(client, "reset-jitter")
        await named.pause()
        before = datetime.now(UTC)
        await named.unpause(jitter=timedelta(minutes=10))
        [info] = (await handle.describe()).pending_activities
        assert not info.paused and info.next_attempt_at is not None
        assert before <= info.next_attempt_at <= datetime.now(UTC) + timedelta(minutes=10)
        assert calls["j"] == 1


def test_the_blocking_client_resets_too(db_url: str) -> None:
    async def waiting() -> None:
        async with await perdure.Client.connect(db_url) as client:
            client.poll_interval = 0.02
            async with worker(client):
                handle = await client.start(one_step, "hourly", "s", id="reset-sync")
                await pending(handle, lambda a: a.attempt == 1 and not a.running, "the wait")

    asyncio.run(waiting())
    with perdure.SyncClient.connect(db_url) as sync:
        sync.get_async_activity_handle(workflow_id="reset-sync", activity_id=1).reset()
        [info] = sync.get_handle("reset-sync").describe().pending_activities
        assert info.attempt == 0 and info.next_attempt_at is not None
