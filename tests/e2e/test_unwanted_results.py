"""An attempt that completes after its run has ended (its workflow stopped
waiting, as ``asyncio.wait_for`` does, and a cancelled attempt that never
heartbeats runs on) is reported as not needed, not as a lost lease."""

from __future__ import annotations

import asyncio
import logging

import pytest
from e2e_helpers import fast_worker, wait_until

import perdure
from perdure import activity, workflow


@activity.defn
async def slow_lookup(seconds: float) -> str:
    await asyncio.sleep(seconds)  # (no heartbeat: a cancel does not reach it)
    return "found"


@workflow.defn
async def impatient() -> str:
    try:
        return await asyncio.wait_for(slow_lookup(0.5), timeout=0.05)
    except TimeoutError:
        return "gave up"


async def test_a_result_that_comes_after_the_run_ended_is_not_a_lost_lease(
    client: perdure.Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="perdure")
    async with fast_worker(client, [impatient], [slow_lookup]):
        assert await client.execute(impatient, id="impatient-1", timeout=20) == "gave up"

        async def reported() -> bool:
            return any("its result was not needed" in r.getMessage() for r in caplog.records)

        await wait_until(reported, what="the late attempt to be reported")
    [said] = [r for r in caplog.records if "its result was not needed" in r.getMessage()]
    assert said.levelno == logging.INFO
    assert "after its run had ended (completed)" in said.getMessage()
    assert not [r for r in caplog.records if "lease had run out" in r.getMessage()]
