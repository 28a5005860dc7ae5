"""An operator changes a pending activity's options in flight
(``AsyncActivityHandle.update_options``, by id, as Temporal's ``temporal
activity update-options``): a retry waiting out its backoff waits the new
policy's delay instead; a higher max_attempts set while the last attempt
runs lets that attempt's failure be retried; a schedule_to_close deadline
moves (later, for a paused activity, or sooner, which ends it); the next
attempts come from another task queue. Refused with a clear error, nothing
changed: bad values, a policy that is not one, a max_attempts that allows
no more attempts, a token handle, what is not pending. Both backends.
"""

from __future__ import annotations

import asyncio
import time
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
seen_queues: defaultdict[str, list[str]] = defaultdict(list)
gates: defaultdict[str, asyncio.Event] = defaultdict(asyncio.Event)
healthy: set[str] = set()

FAST = RetryPolicy(initial_interval=timedelta(milliseconds=20), backoff=1.0)


@pytest.fixture(autouse=True)
def _fresh() -> None:
    calls.clear()
    seen_attempts.clear()
    seen_queues.clear()
    gates.clear()  # (an Event is bound to the loop of its first wait)
    healthy.clear()


@activity.defn(retry=FAST)
async def flaky(tag: str) -> str:
    """Fails every 20 ms until the test marks ``tag`` healthy."""
    calls[tag] += 1
    seen_attempts[tag].append(activity.info().attempt)
    seen_queues[tag].append(activity.info().task_queue)
    if tag not in healthy:
        raise RuntimeError(f"the shipping API is down ({calls[tag]})")
    return f"shipped {tag}"


@activity.defn(retry=RetryPolicy(initial_interval=timedelta(hours=1)))
async def hourly(tag: str) -> str:
    calls[tag] += 1
    if calls[tag] == 1:
        raise RuntimeError("down: the next try is in an hour")
    return f"shipped {tag}"


@activity.defn(retry=RetryPolicy(initial_interval=timedelta(milliseconds=20), max_attempts=2))
async def two_tries(tag: str) -> str:
    """Fails every attempt; attempt 2 waits for its gate first."""
    calls[tag] += 1
    seen_attempts[tag].append(activity.info().attempt)
    if activity.info().attempt == 2:
        await gates[tag].wait()
    raise RuntimeError("still down")


@activity.defn(retry=FAST, schedule_to_close_timeout=timedelta(milliseconds=1500))
async def in_a_hurry(tag: str) -> str:
    calls[tag] += 1
    if tag not in healthy:
        raise RuntimeError("down")
    return f"done {tag}"


STEPS = {
    "flaky": flaky,
    "hourly": hourly,
    "two": two_tries,
    "hurry": in_a_hurry,
    "elsewhere": flaky.options(task_queue="nobody-serves-this"),
}


@workflow.defn
async def one_step(kind: str, tag: str) -> dict[str, Any]:
    try:
        return {"result": await STEPS[kind](tag)}
    except ActivityError as exc:
        cause = exc.cause
        return {"failed": cause.type, "message": cause.message, "attempt": exc.attempt}


def worker(client: perdure.Client) -> perdure.Worker:
    return fast_worker(client, [one_step], [flaky, hourly, two_tries, in_a_hurry])


async def test_a_retry_waiting_out_its_backoff_takes_the_new_policy(
    client: perdure.Client,
) -> None:
    async with worker(client):
        handle = await client.start(one_step, "hourly", "h", id="options-backoff")
        waiting = await pending(handle, lambda a: a.attempt == 1 and not a.running, "the wait")
        assert waiting.retry_policy.initial_interval == timedelta(hours=1)
        ended = waiting.attempts[0]["ended_at"]
        assert waiting.next_attempt_at.timestamp() > ended + 3500 and waiting.deadline is None
        await by_id(client, "options-backoff").update_options(
            retry_initial_interval=timedelta(milliseconds=50), retry_max_attempts=5
        )
        # The hour is gone: the next attempt is due 50 ms after the first ended.
        assert await handle.result(timeout=10) == {"result": "shipped h"}
    assert calls["h"] == 2


async def test_the_new_options_are_described_and_a_paused_activity_keeps_them(
    client: perdure.Client,
) -> None:
    async with worker(client):
        handle = await client.start(one_step, "flaky", "p", id="options-paused")
        await pending(handle, lambda a: a.attempt >= 1, "an attempt")
        named = by_id(client, "options-paused")
        await named.pause()
        await pending(handle, lambda a: a.paused and not a.running, "paused, idle")
        await named.update_options(
            start_to_close_timeout=timedelta(seconds=30),
            heartbeat_timeout=timedelta(seconds=10),
            retry_max_interval=timedelta(minutes=5),
            retry_backoff=3.0,
        )
        info = (await handle.describe()).pending_activities[0]
        assert info.paused and info.next_attempt_at is None  # (still paused)
        assert info.start_to_close_timeout == timedelta(seconds=30)
        assert info.heartbeat_timeout == timedelta(seconds=10)
        assert info.retry_policy == RetryPolicy(
            initial_interval=timedelta(milliseconds=20),
            backoff=3.0,
            max_interval=timedelta(minutes=5),
        )
        healthy.add("p")
        await named.unpause()
        assert await handle.result(timeout=10) == {"result": "shipped p"}


