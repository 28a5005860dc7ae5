"""A schedule's jitter (create_schedule(jitter=...)), in the time-skipping
environment: each time's run starts at an offset of its own within the
jitter, the same offset on every replay and for every reader, different for
two schedules of the same times; runs keep their times' ids and nothing is
counted missed; bad jitter is refused with nothing made; an update changes
it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from perdure import _schedule_spec, workflow
from perdure.testing import WorkflowEnvironment

START = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


@workflow.defn
async def stamp() -> float:
    return workflow.now().timestamp()  # (when the schedule started this run)


def spec(schedule_id: str, jitter: float, every: float = 3600.0) -> _schedule_spec.ScheduleSpec:
    return _schedule_spec.ScheduleSpec(
        schedule_id, "stamp", [], "default", every=every, jitter=jitter
    )


def test_a_times_offset_is_its_own_within_the_jitter_and_always_the_same() -> None:
    due = START.timestamp() + 3600
    a, b = spec("a", 600.0), spec("b", 600.0)
    offsets = [_schedule_spec.start_time(a, due + 3600 * n) - (due + 3600 * n) for n in range(50)]
    assert all(0 <= o < 600 for o in offsets)
    assert len({round(o, 6) for o in offsets}) == 50  # (spread, not one offset for all)
    assert max(offsets) - min(offsets) > 300
    assert _schedule_spec.start_time(a, due) == _schedule_spec.start_time(spec("a", 600.0), due)
    assert _schedule_spec.start_time(a, due) != _schedule_spec.start_time(b, due)
    assert _schedule_spec.start_time(spec("a", 0.0), due) == due  # (no jitter: the time itself)


async def test_runs_start_within_the_jitter_at_their_own_offsets() -> None:
    async with WorkflowEnvironment(workflows=[stamp], start_time=START) as e:
        # (A catch-up window of ten seconds: the window counts from each
        # time's start, offset included, or every run would count as missed.)
        handles = [
            await e.client.create_schedule(
                name,
                stamp,
                every=timedelta(hours=1),
                jitter=timedelta(minutes=20),
                catchup_window=timedelta(seconds=10),
            )
            for name in ("left", "right")
        ]
        assert (await handles[0].describe()).jitter == timedelta(minutes=20)
        assert (await handles[0].describe()).to_json()["jitter_seconds"] == 1200.0
        await e.sleep(timedelta(hours=5, minutes=30))
        described = [await h.describe() for h in handles]
        starts = {
            (d.schedule_id, r.scheduled_at): await e.client.get_handle(r.workflow_id).result()
            for d in described
            for r in d.recent
        }
    for d in described:
        # One run per hour, under each hour's id; nothing missed or skipped.
        assert [r.scheduled_time.hour for r in d.recent] == [13, 14, 15, 16, 17]
        assert d.times_missed == 0 and d.runs_skipped == 0
    offsets = {key: at - key[1] for key, at in starts.items()}
    assert all(0 <= o < 1200 for o in offsets.values()), offsets
    for (name, due), offset in offsets.items():
        expected = _schedule_spec.start_time(spec(name, 1200.0), due) - due
        assert abs(offset - expected) < 0.5, (name, due, offset, expected)  # (+ the start's own ms)
    # Two schedules of the same times did not start together.
    assert (
        offsets[("left", described[0].recent[0].scheduled_at)]
        != offsets[("right", described[1].recent[0].scheduled_at)]
    )


async def test_bad_jitter_is_refused_and_an_update_changes_it() -> None:
    async with WorkflowEnvironment(workflows=[stamp], start_time=START) as e:
        client = e.client
        for bad, why in [
            (timedelta(seconds=-1), "from 0 to a day"),
            (timedelta(days=2), "from 0 to a day"),
            (timedelta(hours=1), "shorter than the gap between the schedule's times"),
        ]:
            with pytest.raises(ValueError, match=why):
                await client.create_schedule("bad", stamp, every=timedelta(hours=1), jitter=bad)
        with pytest.raises(ValueError, match=r"\(60s at the least\)"):
            await client.create_schedule(
                "bad", stamp, cron="* * * * *", jitter=timedelta(minutes=2)
            )
        with pytest.raises(TypeError, match="jitter must be a timedelta"):
            await client.create_schedule("bad", stamp, every=timedelta(hours=1), jitter=30)  # type: ignore[arg-type]
        assert await client.list_schedules() == []  # nothing was made
        handle = await client.create_schedule("later", stamp, every=timedelta(hours=1))
        assert (await handle.describe()).jitter == timedelta(0)
        with pytest.raises(ValueError, match="shorter than the gap"):
            await handle.update(jitter=timedelta(hours=2))
        await handle.update(jitter=timedelta(minutes=5))
        await e.sleep(timedelta(hours=2, minutes=10))
        described = await handle.describe()
        assert described.jitter == timedelta(minutes=5)
        late = [
            await client.get_handle(r.workflow_id).result() - r.scheduled_at
            for r in described.recent
        ]
    assert late and all(0 <= o < 300 for o in late), late
    assert any(o > 0 for o in late)
