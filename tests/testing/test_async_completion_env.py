"""Asynchronous activity completion in the time-skipping environment: an
attempt that awaits its completion with no deadline is not a time to skip
to (the test's own code completes it, and the function ran once), and one
whose start_to_close_timeout passes with no outcome is lost and retried in
virtual time, at once in real time."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

import perdure
from perdure import RetryPolicy, activity, workflow
from perdure.testing import WorkflowEnvironment

handed: list[str] = []


@activity.defn
async def wait_for_a_person(request: str) -> str:
    handed.append(activity.info().task_token)
    activity.raise_complete_async()


@activity.defn(
    start_to_close_timeout=timedelta(hours=1),
    retry=RetryPolicy(initial_interval=timedelta(seconds=1), max_attempts=2),
)
async def wait_an_hour_at_most(request: str) -> str:
    handed.append(activity.info().task_token)
    activity.raise_complete_async()


@workflow.defn
async def ask_a_person(request: str) -> str:
    return await wait_for_a_person(request)


@workflow.defn
async def ask_with_a_deadline(request: str) -> str:
    return await wait_an_hour_at_most(request)


@pytest.fixture(autouse=True)
def _fresh() -> None:
    handed.clear()


async def test_no_deadline_is_no_time_to_skip_to() -> None:
    async with WorkflowEnvironment(workflows=[ask_a_person], activities=[wait_for_a_person]) as env:
        handle = await env.client.start(ask_a_person, "leave on friday")

        async def person() -> None:
            while not handed:
                await asyncio.sleep(0.01)
            # (The environment, waiting on the result meanwhile, must not
            # have skipped to the attempt's "deadline": it has none.)
            await env.client.get_async_activity_handle(handed[0]).complete("granted")

        result, _ = await asyncio.wait_for(asyncio.gather(handle.result(), person()), 30)
    assert result == "granted"
    assert len(handed) == 1  # the function ran once


async def test_a_timeout_with_no_outcome_is_retried_in_virtual_time() -> None:
    async with WorkflowEnvironment(
        workflows=[ask_with_a_deadline], activities=[wait_an_hour_at_most]
    ) as env:
        started = env.now()
        handle = await env.client.start(ask_with_a_deadline, "nobody answers")
        with pytest.raises(perdure.WorkflowFailedError) as failed:
            await asyncio.wait_for(handle.result(), 30)
        assert env.now() - started >= timedelta(hours=2)  # two attempts of an hour
    assert len(handed) == 2 and handed[0] != handed[1]
    assert "no completion came for this attempt" in failed.value.cause.message
