"""Asynchronous activity completion, on every backend: an attempt's function
calls ``activity.raise_complete_async()`` and another process gives its
outcome with the task token (``client.get_async_activity_handle``): its
result reaches the workflow, typed; a failure is retried (a new attempt, a
new token) or fails the activity; a timeout loses the attempt and retries it;
heartbeats keep it alive past its heartbeat_timeout and tell it of its
cancellation; a token that names no attempt that can still end, or no token
at all, is refused and changes nothing; a worker restarted under the same
identity does not take the attempt back. (A worker SIGKILLed while the
attempt awaits completion: tests/semantics/test_async_completion_crash.py.)"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from e2e_helpers import fast_worker, wait_until

import perdure
from perdure import ActivityError, RetryPolicy, activity, workflow

tokens: dict[str, list[str]] = {}
calls: Counter[str] = Counter()

FAST = RetryPolicy(initial_interval=timedelta(milliseconds=50), max_attempts=3)


@dataclass
class Approval:
    approved: bool
    by: str


def _hand_out(tag: str) -> None:
    calls[tag] += 1
    tokens.setdefault(tag, []).append(activity.info().task_token)


@activity.defn(retry=FAST)
async def ask(tag: str) -> Approval:
    _hand_out(tag)
    activity.raise_complete_async()


@activity.defn(retry=FAST)
def ask_in_a_thread(tag: str) -> Approval:
    _hand_out(tag)
    activity.raise_complete_async()


@activity.defn(retry=FAST, start_to_close_timeout=timedelta(seconds=1))
async def ask_briefly(tag: str) -> str:
    _hand_out(tag)
    activity.raise_complete_async()


@activity.defn(retry=FAST, heartbeat_timeout=timedelta(seconds=0.6))
async def ask_with_heartbeats(tag: str) -> str:
    _hand_out(tag)
    activity.raise_complete_async()


@workflow.defn
async def approve(tag: str) -> str:
    try:
        answer = await ask(tag)
    except ActivityError as exc:
        return f"failed: {exc.cause.type}: {exc.cause.message}"
    assert isinstance(answer, Approval)  # (decoded as the activity's return type)
    return f"{'yes' if answer.approved else 'no'} from {answer.by}"


@workflow.defn
async def approve_in_a_thread(tag: str) -> str:
    answer = await ask_in_a_thread(tag)
    return answer.by


@workflow.defn
async def approve_briefly(tag: str) -> str:
    return await ask_briefly(tag)


@workflow.defn
async def approve_with_heartbeats(tag: str) -> str:
    return await ask_with_heartbeats(tag)


@workflow.defn
async def give_up_waiting(tag: str) -> str:
    try:
        await asyncio.wait_for(ask(tag), timeout=0.3)
    except TimeoutError:
        pass
    await workflow.wait_signal("finish")
    return "gave up"


ALL_WORKFLOWS = [approve, approve_in_a_thread, approve_briefly, approve_with_heartbeats]
ALL_ACTIVITIES = [ask, ask_in_a_thread, ask_briefly, ask_with_heartbeats]


@pytest.fixture(autouse=True)
def _fresh() -> None:
    tokens.clear()
    calls.clear()


async def _token(tag: str, count: int = 1) -> str:
    async def handed_out() -> bool:
        return len(tokens.get(tag, [])) >= count

    await wait_until(handed_out, 10, what=f"attempt {count} of {tag} to hand out its token")
    return tokens[tag][count - 1]


async def _awaiting(handle: perdure.WorkflowHandle[Any]) -> Any:
    """The run's one pending activity, once it awaits its completion."""

    async def awaits() -> bool:
        pending = (await handle.describe()).pending_activities
        return bool(pending) and pending[0].awaiting_completion

    await wait_until(awaits, 10, what="the attempt to await its completion")
    return (await handle.describe()).pending_activities[0]


