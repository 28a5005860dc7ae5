"""Workflows whose activity's outcome another process gives (a worker module:
``perdure worker`` loads this file; the in-process tests register the same
functions). The activity writes its attempt's task token to the run's
stream ``token`` (one value per attempt, in order) and calls
``activity.raise_complete_async()``; the workflow returns what its await
gave, or what the ActivityError said. ``awaits_until_cancelled``, once
cancelled, waits for the signal ``finish``: its cancelled attempt stays
until someone reports the cancellation. ``keeps_retrying``'s activity
fails for ever, to be settled by id (``perdure activity complete|fail -w
ID -a 1``)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from perdure import ActivityError, RetryPolicy, activity, workflow

FAST = RetryPolicy(initial_interval=timedelta(milliseconds=50), max_attempts=3)


@activity.defn(retry=FAST, start_to_close_timeout=timedelta(hours=1))
async def ask_within_an_hour(tag: str) -> Any:
    activity.write_stream("token", activity.info().task_token)
    activity.raise_complete_async()


@activity.defn(retry=FAST)
async def ask_without_a_deadline(tag: str) -> Any:
    activity.write_stream("token", activity.info().task_token)
    activity.raise_complete_async()


async def _outcome(step: Any, tag: str) -> dict[str, Any]:
    try:
        return {"result": await step(tag)}
    except ActivityError as exc:
        return {"failed": exc.cause.type, "message": exc.cause.message, "attempt": exc.attempt}


@workflow.defn
async def awaits_an_answer(tag: str) -> dict[str, Any]:
    return await _outcome(ask_within_an_hour, tag)


@workflow.defn
async def awaits_an_answer_for_ever(tag: str) -> dict[str, Any]:
    return await _outcome(ask_without_a_deadline, tag)


@workflow.defn
async def awaits_until_cancelled(tag: str) -> dict[str, Any]:
    try:
        return await _outcome(ask_without_a_deadline, tag)
    except asyncio.CancelledError:
        await workflow.wait_signal("finish")
        return {"cancelled": True}


@activity.defn(retry=RetryPolicy(initial_interval=timedelta(milliseconds=50), backoff=1.0))
async def down_for_ever(tag: str) -> Any:
    raise RuntimeError(f"{tag}: the shipping API is down")


@workflow.defn
async def keeps_retrying(tag: str) -> dict[str, Any]:
    """Its activity fails, and is retried, until someone settles it by id."""
    return await _outcome(down_for_ever, tag)


WORKFLOWS = [awaits_an_answer, awaits_an_answer_for_ever, awaits_until_cancelled, keeps_retrying]
ACTIVITIES = [ask_within_an_hour, ask_without_a_deadline, down_for_ever]
