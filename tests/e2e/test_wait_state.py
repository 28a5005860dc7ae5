"""WorkflowHandle.wait_state: a caller waits for a key a run publishes
(DBOS's get_event): the value once it is there, across continue-as-new;
TimeoutError when it does not come in time; WorkflowClosedError when the
run ends without it; bad arguments refused."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from e2e_helpers import fast_worker

import perdure
from perdure import activity, workflow
from perdure.testing import WorkflowEnvironment


@activity.defn
async def create_payment(order: str) -> str:
    await asyncio.sleep(0.2)  # the payment provider's round trip
    return f"https://pay.example/{order}"


@workflow.defn
async def checkout(order: str, rolled: bool = False) -> str:
    if not rolled:
        workflow.continue_as_new(order, True)
    workflow.set_state("payment_url", await create_payment(order))
    await workflow.wait_signal("paid", timeout=timedelta(hours=1))
    return "paid"


@workflow.defn
async def quiet(seconds: float) -> None:
    workflow.set_state("other", 1)
    await workflow.sleep(timedelta(seconds=seconds))


async def test_a_caller_waits_for_the_published_value(client: perdure.Client) -> None:
    async with fast_worker(client, [checkout, quiet], [create_payment]):
        handle = await client.start(checkout, "o-7", id="checkout-o-7")
        # (The first run continues as new: the next one publishes it.)
        url = await handle.wait_state("payment_url", timeout=30)
        assert url == "https://pay.example/o-7"
        assert await handle.wait_state("payment_url", timeout=0) == url  # there: at once
        latest = client.get_handle(handle.id)  # (the start's handle names the first run)
        assert await latest.wait_state("payment_url", timeout=0) == url
        await latest.signal("paid", None)
        assert await latest.result(timeout=30) == "paid"

        waiting = await client.start(quiet, 0.5)
        with pytest.raises(TimeoutError, match=r"did not publish state 'never' within 0\.1s"):
            await waiting.wait_state("never", timeout=0.1)
        with pytest.raises(perdure.WorkflowClosedError, match="ended completed without"):
            await waiting.wait_state("never", timeout=30)
        for key, timeout, error in (
            (1, 1.0, TypeError),
            ("k", "1", TypeError),
            ("k", -1, ValueError),
            ("k", float("nan"), ValueError),
        ):
            with pytest.raises(error):
                await waiting.wait_state(key, timeout)  # type: ignore[arg-type]


async def test_wait_state_skips_time_in_the_test_environment() -> None:
    @workflow.defn(name="late_publisher")
    async def late_publisher() -> None:
        await workflow.sleep(timedelta(days=2))
        workflow.set_state("ready", "yes")
        await workflow.sleep(timedelta(days=1))

    async with WorkflowEnvironment(workflows=[late_publisher]) as env:
        handle = await env.start(late_publisher)
        started = env.now()
        assert await handle.wait_state("ready", timeout=10) == "yes"
        assert env.now() - started >= timedelta(days=2)