async def test_another_process_completes_the_attempt_with_its_token(
    client: perdure.Client,
) -> None:
    async with fast_worker(client, [approve], [ask]):
        handle = await client.start(approve, "loan-1")
        token = await _token("loan-1")
        pending = await _awaiting(handle)
        assert pending.running and pending.attempt == 1
        assert pending.completion_deadline is None  # (no timeout: none)
        await client.get_async_activity_handle(token).complete({"approved": True, "by": "ann"})
        assert await handle.result(timeout=10) == "yes from ann"
        # The first outcome wins: a second is refused and changes nothing.
        with pytest.raises(perdure.AsyncActivityNotFoundError, match="can no longer end"):
            await client.get_async_activity_handle(token).complete({"approved": False, "by": "x"})
    assert calls["loan-1"] == 1
    done = [e for e in await handle.history() if e["type"] == "ActivityCompleted"]
    assert len(done) == 1 and done[0]["attempt"] == 1


async def test_a_plain_def_activity_hands_its_outcome_on_too(client: perdure.Client) -> None:
    async with fast_worker(client, [approve_in_a_thread], [ask_in_a_thread]):
        handle = await client.start(approve_in_a_thread, "t-1")
        token = await _token("t-1")
        await _awaiting(handle)
        await client.get_async_activity_handle(token).complete({"approved": True, "by": "bo"})
        assert await handle.result(timeout=10) == "bo"


async def test_a_failure_is_retried_with_a_new_token_then_fails_the_activity(
    client: perdure.Client,
) -> None:
    async with fast_worker(client, [approve], [ask]):
        handle = await client.start(approve, "loan-2")
        first = await _token("loan-2")
        await _awaiting(handle)
        await client.get_async_activity_handle(first).fail(RuntimeError("system down"))
        # The retry policy's next attempt runs the function again.
        second = await _token("loan-2", 2)
        assert second != first
        with pytest.raises(perdure.AsyncActivityNotFoundError):
            await client.get_async_activity_handle(first).complete({"approved": True, "by": "x"})
        await _awaiting(handle)
        denied = perdure.ApplicationError("credit check failed", non_retryable=True)
        await client.get_async_activity_handle(second).fail(denied)
        assert await handle.result(timeout=10) == "failed: ApplicationError: credit check failed"
    assert calls["loan-2"] == 2
    failed = next(e for e in await handle.history() if e["type"] == "ActivityFailed")
    assert [a["error"]["message"] for a in failed["attempts"]] == [
        "system down",
        "credit check failed",
    ]


async def test_a_timeout_loses_the_attempt_and_its_retry_gets_a_new_token(
    client: perdure.Client,
) -> None:
    async with fast_worker(client, [approve_briefly], [ask_briefly]):
        handle = await client.start(approve_briefly, "quick")
        first = await _token("quick")
        pending = await _awaiting(handle)
        assert pending.completion_deadline is not None  # start_to_close: 1 s
        # No outcome within start_to_close_timeout: lost, and run again.
        second = await _token("quick", 2)
        with pytest.raises(perdure.AsyncActivityNotFoundError):
            await client.get_async_activity_handle(first).complete("too late")
        await _awaiting(handle)
        await client.get_async_activity_handle(second).complete("in time")
        assert await handle.result(timeout=10) == "in time"
    done = next(e for e in await handle.history() if e["type"] == "ActivityCompleted")
    lost = done["attempts"][0]
    assert lost["attempt"] == 1 and lost["error"]["type"] == "ActivityTimeoutError"
    assert "no completion came" in lost["error"]["message"]
    assert done["attempt"] == 2


async def test_heartbeats_keep_the_attempt_past_its_heartbeat_timeout(
    client: perdure.Client,
) -> None:
    async with fast_worker(client, [approve_with_heartbeats], [ask_with_heartbeats]):
        handle = await client.start(approve_with_heartbeats, "long")
        token = await _token("long")
        await _awaiting(handle)
        remote = client.get_async_activity_handle(token)
        loop = asyncio.get_running_loop()
        until = loop.time() + 1.8  # three heartbeat timeouts
        beats = 0
        while loop.time() < until:
            await remote.heartbeat({"step": beats})
            beats += 1
            await asyncio.sleep(0.1)
        await remote.complete("done after a while")
        assert await handle.result(timeout=10) == "done after a while"
    assert calls["long"] == 1  # never lost, never run again


