"""An operator pauses one activity (``AsyncActivityHandle.pause``, by id, as
Temporal's ``temporal activity pause``): no attempt of it starts until
``unpause()``, on any worker, while its run goes on. An attempt running when
it is paused runs on: its result is delivered, its failure is not retried
while paused, and one that heartbeats is stopped at its next heartbeat, not
counted as an attempt. Unpausing makes the next attempt due at once (its
backoff dropped), and may count attempts from 1 again. A paused activity
can still be settled by id, cancelled by its workflow, or timed out by its
schedule_to_close timeout; a new activity that takes over a paused one's
task row is not paused. Both backends.
"""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from datetime import timedelta
from typing import Any

import pytest
from e2e_helpers import activity_by_id as by_id
from e2e_helpers import fast_worker, wait_until
from e2e_helpers import pending_activity as pending

import perdure
from perdure import ActivityError, RetryPolicy, activity, workflow

calls: Counter[str] = Counter()
seen_attempts: defaultdict[str, list[int]] = defaultdict(list)
gates: defaultdict[str, asyncio.Event] = defaultdict(asyncio.Event)
healthy: set[str] = set()
stopped: dict[str, str] = {}
beats_seen: dict[str, Any] = {}

FAST = RetryPolicy(initial_interval=timedelta(milliseconds=20), backoff=1.0)


@pytest.fixture(autouse=True)
def _fresh() -> None:
    calls.clear()
    seen_attempts.clear()
    gates.clear()  # (an Event is bound to the loop of its first wait)
    healthy.clear()
    stopped.clear()
    beats_seen.clear()


@activity.defn(retry=FAST)
async def flaky(tag: str) -> str:
    """Fails every 20 ms until the test marks ``tag`` healthy."""
    calls[tag] += 1
    seen_attempts[tag].append(activity.info().attempt)
    if tag not in healthy:
        raise RuntimeError(f"the shipping API is down ({calls[tag]})")
    return f"shipped {tag}"


@activity.defn(retry=RetryPolicy(initial_interval=timedelta(milliseconds=20), max_attempts=3))
async def three_tries(tag: str) -> str:
    """Fails every attempt; its first attempt 2 waits for its gate first."""
    calls[tag] += 1
    seen_attempts[tag].append(activity.info().attempt)
    if seen_attempts[tag] == [1, 2]:
        await gates[tag].wait()
    raise RuntimeError("still down")


@activity.defn(retry=RetryPolicy(initial_interval=timedelta(hours=1)))
async def hourly(tag: str) -> str:
    calls[tag] += 1
    if calls[tag] == 1:
        raise RuntimeError("down: the next try is in an hour")
    return f"shipped {tag}"


@activity.defn(retry=FAST)
async def at_gate(tag: str) -> str:
    """Waits for its gate, then returns, or fails if ``tag`` is not healthy."""
    calls[tag] += 1
    await gates[tag].wait()
    if tag not in healthy:
        raise RuntimeError("failed after its gate")
    return f"done {tag}"


@activity.defn(retry=FAST)
async def beating(tag: str) -> str:
    """Heartbeats every 10 ms until ``tag`` is healthy."""
    calls[tag] += 1
    seen_attempts[tag].append(activity.info().attempt)
    beats_seen[tag] = activity.info().heartbeat_details
    try:
        while tag not in healthy:
            activity.heartbeat({"pages": calls[tag] * 10})
            await asyncio.sleep(0.01)
    except asyncio.CancelledError as exc:
        stopped[tag] = str(exc) or "cancelled"
        raise
    return f"done {tag}"


@activity.defn(retry=FAST, schedule_to_close_timeout=timedelta(seconds=3))
async def in_a_hurry(tag: str) -> str:
    calls[tag] += 1
    raise RuntimeError("down")


STEPS = {
    "flaky": flaky,
    "three": three_tries,
    "hourly": hourly,
    "gate": at_gate,
    "beating": beating,
    "hurry": in_a_hurry,
}


