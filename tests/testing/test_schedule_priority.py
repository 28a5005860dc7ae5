"""A schedule's priority (create_schedule(priority=...)), in the
time-skipping environment: its runs are started at it (and its start
activity runs at it), an update changes it for the next times, a schedule
made without one starts runs of the default, and a bad one is refused with
nothing made."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import perdure
from perdure import workflow
from perdure.testing import WorkflowEnvironment

START = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


@workflow.defn
async def report() -> int:
    return workflow.info().priority


async def _priorities(e: WorkflowEnvironment, handle: Any) -> list[int]:
    described = await handle.describe()
    return [await e.client.get_handle(r.workflow_id).result() for r in described.recent]


async def test_a_schedules_runs_have_its_priority_and_an_update_changes_it() -> None:
    async with WorkflowEnvironment(workflows=[report], start_time=START) as e:
        nightly = await e.client.create_schedule(
            "nightly", report, every=timedelta(hours=1), priority=5
        )
        plain = await e.client.create_schedule("plain", report, every=timedelta(hours=1))
        described = await nightly.describe()
        assert described.priority == 5 and described.to_json()["priority"] == 5
        assert (await plain.describe()).priority == 3
        await e.sleep(timedelta(hours=2, minutes=30))
        assert await _priorities(e, nightly) == [5, 5]
        assert await _priorities(e, plain) == [3, 3]
        # The start itself is queued at the schedule's priority.
        starts = [
            ev
            for ev in await nightly.workflow_handle.history()
            if ev["type"] == "ActivityScheduled"
        ]
        assert starts and all(ev["options"]["priority"] == 5 for ev in starts)
        await nightly.update(priority=2)
        await e.sleep(timedelta(hours=2))
        assert (await nightly.describe()).priority == 2
        assert (await _priorities(e, nightly))[-2:] == [2, 2]


@pytest.mark.parametrize("bad", [0, 6, "1", True])
async def test_a_bad_priority_makes_no_schedule(bad: Any) -> None:
    async with WorkflowEnvironment(workflows=[report], start_time=START) as e:
        with pytest.raises((TypeError, ValueError), match="priority must be an int from 1"):
            await e.client.create_schedule("bad", report, every=timedelta(hours=1), priority=bad)
        with pytest.raises(perdure.WorkflowNotFoundError):
            await e.client.get_schedule("bad").describe()
        good = await e.client.create_schedule("good", report, every=timedelta(hours=1))
        with pytest.raises((TypeError, ValueError), match="priority must be an int from 1"):
            await good.update(priority=bad)
        assert (await good.describe()).priority == 3


async def test_a_backfills_runs_have_the_schedules_priority() -> None:
    async with WorkflowEnvironment(workflows=[report], start_time=START) as e:
        nightly = await e.client.create_schedule(
            "nightly", report, every=timedelta(hours=1), priority=4
        )
        made = await nightly.backfill(START - timedelta(hours=3), START - timedelta(hours=2))
        assert len(made) == 2
        for run in made:
            handle = e.client.get_handle(run.workflow_id)
            assert (await handle.describe()).priority == 4
            assert await handle.result() == 4
