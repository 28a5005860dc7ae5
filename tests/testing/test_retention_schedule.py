"""The retention job as a schedule (``perdure.delete_closed``, a built-in
workflow every worker runs): a schedule deletes, at each of its times, the
runs closed longer ago than its argument; in the time-skipping environment.
A bad argument fails its run, saying why."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

import perdure
from perdure import workflow
from perdure.testing import WorkflowEnvironment

START = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


@workflow.defn
async def quick(n: int) -> int:
    return n


async def test_a_schedule_deletes_the_runs_closed_longer_ago_than_its_age() -> None:
    async with WorkflowEnvironment(workflows=[quick], start_time=START) as e:
        for n in range(3):
            assert await e.client.execute(quick, n, id=f"quick-{n}") == n
        # Runs closed over 23 hours ago, every 6 hours (at 18:00, 00:00, 06:00,
        # 12:00): an age an hour short of the times' day, so that no run
        # closes within moments of a cutoff (with 24 hours, whether the run
        # of 18:00 deleted the one of the day before depended on how fast
        # each had run: this test failed once in CI).
        retention = await e.client.create_schedule(
            "retention", "perdure.delete_closed", 82_800.0, every=timedelta(hours=6)
        )
        await e.sleep(timedelta(hours=20))  # (three of its runs: nothing 23 hours old yet)
        assert len(await e.client.list(workflow="quick")) == 3
        await e.sleep(timedelta(hours=5))  # (its run at 12:00 the next day finds them)
        assert await e.client.list(workflow="quick") == []
        for n in range(3):
            with pytest.raises(perdure.WorkflowNotFoundError):
                await e.client.get_handle(f"quick-{n}").describe()
        runs = (await retention.describe()).recent
        deleted = [await e.client.get_handle(r.workflow_id).result() for r in runs]
    assert 3 in deleted and sum(deleted) == 3  # (one run deleted the three)


async def test_the_job_run_by_hand_and_a_bad_age() -> None:
    async with WorkflowEnvironment(workflows=[quick], start_time=START) as e:
        await e.client.execute(quick, 1, id="old")
        assert await e.client.execute("perdure.delete_closed", 0.0) == 1
        with pytest.raises(perdure.WorkflowFailedError, match="expected float, got str '30d'"):
            await e.client.execute("perdure.delete_closed", "30d")
        with pytest.raises(perdure.WorkflowFailedError, match="0 seconds or more"):
            await e.client.execute("perdure.delete_closed", -1)