async def test_a_cancelled_attempt_hears_of_it_at_its_heartbeat(client: perdure.Client) -> None:
    async with fast_worker(client, [give_up_waiting], [ask]):
        handle = await client.start(give_up_waiting, "c-1")
        token = await _token("c-1")

        async def gave_up() -> bool:
            return (await handle.describe()).waiting_signals == ["finish"]

        await wait_until(gave_up, 10, what="the workflow to cancel the activity")
        remote = client.get_async_activity_handle(token)
        with pytest.raises(perdure.AsyncActivityCancelledError, match="cancelled by its workflow"):
            await remote.heartbeat()
        await remote.report_cancellation()

        async def dropped() -> bool:
            return not (await handle.describe()).pending_activities

        await wait_until(dropped, 10, what="the cancelled attempt to end")
        with pytest.raises(perdure.AsyncActivityNotFoundError):
            await remote.heartbeat()
        await handle.signal("finish")
        assert await handle.result(timeout=10) == "gave up"
    assert calls["c-1"] == 1


async def test_bad_tokens_and_outcomes_are_refused_and_lose_nothing(
    client: perdure.Client,
) -> None:
    with pytest.raises(ValueError, match="not a task token"):
        client.get_async_activity_handle("nonsense")
    with pytest.raises(ValueError, match="not a task token"):
        client.get_async_activity_handle("pt1.bm90IGpzb24")
    with pytest.raises(TypeError, match="a task token is a str"):
        client.get_async_activity_handle(42)  # type: ignore[arg-type]
    async with fast_worker(client, [approve], [ask]):
        handle = await client.start(approve, "loan-3")
        token = await _token("loan-3")
        await _awaiting(handle)
        remote = client.get_async_activity_handle(token)
        with pytest.raises(perdure.PayloadError):
            await remote.complete(object())  # not JSON
        with pytest.raises(TypeError, match="takes the exception"):
            await remote.fail("no")  # type: ignore[arg-type]
        # Another run's attempt, or none: the same error, nothing changed.
        from perdure._asyncactivity import TaskKey, parse_task_token, task_token

        key = parse_task_token(token)
        forged = TaskKey(key.task_id, key.token + "0", key.run_id, key.ref)
        with pytest.raises(perdure.AsyncActivityNotFoundError):
            await client.get_async_activity_handle(_token_of(task_token, forged)).complete(
                {"approved": True, "by": "mallory"}
            )
        pending = await _awaiting(handle)
        assert pending.attempt == 1
        await remote.complete({"approved": False, "by": "cy"})
        assert await handle.result(timeout=10) == "no from cy"


def _token_of(make: Any, key: Any) -> str:
    from perdure._store.base import ActivityTask

    task = ActivityTask(
        task_id=key.task_id,
        token=key.token,
        run_id=key.run_id,
        workflow_id="",
        workflow_type="",
        ref=key.ref,
        name="",
        task_queue="",
        args=[],
        kwargs={},
        options={},
        attempt=1,
        scheduled_at=0.0,
    )
    return str(make(task))


async def test_a_worker_restarted_under_its_identity_leaves_the_attempt_waiting(
    client: perdure.Client,
) -> None:
    async with fast_worker(client, [approve], [ask], identity="w-1"):
        handle = await client.start(approve, "loan-4")
        token = await _token("loan-4")
        await _awaiting(handle)
    # A restart takes its own leases back at once: not this attempt's.
    async with fast_worker(client, [approve], [ask], identity="w-1") as worker:
        polls = worker.polls

        async def polled() -> bool:
            return worker.polls >= polls + 3

        await wait_until(polled, 10, what="the worker to look for work")
        pending = await _awaiting(handle)
        assert pending.attempt == 1 and calls["loan-4"] == 1
        await client.get_async_activity_handle(token).complete({"approved": True, "by": "di"})
        assert await handle.result(timeout=10) == "yes from di"
    assert calls["loan-4"] == 1


def test_raise_complete_async_outside_an_activity_says_so() -> None:
    with pytest.raises(RuntimeError, match="only be called in a running activity"):
        activity.raise_complete_async()


def test_a_token_naming_ids_no_database_holds_is_no_token(client: perdure.Client) -> None:
    from perdure._asyncactivity import TaskKey, task_token

    for task_id, ref in [(2**63, 1), (1, 2**31), (0, 1), (1, 0), (-5, 1)]:
        forged = _token_of(task_token, TaskKey(task_id, "t", "r", ref))
        with pytest.raises(ValueError, match="not a task token"):
            client.get_async_activity_handle(forged)
