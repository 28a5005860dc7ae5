"""Runtime bugs the replay fuzzer found, pinned by minimal reproducers.

1. Commands issued *after* the closing command of a turn. When the workflow function
   ends (returns or raises) while a task it created is still running, and that task
   wakes in the same turn after the main task's done-callback, its commands are
   recorded after ``WorkflowCompleted``/``WorkflowFailed``: the history says the run
   scheduled an activity after it closed. Fix (``WorkflowInstance``): once closed,
   ``issue()`` drops commands and ``activate()`` stops running the ready queue (and,
   on replay, ignores recorded commands after the closing one, so histories already
   written that way still replay).
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "runtime"))

from fuzz_workflows import echo
from runtime_driver import LIVE, Driver

from perdure import _history as h
from perdure import workflow


@workflow.defn
async def fails_with_a_task_behind() -> None:
    async def background() -> None:
        await workflow.sleep(1)
        await echo("late")

    left_running = asyncio.create_task(background())
    await echo("main")  # fails: the run ends with left_running still running
    await left_running


def test_no_command_is_recorded_after_the_run_closed() -> None:
    driver = Driver(fails_with_a_task_behind)
    try:
        first = driver.turn()
        assert [type(c).__name__ for c in first] == ["ScheduleActivity", "StartTimer"]
        failure = {"type": "Boom", "message": "no", "traceback": ""}
        second = driver.turn(
            h.ActivityFailed(ref=1, failure=failure), h.TimerFired(ref=2), advance=1.0
        )
        assert [type(c).__name__ for c in second] == ["FailWorkflow"], second
    finally:
        while LIVE:
            LIVE.pop().evict()