@workflow.defn
async def one_step(kind: str, tag: str) -> dict[str, Any]:
    try:
        return {"result": await STEPS[kind](tag)}
    except ActivityError as exc:
        cause = exc.cause
        return {"failed": cause.type, "message": cause.message, "attempt": exc.attempt}


@workflow.defn
async def gate_then_flaky(tag: str) -> list[str]:
    """Two steps run inline one after the other: the second takes over the
    first's task row."""
    first = await at_gate(tag)
    return [first, await flaky(tag + "-next")]


@workflow.defn
async def cancel_on_signal(tag: str) -> str:
    step = asyncio.ensure_future(flaky(tag))
    await workflow.wait_signal("stop")
    step.cancel()
    try:
        await step
    except asyncio.CancelledError:
        return "cancelled"
    return "finished"


def worker(client: perdure.Client) -> perdure.Worker:
    return fast_worker(client, [one_step, gate_then_flaky, cancel_on_signal], list(STEPS.values()))


async def no_attempt_for(tag: str, seconds: float) -> None:
    """No new attempt of ``tag`` starts for ``seconds`` (the negative case:
    with retries 20 ms apart, a dozen would have run)."""
    before = calls[tag]
    await asyncio.sleep(seconds)
    assert calls[tag] == before, f"{calls[tag] - before} attempt(s) of {tag} ran while paused"


async def test_a_paused_activity_starts_no_attempt_until_unpaused(client: perdure.Client) -> None:
    async with worker(client):
        handle = await client.start(one_step, "flaky", "f", id="pause-flaky")
        await pending(handle, lambda a: a.attempt >= 2, "a few attempts")
        await by_id(client, "pause-flaky").pause()
        info = await pending(handle, lambda a: a.paused and not a.running, "paused, idle")
        assert info.next_attempt_at is None and info.last_failure is not None
        await no_attempt_for("f", 0.3)
        assert not (await handle.describe()).pending_activities[0].running
        healthy.add("f")
        await by_id(client, "pause-flaky").unpause()
        assert await handle.result(timeout=10) == {"result": "shipped f"}
    # Each attempt was counted once, in order: the pause added none.
    assert seen_attempts["f"] == list(range(1, calls["f"] + 1))


async def test_unpause_drops_the_backoff_and_is_idempotent(client: perdure.Client) -> None:
    async with worker(client):
        handle = await client.start(one_step, "hourly", "h", id="pause-hourly")
        waiting = await pending(handle, lambda a: a.attempt == 1 and not a.running, "the wait")
        assert waiting.next_attempt_at is not None
        # Unpausing an activity that is not paused changes nothing (its hour stands).
        await by_id(client, "pause-hourly").unpause()
        still = (await handle.describe()).pending_activities[0]
        assert still.next_attempt_at == waiting.next_attempt_at and not still.paused
        await by_id(client, "pause-hourly").pause()
        await by_id(client, "pause-hourly").pause()  # (twice: the same)
        assert (await handle.describe()).pending_activities[0].paused
        await by_id(client, "pause-hourly").unpause()
        assert await handle.result(timeout=10) == {"result": "shipped h"}
    assert calls["h"] == 2


async def test_an_attempt_running_when_paused_delivers_its_result(client: perdure.Client) -> None:
    async with worker(client):
        healthy.add("g")
        handle = await client.start(one_step, "gate", "g", id="pause-running-ok")
        await pending(handle, lambda a: a.running, "the attempt running")
        await by_id(client, "pause-running-ok").pause()
        info = await pending(handle, lambda a: a.paused, "paused")
        assert info.running
        gates["g"].set()
        assert await handle.result(timeout=10) == {"result": "done g"}


