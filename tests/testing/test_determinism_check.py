"""The environment replays every run that closed against the current code, so a
workflow that is not deterministic fails its test, not a production replay."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from toolkit_support import calls_unregistered, coin_flips, greet, seeded_coin_flips

import perdure
from perdure import NonDeterminismError, workflow
from perdure.testing import WorkflowEnvironment, WorkflowStuckError


async def test_branching_on_real_randomness_fails_the_result() -> None:
    async with WorkflowEnvironment([coin_flips], [greet]) as env:
        with pytest.raises(NonDeterminismError) as caught:
            await env.execute(coin_flips)
    message = str(caught.value)
    assert "non-determinism in workflow 'coin_flips'" in message
    assert "history recorded" in message and "the workflow code issued" in message
    assert "workflow.random()" in message  # says what to do instead


async def test_seeded_randomness_passes_the_check() -> None:
    async with WorkflowEnvironment([seeded_coin_flips], [greet]) as env:
        heads = await env.execute(seeded_coin_flips)
    assert 0 <= heads <= 30


async def test_a_run_nobody_awaited_is_checked_when_the_environment_closes() -> None:
    env = WorkflowEnvironment([coin_flips], [greet])
    with pytest.raises(NonDeterminismError, match="coin_flips"):
        async with env:
            handle = await env.start(coin_flips)
            await env.sleep(timedelta(minutes=1))  # thirty 1-second timers at most
            assert (await handle.describe()).status == "completed"


async def test_the_check_can_be_turned_off() -> None:
    async with WorkflowEnvironment([coin_flips], [greet], check_determinism=False) as env:
        assert 0 <= await env.execute(coin_flips) <= 30


async def test_an_unregistered_activity_fails_fast_instead_of_hanging() -> None:
    async with WorkflowEnvironment([calls_unregistered]) as env:
        with pytest.raises(WorkflowStuckError, match="activity 'greet' is not registered"):
            await env.execute(calls_unregistered, timeout=30)


async def test_an_unregistered_workflow_fails_fast_instead_of_hanging() -> None:
    async with WorkflowEnvironment([seeded_coin_flips], [greet]) as env:
        with pytest.raises(WorkflowStuckError, match="'no_such_workflow' is not registered"):
            await env.execute("no_such_workflow", timeout=30)


@workflow.defn
async def spins_in_a_test(n: int) -> int:
    while n:  # never awaits
        pass
    return n


@workflow.defn
async def awaits_an_event_in_a_test() -> str:
    await greet("ada")
    await asyncio.Event().wait()  # nothing will ever set it
    return "never"


async def test_code_that_never_awaits_fails_the_test_instead_of_hanging() -> None:
    async with WorkflowEnvironment([spins_in_a_test], deadlock_timeout=0.2) as env:
        with pytest.raises(WorkflowStuckError, match=r"without awaiting .*in spins_in_a_test"):
            await env.execute(spins_in_a_test, 1, timeout=30)


async def test_a_run_that_waits_for_nothing_fails_the_test_instead_of_hanging() -> None:
    async with WorkflowEnvironment([awaits_an_event_in_a_test], [greet]) as env:
        with pytest.raises(WorkflowStuckError, match="waits for nothing that can come"):
            await env.execute(awaits_an_event_in_a_test, timeout=30)


async def test_a_run_waiting_for_a_cancel_gets_it_from_the_test() -> None:
    """A run that waits to be cancelled, and a test that cancels it while
    awaiting its result: the grace before WorkflowStuckError lets it come."""
    async with WorkflowEnvironment([awaits_an_event_in_a_test], [greet]) as env:
        handle = await env.start(awaits_an_event_in_a_test)
        result = asyncio.ensure_future(handle.result(timeout=30))
        await asyncio.sleep(0.2)  # (the run is waiting by then; the grace is 1 s)
        await handle.cancel()
        with pytest.raises(perdure.WorkflowCancelledError):
            await result