async def test_more_attempts_given_under_the_last_one_let_its_failure_be_retried(
    client: perdure.Client,
) -> None:
    """Its worker decides the retry by the options as they are when the
    attempt fails, not as they were when it began."""
    async with worker(client):
        handle = await client.start(one_step, "two", "t", id="options-more-attempts")
        await pending(handle, lambda a: a.running and a.attempt == 2, "the last attempt")
        await by_id(client, "options-more-attempts").update_options(retry_max_attempts=4)
        gates["t"].set()
        result = await handle.result(timeout=10)
    assert seen_attempts["t"] == [1, 2, 3, 4]
    assert result["failed"] == "RuntimeError" and result["attempt"] == 4


async def test_fewer_attempts_than_were_made_are_refused_while_none_runs(
    client: perdure.Client,
) -> None:
    async with worker(client):
        handle = await client.start(one_step, "hourly", "f", id="options-fewer")
        await pending(handle, lambda a: a.attempt == 1 and not a.running, "the wait")
        named = by_id(client, "options-fewer")
        with pytest.raises(ValueError, match="has made 1 attempt and none is running"):
            await named.update_options(retry_max_attempts=1)
        with pytest.raises(ValueError, match="above the policy's max_interval of 360000s"):
            await named.update_options(retry_initial_interval=timedelta(hours=200))
        with pytest.raises(ValueError, match=r"retry_max_interval \(3600s\) must be at least"):
            await named.update_options(
                retry_initial_interval=timedelta(hours=2), retry_max_interval=timedelta(hours=1)
            )
        with pytest.raises(ValueError, match="at most 100 years"):
            await named.update_options(schedule_to_close_timeout=timedelta(days=40_000))
        info = (await handle.describe()).pending_activities[0]
        assert info.retry_policy == RetryPolicy(initial_interval=timedelta(hours=1))
        await named.update_options(retry_max_attempts=3)
        await named.update_options(retry_max_attempts=0)  # (no limit)
        info = (await handle.describe()).pending_activities[0]
        assert info.retry_policy.max_attempts is None
        await handle.terminate("done")


async def test_a_paused_activitys_deadline_moves_later_before_it_passes(
    client: perdure.Client,
) -> None:
    async with worker(client):
        handle = await client.start(one_step, "hurry", "u", id="options-later")
        await pending(handle, lambda a: a.attempt >= 1, "an attempt")
        named = by_id(client, "options-later")
        await named.pause()
        await named.update_options(schedule_to_close_timeout=timedelta(minutes=1))
        info = await pending(handle, lambda a: a.paused and not a.running, "paused, idle")
        started = (await handle.describe()).created_at
        assert timedelta(seconds=59) < info.deadline - started < timedelta(seconds=61)
        # Past the old deadline (1.5 s after it was scheduled), it waits on.
        await asyncio.sleep(max(0.0, started.timestamp() + 1.8 - time.time()))
        assert (await handle.describe()).pending_activities[0].paused
        healthy.add("u")
        await named.unpause()
        assert await handle.result(timeout=10) == {"result": "done u"}


async def test_a_deadline_brought_forward_ends_a_paused_activity(client: perdure.Client) -> None:
    async with worker(client):
        handle = await client.start(one_step, "flaky", "s", id="options-sooner")
        await pending(handle, lambda a: a.attempt >= 1, "an attempt")
        named = by_id(client, "options-sooner")
        await named.pause()
        # (Idle first: an attempt still running would fail by its own error,
        # its retry having no time left under the new deadline.)
        await pending(handle, lambda a: a.paused and not a.running, "paused, idle")
        await named.update_options(schedule_to_close_timeout=timedelta(milliseconds=100))
        result = await handle.result(timeout=10)
    assert result["failed"] == "ActivityTimeoutError"
    assert "schedule_to_close_timeout of 0.1s" in result["message"]


