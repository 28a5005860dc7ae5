"""An attempt awaiting completion (``activity.raise_complete_async()``) hears
of an operator's pause or reset at its completer's next heartbeat, as a
worker's attempt hears of them at its own: ``AsyncActivityHandle.heartbeat``
raises ``AsyncActivityCancelledError`` with the reason, and
``report_cancellation()`` hands the attempt back, not counted. A paused
activity then waits for its unpause; a reset one runs again at once, as
attempt 1, from its heartbeat details as the reset left them. The workflow's
cancellation still ends the activity, and wins over a pause. Both backends,
by token and by id."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from e2e_helpers import fast_worker, wait_until

import perdure
from perdure import RetryPolicy, activity, workflow
from perdure.errors import AsyncActivityCancelledError, AsyncActivityNotFoundError

seen: dict[str, list[tuple[int, Any]]] = {}  # tag -> (attempt, heartbeat details) per attempt
tokens: dict[str, list[str]] = {}


@activity.defn(retry=RetryPolicy(initial_interval=timedelta(hours=1), max_attempts=1))
async def ask(tag: str) -> str:
    info = activity.info()
    seen.setdefault(tag, []).append((info.attempt, info.heartbeat_details))
    tokens.setdefault(tag, []).append(info.task_token)
    activity.raise_complete_async()


@workflow.defn
async def approve(tag: str) -> str:
    return await ask(tag)


@workflow.defn
async def give_up_waiting(tag: str) -> str:
    try:
        await asyncio.wait_for(ask(tag), timeout=0.5)  # (cancels the activity)
    except TimeoutError:
        pass
    await workflow.wait_signal("finish")
    return "gave up"


@pytest.fixture(autouse=True)
def _fresh() -> None:
    seen.clear()
    tokens.clear()


async def _token(tag: str, count: int = 1) -> str:
    async def handed_out() -> bool:
        return len(tokens.get(tag, [])) >= count

    await wait_until(handed_out, 10, what=f"attempt {count} of {tag} to hand out its token")
    return tokens[tag][count - 1]


async def _pending(handle: perdure.WorkflowHandle) -> Any:
    [info] = (await handle.describe()).pending_activities
    return info


@pytest.mark.parametrize("named", ["token", "id"])
async def test_a_pause_stops_the_attempt_at_its_completers_heartbeat(
    client: perdure.Client, named: str
) -> None:
    async with fast_worker(client, [approve], [ask]):
        handle = await client.start(approve, "p", id=f"paused-{named}")
        token = await _token("p")
        by_id = client.get_async_activity_handle(workflow_id=f"paused-{named}", activity_id=1)
        completer = client.get_async_activity_handle(token) if named == "token" else by_id
        await completer.heartbeat({"page": 1})  # (nothing asked yet)
        await by_id.pause()
        with pytest.raises(AsyncActivityCancelledError, match="was paused by an operator") as told:
            await completer.heartbeat({"page": 2})
        assert told.value.reason == "paused"
        assert await completer.report_cancellation() == "paused"

        # Handed back, not counted: parked until the unpause, no attempt awaits.
        info = await _pending(handle)
        assert info.paused and not info.awaiting_completion and not info.running
        assert (info.attempt, info.next_attempt_at) == (0, None)
        assert info.last_failure["type"] == "ActivityPaused"
        with pytest.raises(AsyncActivityNotFoundError):
            await client.get_async_activity_handle(token).complete("too late")

        await by_id.unpause()
        again = await _token("p", 2)
        # Attempt 1 again (max_attempts 1 allowed no other), from the details
        # of the heartbeat that heard of the pause.
        assert seen["p"] == [(1, None), (1, {"page": 2})]
        await client.get_async_activity_handle(again).complete("approved")
        assert await handle.result(timeout=10) == "approved"
    [done] = [e for e in await handle.history() if e["type"] == "ActivityCompleted"]
    assert [(a["attempt"], a["error"]) for a in done["attempts"]] == [(1, None)]


@pytest.mark.parametrize("clear", [False, True])
async def test_a_reset_stops_the_attempt_and_the_next_starts_at_once_as_attempt_1(
    client: perdure.Client, clear: bool
) -> None:
    async with fast_worker(client, [approve], [ask]):
        handle = await client.start(approve, "r", id=f"reset-{clear}")
        completer = client.get_async_activity_handle(await _token("r"))
        await completer.heartbeat({"page": 10})
        by_id = client.get_async_activity_handle(workflow_id=f"reset-{clear}", activity_id=1)
        await by_id.reset(clear_heartbeat_details=clear)
        assert (await _pending(handle)).reset_requested
        with pytest.raises(AsyncActivityCancelledError, match="was reset by an operator") as told:
            await completer.heartbeat({"page": 11})  # (not written: the reset's details stand)
        assert told.value.reason == "reset"
        assert await completer.report_cancellation() == "reset"

        again = await _token("r", 2)
        assert seen["r"] == [(1, None), (1, None if clear else {"page": 10})]

        async def awaits() -> bool:  # (its worker lets it go just after the token is out)
            return bool((await _pending(handle)).awaiting_completion)

        await wait_until(awaits, what="attempt 1 to await completion again")
        info = await _pending(handle)
        assert info.attempt == 1 and not info.reset_requested
        assert info.last_failure["type"] == "ActivityReset"
        await client.get_async_activity_handle(again).heartbeat({"page": 12})  # (heard nothing)
        await client.get_async_activity_handle(again).complete("approved")
        assert await handle.result(timeout=10) == "approved"


async def test_the_workflows_cancellation_wins_over_a_pause(client: perdure.Client) -> None:
    async with fast_worker(client, [give_up_waiting], [ask]):
        handle = await client.start(give_up_waiting, "c", id="cancelled-and-paused")
        completer = client.get_async_activity_handle(await _token("c"))
        await client.get_async_activity_handle(
            workflow_id="cancelled-and-paused", activity_id=1
        ).pause()

        async def cancel_requested() -> bool:
            try:
                await completer.heartbeat()
            except AsyncActivityCancelledError as exc:
                return exc.reason == "cancelled"
            return False

        await wait_until(cancel_requested, what="the heartbeat to say cancelled")
        assert await completer.report_cancellation() == "cancelled"
        await handle.signal("finish", None)
        assert await handle.result(timeout=10) == "gave up"
    assert len(tokens["c"]) == 1  # (cancelled: not run again)


async def test_a_pause_undone_before_the_report_hands_the_attempt_back_all_the_same(
    client: perdure.Client,
) -> None:
    """The completer heard of a pause, and the operator unpaused before the
    report came: the attempt is handed back (the next due at once), not
    ended as a cancellation nobody asked for. So is a report with nothing
    asked at all."""
    async with fast_worker(client, [approve], [ask]):
        handle = await client.start(approve, "u", id="undone")
        completer = client.get_async_activity_handle(await _token("u"))
        by_id = client.get_async_activity_handle(workflow_id="undone", activity_id=1)
        await by_id.pause()
        with pytest.raises(AsyncActivityCancelledError):
            await completer.heartbeat()
        await by_id.unpause()
        assert await completer.report_cancellation() is None
        again = client.get_async_activity_handle(await _token("u", 2))
        info = await _pending(handle)
        assert (info.attempt, info.last_failure["type"]) == (1, "ActivityStopped")
        assert await again.report_cancellation() is None  # (nothing asked at all)
        last = client.get_async_activity_handle(await _token("u", 3))
        await last.complete("approved")
        assert await handle.result(timeout=10) == "approved"
    assert [attempt for attempt, _ in seen["u"]] == [1, 1, 1]