async def test_an_attempt_running_when_paused_is_not_retried_until_unpaused(
    client: perdure.Client,
) -> None:
    async with worker(client):
        handle = await client.start(one_step, "gate", "g", id="pause-running-fails")
        await pending(handle, lambda a: a.running, "the attempt running")
        await by_id(client, "pause-running-fails").pause()
        gates["g"].set()  # it fails: no retry while paused
        info = await pending(handle, lambda a: not a.running, "the attempt ended")
        assert info.paused and info.attempt == 1 and info.next_attempt_at is None
        assert info.last_failure["message"] == "failed after its gate"
        await no_attempt_for("g", 0.3)
        healthy.add("g")
        await by_id(client, "pause-running-fails").unpause()
        assert await handle.result(timeout=10) == {"result": "done g"}
    assert calls["g"] == 2


async def test_a_heartbeating_attempt_stops_at_its_next_heartbeat(
    client: perdure.Client,
) -> None:
    async with worker(client):
        handle = await client.start(one_step, "beating", "b", id="pause-beating")
        await pending(handle, lambda a: a.heartbeat_details is not None, "a heartbeat")
        await by_id(client, "pause-beating").pause()
        info = await pending(handle, lambda a: not a.running, "the attempt stopped")
        assert stopped["b"] == "cancelled" or "paused" in stopped["b"]
        # Handed back, not counted: the attempt that runs next is attempt 1
        # again, with the details its predecessor left.
        assert info.paused and info.attempt == 0
        assert info.last_failure["type"] == "ActivityPaused"
        assert info.heartbeat_details == {"pages": 10}
        await no_attempt_for("b", 0.3)
        healthy.add("b")
        await by_id(client, "pause-beating").unpause()
        assert await handle.result(timeout=10) == {"result": "done b"}
    assert seen_attempts["b"] == [1, 1]
    assert beats_seen["b"] == {"pages": 10}


async def test_unpause_may_count_attempts_from_one_again(client: perdure.Client) -> None:
    async with worker(client):
        handle = await client.start(one_step, "three", "t", id="pause-reset")
        await pending(handle, lambda a: a.running and a.attempt == 2, "attempt 2 running")
        await by_id(client, "pause-reset").pause()
        gates["t"].set()  # attempt 2 fails: parked, one attempt left
        await pending(handle, lambda a: a.paused and not a.running, "paused, idle")
        await by_id(client, "pause-reset").unpause(reset_attempts=True)
        result = await handle.result(timeout=10)
    # Three more attempts (a fresh max_attempts of 3), numbered from 1.
    assert seen_attempts["t"] == [1, 2, 1, 2, 3]
    assert result["failed"] == "RuntimeError" and result["attempt"] == 3


async def test_attempts_are_not_reset_under_a_running_attempt(client: perdure.Client) -> None:
    async with worker(client):
        handle = await client.start(one_step, "gate", "g", id="pause-reset-running")
        await pending(handle, lambda a: a.running, "the attempt running")
        paused = by_id(client, "pause-reset-running")
        await paused.pause()
        with pytest.raises(perdure.PerdureError, match="attempt 1 is running on a worker"):
            await paused.unpause(reset_attempts=True)
        assert (await handle.describe()).pending_activities[0].paused  # (nothing changed)
        await paused.unpause()
        assert not (await handle.describe()).pending_activities[0].paused
        healthy.add("g")
        gates["g"].set()
        assert await handle.result(timeout=10) == {"result": "done g"}


async def test_a_paused_activity_can_be_settled_cancelled_or_timed_out(
    client: perdure.Client,
) -> None:
    async with worker(client):
        settled = await client.start(one_step, "flaky", "s", id="pause-settled")
        cancelled = await client.start(cancel_on_signal, "c", id="pause-cancelled")
        hurried = await client.start(one_step, "hurry", "u", id="pause-hurried")
        for workflow_id in ("pause-hurried", "pause-settled", "pause-cancelled"):
            run = client.get_handle(workflow_id)
            await pending(run, lambda a: a.attempt >= 1 and not a.running, "an attempt")
            await by_id(client, workflow_id).pause()
        await by_id(client, "pause-settled").complete("by hand")
        assert await settled.result(timeout=10) == {"result": "by hand"}
        await cancelled.signal("stop")
        assert await cancelled.result(timeout=10) == "cancelled"
        result = await hurried.result(timeout=10)
    assert result["failed"] == "ActivityTimeoutError"
    assert "schedule_to_close_timeout" in result["message"] and "it was paused" in result["message"]