async def test_the_next_attempts_come_from_the_new_task_queue(client: perdure.Client) -> None:
    """Moved to a queue that a worker of its activities only serves (not
    its run's queue): its attempt runs there, and says so."""
    second = fast_worker(client, [], [flaky], task_queue="second-queue")
    async with worker(client), second:
        healthy.add("q")
        handle = await client.start(one_step, "elsewhere", "q", id="options-queue")
        info = await pending(handle, lambda a: a.waiting_for_worker, "waiting for a worker")
        assert info.task_queue == "nobody-serves-this" and calls["q"] == 0
        await by_id(client, "options-queue").update_options(task_queue="second-queue")
        assert await handle.result(timeout=10) == {"result": "shipped q"}
    assert seen_queues["q"] == ["second-queue"]


async def test_update_options_refuses_what_it_cannot_do(client: perdure.Client) -> None:
    tokens: list[str] = []

    @activity.defn(name="hands_out_for_options")
    async def hands_out() -> None:
        tokens.append(activity.info().task_token)
        activity.raise_complete_async()

    @workflow.defn(name="awaits_for_options")
    async def awaits() -> None:
        await hands_out()

    async with fast_worker(client, [awaits], [hands_out]):
        handle = await client.start(awaits, id="options-refused")
        await wait_until(lambda: asyncio.sleep(0, bool(tokens)), 10, what="the token")
        named = by_id(client, "options-refused")
        with pytest.raises(ValueError, match="changes nothing"):
            await named.update_options()
        with pytest.raises(TypeError, match="start_to_close_timeout must be a timedelta"):
            await named.update_options(start_to_close_timeout=30)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="heartbeat_timeout must be a positive"):
            await named.update_options(heartbeat_timeout=timedelta(0))
        with pytest.raises(ValueError, match=r"retry_backoff must be a finite number >= 1\.0"):
            await named.update_options(retry_backoff=0.5)
        with pytest.raises(TypeError, match="retry_max_attempts must be an int"):
            await named.update_options(retry_max_attempts=True)
        with pytest.raises(ValueError, match="task_queue"):
            await named.update_options(task_queue="")
        with pytest.raises(perdure.AsyncActivityNotFoundError, match="is not pending"):
            await by_id(client, "options-refused", ref=9).update_options(retry_max_attempts=3)
        with pytest.raises(perdure.AsyncActivityNotFoundError, match="no such run"):
            await by_id(client, "no-such-workflow").update_options(retry_max_attempts=3)
        by_token = client.get_async_activity_handle(tokens[0])
        with pytest.raises(TypeError, match="names an activity by id"):
            await by_token.update_options(retry_max_attempts=3)
        # An attempt awaiting completion takes the change too (for its retries).
        await named.update_options(retry_max_attempts=7)
        info = (await handle.describe()).pending_activities[0]
        assert info.awaiting_completion and info.retry_policy.max_attempts == 7
        await by_token.complete(None)
        assert await handle.result(timeout=10) is None


async def test_spans_past_the_calendar_are_described(client: perdure.Client) -> None:
    """An activity defined with a retry interval of a hundred million days
    and a timeout of three hundred million (past datetime's year 9999): describe() shows the last
    time it can hold, rather than raising."""
    ages = timedelta(days=10**8)

    @activity.defn(
        name="for_ages",
        retry=RetryPolicy(initial_interval=ages, max_interval=ages),
        schedule_to_close_timeout=ages * 3,
    )
    async def for_ages() -> None:
        raise RuntimeError("down")

    @workflow.defn(name="waits_for_ages")
    async def waits() -> None:
        await for_ages()

    async with fast_worker(client, [waits], [for_ages]):
        handle = await client.start(waits, id="options-ages")
        info = await pending(handle, lambda a: a.attempt == 1 and not a.running, "the wait")
    assert info.next_attempt_at.year == 9999 and info.deadline.year == 9999
    assert info.schedule_to_close_timeout == ages * 3
    await handle.terminate("done")


def test_the_blocking_client_updates_options(db_url: str) -> None:
    async def waiting() -> None:
        async with await perdure.Client.connect(db_url) as client:
            client.poll_interval = 0.02
            async with worker(client):
                handle = await client.start(one_step, "hourly", "y", id="options-sync")
                await pending(handle, lambda a: a.attempt == 1 and not a.running, "the wait")

    async def finished() -> Any:
        async with await perdure.Client.connect(db_url) as client:
            client.poll_interval = 0.02
            async with worker(client):
                return await client.get_handle("options-sync").result(timeout=10)

    asyncio.run(waiting())
    with perdure.SyncClient.connect(db_url) as sync:
        named = sync.get_async_activity_handle(workflow_id="options-sync", activity_id=1)
        named.update_options(retry_initial_interval=timedelta(milliseconds=10))
        [info] = sync.get_handle("options-sync").describe().pending_activities
        assert info.retry_policy.initial_interval == timedelta(milliseconds=10)
    assert asyncio.run(finished()) == {"result": "shipped y"}
