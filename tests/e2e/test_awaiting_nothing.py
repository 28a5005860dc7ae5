"""``describe().awaiting_nothing``: an open run whose code awaits something
no input can complete (an ``asyncio.Event`` only workflow code could set, a
bare Future), with no activity, timer, child or signal wait pending. It had
looked like any running run, for ever: nothing pending and no error."""

from __future__ import annotations

import asyncio
import time

from e2e_helpers import fast_worker, wait_until

import perdure
from perdure import activity, workflow


@activity.defn
async def step(i: int) -> int:
    return i


@activity.defn(task_queue="nobody-serves-this")
async def far_step(i: int) -> int:
    return i


@workflow.defn
async def awaits_an_event(n: int) -> int:
    await step(n)
    await asyncio.Event().wait()
    return n


@workflow.defn
async def waits_properly(how: str) -> str:
    if how == "signal":
        return str(await workflow.wait_signal("go"))
    if how == "timer":
        await workflow.sleep(3600)
    if how == "activity":
        await far_step(1)
    return how


async def _described(handle: perdure.WorkflowHandle) -> perdure.WorkflowDescription:
    return await handle.describe()


async def test_a_run_that_awaits_nothing_says_so_and_a_cancel_moves_it(
    client: perdure.Client,
) -> None:
    async with fast_worker(client, [awaits_an_event], [step]):
        handle = await client.start(awaits_an_event, 1)

        async def says_so() -> bool:
            return (await handle.describe()).awaiting_nothing

        await wait_until(says_so, what="describe() to say the run awaits nothing")
        description = await handle.describe()
        assert description.status == "running" and description.last_error is None
        await handle.cancel()
        await wait_until(lambda: _status_is(handle, "cancelled"), what="the cancel to end the run")
        assert not (await handle.describe()).awaiting_nothing


async def _status_is(handle: perdure.WorkflowHandle, status: str) -> bool:
    return (await handle.describe()).status == status


async def test_runs_that_wait_for_something_do_not_say_so(client: perdure.Client) -> None:
    async with fast_worker(client, [waits_properly], [step]):
        handles = [
            await client.start(waits_properly, how) for how in ("signal", "timer", "activity")
        ]

        async def settled() -> bool:
            # Each waits, and has been still for longer than the second the
            # view waits before it says a run awaits nothing.
            signal, timer, far = [await h.describe() for h in handles]
            still = all(time.time() - d.updated_at.timestamp() > 1.2 for d in (signal, timer, far))
            return still and bool(
                signal.waiting_signals and timer.pending_timers and far.pending_activities
            )

        await wait_until(settled, what="the runs to wait, and be still")
        for handle in handles:
            assert not (await handle.describe()).awaiting_nothing