async def test_a_step_that_takes_over_a_paused_ones_task_is_not_paused(
    client: perdure.Client,
) -> None:
    async with worker(client):
        healthy.add("o")
        handle = await client.start(gate_then_flaky, "o", id="pause-take-over")
        await pending(handle, lambda a: a.running, "the first step running")
        await by_id(client, "pause-take-over").pause()
        await pending(handle, lambda a: a.paused, "paused")
        gates["o"].set()
        # The second step fails and is retried: it would wait for ever had
        # it inherited the pause with the row.
        await pending(handle, lambda a: a.activity_id == 2 and a.attempt >= 2, "a retry")
        assert not any(a.paused for a in (await handle.describe()).pending_activities)
        healthy.add("o-next")
        assert await handle.result(timeout=10) == ["done o", "shipped o-next"]


async def test_pause_names_what_it_pauses(client: perdure.Client) -> None:
    async with worker(client):
        healthy.add("n")
        handle = await client.start(one_step, "flaky", "n", id="pause-names")
        await handle.result(timeout=10)
        with pytest.raises(perdure.AsyncActivityNotFoundError, match="the run has ended"):
            await by_id(client, "pause-names").pause()
        with pytest.raises(perdure.AsyncActivityNotFoundError, match="no such run"):
            await by_id(client, "no-such-workflow").unpause()
        waiting = await client.start(one_step, "hourly", "w", id="pause-names-2")
        await pending(waiting, lambda a: a.attempt == 1, "the wait")
        with pytest.raises(perdure.AsyncActivityNotFoundError, match="is not pending"):
            await by_id(client, "pause-names-2", ref=7).pause()
        with pytest.raises(TypeError, match="reset_attempts must be a bool"):
            await by_id(client, "pause-names-2").unpause(reset_attempts=1)  # type: ignore[arg-type]
        token = "pt1." + "x" * 10
        with pytest.raises(ValueError, match="not a task token"):
            client.get_async_activity_handle(token)
        await waiting.terminate("done")


async def test_a_token_handle_does_not_pause(client: perdure.Client) -> None:
    tokens: list[str] = []

    @activity.defn(name="hands_out_for_pause")
    async def hands_out() -> None:
        tokens.append(activity.info().task_token)
        activity.raise_complete_async()

    @workflow.defn(name="awaits_by_token")
    async def awaits() -> None:
        await hands_out()

    async with fast_worker(client, [awaits], [hands_out]):
        handle = await client.start(awaits, id="pause-token")
        await wait_until(lambda: asyncio.sleep(0, bool(tokens)), 10, what="the token")
        by_token = client.get_async_activity_handle(tokens[0])
        with pytest.raises(TypeError, match="names an activity by id"):
            await by_token.pause()
        await by_token.complete(None)
        assert await handle.result(timeout=10) is None


def test_the_blocking_client_pauses_and_unpauses(db_url: str) -> None:
    async def waiting() -> None:
        async with await perdure.Client.connect(db_url) as client:
            client.poll_interval = 0.02
            async with worker(client):
                handle = await client.start(one_step, "hourly", "y", id="pause-sync")
                await pending(handle, lambda a: a.attempt == 1 and not a.running, "the wait")

    async def finished() -> Any:
        async with await perdure.Client.connect(db_url) as client:
            client.poll_interval = 0.02
            async with worker(client):
                return await client.get_handle("pause-sync").result(timeout=10)

    asyncio.run(waiting())
    with perdure.SyncClient.connect(db_url) as sync:
        named = sync.get_async_activity_handle(workflow_id="pause-sync", activity_id=1)
        named.pause()
        assert sync.get_handle("pause-sync").describe().pending_activities[0].paused
        named.unpause()
        [info] = sync.get_handle("pause-sync").describe().pending_activities
        assert not info.paused and info.next_attempt_at is not None
    assert asyncio.run(finished()) == {"result": "shipped y"}
