"""WorkflowEnvironment's clock: virtual time jumps only while the test waits
for a result (or inside env.sleep) and nothing can run; otherwise it is real."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest
from toolkit_support import (
    THIRTY_DAYS,
    THREE_DAYS,
    flaky,
    greet,
    naps,
    outlasts_a_long_timeout,
    real_wait,
    retries,
    sleeps_30_days,
    ticks,
    wait_until,
    waits_for_approval,
)

import perdure
from perdure import workflow
from perdure.testing import WorkflowEnvironment

SLACK = timedelta(seconds=30)  # real time that may pass on top of the virtual jumps


async def test_a_30_day_sleep_completes_at_once_in_virtual_time() -> None:
    async with WorkflowEnvironment([sleeps_30_days], [greet]) as env:
        before = env.now()
        wall = time.perf_counter()
        result = await env.execute(sleeps_30_days, "ada")
        wall = time.perf_counter() - wall
        elapsed = env.now() - before
    assert result == "hello ada after 30 days"  # workflow.now() moved 30 days too
    assert THIRTY_DAYS <= elapsed < THIRTY_DAYS + SLACK
    assert wall < 10, f"a 30-day sleep took {wall:.2f}s of wall time"  # sanity bound only


async def test_a_signal_sent_before_the_timeout_wins() -> None:
    async with WorkflowEnvironment([waits_for_approval]) as env:
        before = env.now()
        handle = await env.start(waits_for_approval, "o-1")
        await handle.signal("approval", "approved")
        assert await handle.result() == "o-1: approved"
        assert env.now() - before < SLACK  # nothing was skipped: the signal was due first

        # Two days pass (skipped), then the signal still beats the 3-day timeout.
        handle = await env.start(waits_for_approval, "o-2")
        await env.sleep(timedelta(days=2))
        assert (await handle.describe()).status == "running"
        await handle.signal("approval", "late but in time")
        assert await handle.result() == "o-2: late but in time"
        assert timedelta(days=2) <= env.now() - before < timedelta(days=2) + SLACK


async def test_the_timeout_fires_before_a_signal_that_comes_too_late() -> None:
    async with WorkflowEnvironment([waits_for_approval]) as env:
        before = env.now()
        handle = await env.start(waits_for_approval, "o-3")
        assert await handle.result() == "o-3: escalated"
        assert THREE_DAYS <= env.now() - before < THREE_DAYS + SLACK

        handle = await env.start(waits_for_approval, "o-4")
        await env.sleep(THREE_DAYS + timedelta(minutes=1))
        assert (await handle.describe()).status == "completed"
        with pytest.raises(perdure.WorkflowClosedError):
            await handle.signal("approval", "too late")
        assert await handle.result() == "o-4: escalated"


async def test_time_does_not_skip_while_the_test_is_not_waiting() -> None:
    async with WorkflowEnvironment([waits_for_approval]) as env:
        before = env.now()
        handle = await env.start(waits_for_approval, "o-5")

        async def waiting() -> bool:
            return (await handle.describe()).waiting_signals == ["approval"]

        await wait_until(waiting, what="the approval wait")
        await asyncio.sleep(0.1)  # the worker is idle with a 3-day timer pending ...
        assert env.now() - before < SLACK  # ... and the clock has not jumped
        assert (await handle.describe()).status == "running"


async def test_env_sleep_fires_what_comes_due_on_the_way_and_stops_at_its_end() -> None:
    async with WorkflowEnvironment([ticks]) as env:
        handle = await env.start(ticks, 5, 1)

        async def started() -> bool:
            return bool(await handle.state("ticks") == 0)

        await wait_until(started, what="the first turn")
        before = env.now()
        await env.sleep(timedelta(hours=2, minutes=30))
        assert timedelta(hours=2, minutes=30) <= env.now() - before < timedelta(hours=2.5) + SLACK
        assert await handle.state("ticks") == 2
        await env.sleep(600)  # seconds work too
        assert await handle.state("ticks") == 2
        assert await handle.result() == 5
        with pytest.raises(ValueError, match="negative"):
            await env.sleep(-1)


async def test_activity_retry_backoff_is_skipped() -> None:
    async with WorkflowEnvironment([retries], [flaky]) as env:
        before = env.now()
        wall = time.perf_counter()
        assert await env.execute(retries) == 3
        assert time.perf_counter() - wall < 10
        # Attempt 2 waited 10 minutes, attempt 3 another 20.
        assert timedelta(minutes=30) <= env.now() - before < timedelta(minutes=30) + SLACK


async def test_time_does_not_skip_while_an_activity_runs() -> None:
    async with WorkflowEnvironment([outlasts_a_long_timeout], [real_wait]) as env:
        # A jump while the 0.3 s activity runs would fire the 60 s timeout first.
        assert await env.execute(outlasts_a_long_timeout) == "finished"


async def test_handles_from_the_client_and_get_handle_skip_time_too() -> None:
    async with WorkflowEnvironment([waits_for_approval, sleeps_30_days], [greet]) as env:
        assert isinstance(env.client, perdure.Client)
        await env.client.start(waits_for_approval, "o-6", id="o-6")
        assert await env.client.get_handle("o-6").result() == "o-6: escalated"
        both = await asyncio.gather(
            env.client.execute(waits_for_approval, "o-7"),
            env.client.execute(sleeps_30_days, "bob"),
        )
        assert list(both) == ["o-7: escalated", "hello bob after 30 days"]


async def test_the_handle_a_reset_returns_skips_time_too() -> None:
    async with WorkflowEnvironment([sleeps_30_days], [greet]) as env:
        first = await env.start(sleeps_30_days, "cy", id="cy")
        assert await first.result() == "hello cy after 30 days"
        before = env.now()
        again = await first.reset(to_event=1)
        assert await again.result(timeout=20) == "hello cy after 30 days"
        assert THIRTY_DAYS <= env.now() - before < THIRTY_DAYS + SLACK


async def test_start_time_sets_the_virtual_clock() -> None:
    new_year = datetime(2030, 1, 1, tzinfo=UTC)
    async with WorkflowEnvironment([naps], start_time=new_year) as env:
        assert new_year <= env.now() < new_year + SLACK
        assert await env.execute(naps, 86_400.0) >= 86_400.0
        assert new_year + timedelta(days=1) <= env.now() < new_year + timedelta(days=1) + SLACK
    with pytest.raises(ValueError, match="timezone-aware"):
        WorkflowEnvironment([naps], start_time=datetime(2030, 1, 1))
    with pytest.raises(TypeError, match="start_time must be a timezone-aware datetime, not str"):
        WorkflowEnvironment([naps], start_time="2030-01-01")  # type: ignore[arg-type]


async def test_bad_arguments_are_named() -> None:
    with pytest.raises(TypeError, match=r"workflows must be a list .* write workflows="):
        WorkflowEnvironment(naps)
    async with WorkflowEnvironment([naps]) as env:
        # NaN had driven the environment for ever; "5" had been read with float().
        for delay in (float("nan"), float("inf")):
            with pytest.raises(ValueError, match="give a finite number"):
                await asyncio.wait_for(env.sleep(delay), 10)
        with pytest.raises(TypeError, match="a delay is a timedelta or a number of seconds"):
            await env.sleep("5")  # type: ignore[arg-type]
        assert await env.execute(naps, 60.0) >= 60.0


async def test_real_time_mode_runs_on_the_wall_clock() -> None:
    async with WorkflowEnvironment([naps, waits_for_approval], time_skipping=False) as env:
        wall = time.perf_counter()
        slept = await env.execute(naps, 0.2)
        assert slept >= 0.2
        assert time.perf_counter() - wall >= 0.2

        before, wall = env.now(), time.perf_counter()
        await env.sleep(0.1)
        assert time.perf_counter() - wall >= 0.1
        assert timedelta(seconds=0.1) <= env.now() - before < SLACK

        handle = await env.start(waits_for_approval, "o-8")
        with pytest.raises(TimeoutError):
            await handle.result(timeout=0.3)  # a 3-day timer stays three real days away
        await handle.signal("approval", "yes")
        assert await handle.result(timeout=10) == "o-8: yes"


async def test_the_environment_must_be_entered() -> None:
    env = WorkflowEnvironment([naps])
    with pytest.raises(RuntimeError, match="async with"):
        await env.execute(naps, 1.0)


async def test_a_run_ended_before_its_first_turn_leaves_nothing_to_check() -> None:
    """The environment replays closed runs when it ends; one terminated or
    cancelled before any code ran has no WorkflowStarted to replay from, and
    the block had raised HistoryFormatError on leaving."""
    async with WorkflowEnvironment(workflows=[_never_ran]) as env:
        later = await env.client.start(_never_ran, start_delay=timedelta(hours=1))
        await later.terminate("changed my mind")
        with pytest.raises(perdure.WorkflowTerminatedError):
            await later.result()


@workflow.defn
async def _never_ran() -> int:
    return 1
