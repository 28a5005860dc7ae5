"""A schedule's fairness key (create_schedule(fairness_key=...)), in the
time-skipping environment: its runs start with it (and its start activity
carries it), an update changes it for the next times or removes it (""), a
backfill's runs have it, a schedule made without one starts runs without,
and a bad one is refused with nothing made."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import perdure
from perdure import workflow
from perdure.testing import WorkflowEnvironment

START = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


@workflow.defn
async def report() -> str | None:
    return workflow.info().fairness_key


async def _keys(e: WorkflowEnvironment, handle: Any) -> list[str | None]:
    described = await handle.describe()
    return [await e.client.get_handle(r.workflow_id).result() for r in described.recent]


async def test_a_schedules_runs_have_its_key_and_an_update_changes_it() -> None:
    async with WorkflowEnvironment(workflows=[report], start_time=START) as e:
        acme = await e.client.create_schedule(
            "acme-nightly", report, every=timedelta(hours=1), fairness_key="acme"
        )
        plain = await e.client.create_schedule("plain", report, every=timedelta(hours=1))
        described = await acme.describe()
        assert described.fairness_key == "acme" and described.to_json()["fairness_key"] == "acme"
        assert (await plain.describe()).fairness_key is None
        await e.sleep(timedelta(hours=2, minutes=30))
        assert await _keys(e, acme) == ["acme", "acme"]
        assert await _keys(e, plain) == [None, None]
        # The start itself is queued under the schedule's key.
        starts = [
            ev for ev in await acme.workflow_handle.history() if ev["type"] == "ActivityScheduled"
        ]
        assert starts and all(ev["options"]["fairness_key"] == "acme" for ev in starts)
        await acme.update(fairness_key="globex")
        await e.sleep(timedelta(hours=2))
        assert (await acme.describe()).fairness_key == "globex"
        assert (await _keys(e, acme))[-2:] == ["globex", "globex"]
        await acme.update(fairness_key="")  # (none)
        await e.sleep(timedelta(hours=2))
        assert (await acme.describe()).fairness_key is None
        assert (await _keys(e, acme))[-2:] == [None, None]
        made = await acme.backfill(START - timedelta(hours=3), START - timedelta(hours=3))
        assert await e.client.get_handle(made[0].workflow_id).result() is None


async def test_a_backfills_runs_have_the_schedules_key() -> None:
    async with WorkflowEnvironment(workflows=[report], start_time=START) as e:
        acme = await e.client.create_schedule(
            "acme-nightly", report, every=timedelta(hours=1), fairness_key="acme"
        )
        made = await acme.backfill(START - timedelta(hours=3), START - timedelta(hours=2))
        assert len(made) == 2
        for run in made:
            assert await e.client.get_handle(run.workflow_id).result() == "acme"


@pytest.mark.parametrize("bad", ["", "a\x00b", 7])
async def test_a_bad_key_makes_no_schedule(bad: Any) -> None:
    async with WorkflowEnvironment(workflows=[report], start_time=START) as e:
        with pytest.raises(ValueError, match="fairness_key"):
            await e.client.create_schedule(
                "bad", report, every=timedelta(hours=1), fairness_key=bad
            )
        with pytest.raises(perdure.WorkflowNotFoundError):
            await e.client.get_schedule("bad").describe()
        good = await e.client.create_schedule("good", report, every=timedelta(hours=1))
        if bad != "":  # ("" removes the key in an update)
            with pytest.raises(ValueError, match="fairness_key"):
                await good.update(fairness_key=bad)
        assert (await good.describe()).fairness_key is None
