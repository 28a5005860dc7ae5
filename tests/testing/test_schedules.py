"""Schedules (Client.create_schedule), in the time-skipping environment: the
runs start at the cron's times and the interval's, each under its time's
id; pause, unpause, trigger, the overlap policies, delete and create again,
a schedule's long life across continue-as-new, and bad input refused with
nothing made."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

import perdure
from perdure import _schedule_spec, _schedule_workflow, schedules, workflow
from perdure.testing import Replayer, WorkflowEnvironment

START = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


@dataclass
class Report:
    name: str
    pages: int


@workflow.defn
async def report(spec: Report) -> str:
    assert isinstance(spec, Report)  # decoded by the hint, through the schedule
    return f"{spec.name}:{spec.pages}@{workflow.now().isoformat(timespec='minutes')}"


@workflow.defn
async def slow_report(minutes: float) -> str:
    await workflow.sleep(timedelta(minutes=minutes))
    return "done"


@workflow.defn
async def rolling_report(minutes: float, rolled: bool = False) -> str:
    """Continues as new at once, then sleeps: one run of the id, in two runs."""
    if not rolled:
        workflow.continue_as_new(minutes, True)
    await workflow.sleep(timedelta(minutes=minutes))
    return "done"


def env() -> WorkflowEnvironment:
    return WorkflowEnvironment(workflows=[report, slow_report, rolling_report], start_time=START)


async def results(e: WorkflowEnvironment, described: schedules.ScheduleDescription) -> list[str]:
    return [
        await e.client.get_handle(r.workflow_id).result(timeout=10)
        for r in described.recent
        if r.run_id is not None
    ]


async def test_runs_start_at_the_crons_times_under_their_times_ids() -> None:
    async with env() as e:
        handle = await e.client.create_schedule(
            "nightly", report, Report("sales", 3), cron="0 2 * * *"
        )
        first = await handle.describe()
        assert first.next_run_at == datetime(2026, 12, 6, 2, tzinfo=UTC)
        assert (first.cron, first.timezone, first.overlap) == ("0 2 * * *", "UTC", "skip")
        await e.sleep(timedelta(days=3))
        described = await handle.describe()
    assert [r.workflow_id for r in described.recent] == [
        "nightly@2026-12-06T02:00:00Z",
        "nightly@2026-12-07T02:00:00Z",
        "nightly@2026-12-08T02:00:00Z",
    ]
    assert [r.scheduled_time.day for r in described.recent] == [6, 7, 8]
    assert described.runs_started == 3 and described.runs_skipped == 0
    assert described.next_run_at == datetime(2026, 12, 9, 2, tzinfo=UTC)


async def test_each_run_gets_the_arguments_decoded_by_its_hints() -> None:
    async with env() as e:
        handle = await e.client.create_schedule(
            "r", report, Report("ops", 7), every=timedelta(hours=6)
        )
        await e.sleep(timedelta(hours=13))
        described = await handle.describe()
        done = await results(e, described)
    # Every six hours, on the epoch's grid: 18:00 and 00:00 after 12:00.
    assert done == ["ops:7@2026-12-05T18:00+00:00", "ops:7@2026-12-06T00:00+00:00"]


async def test_a_time_zone_reads_the_cron_on_its_wall_clock() -> None:
    async with env() as e:
        handle = await e.client.create_schedule(
            "ny", report, Report("ny", 1), cron="0 9 * * *", timezone="America/New_York"
        )
        assert (await handle.describe()).next_run_at == datetime(2026, 12, 5, 14, tzinfo=UTC)


async def test_pause_stops_the_runs_and_unpause_does_not_catch_up() -> None:
    async with env() as e:
        handle = await e.client.create_schedule(
            "hourly", report, Report("h", 1), every=timedelta(hours=1)
        )
        await e.sleep(timedelta(minutes=90))  # 13:00
        await handle.pause("maintenance window")
        await e.sleep(timedelta(minutes=1))
        paused = await handle.describe()
        assert (paused.paused, paused.note, paused.next_run_at) == (
            True,
            "maintenance window",
            None,
        )
        await e.sleep(timedelta(hours=5))
        assert (await handle.describe()).runs_started == 1
        await handle.unpause()
        await e.sleep(timedelta(minutes=1))
        unpaused = await handle.describe()
        assert unpaused.paused is False and unpaused.note is None
        assert unpaused.next_run_at == datetime(2026, 12, 5, 19, tzinfo=UTC)
        await e.sleep(timedelta(hours=1))
        described = await handle.describe()
    assert [r.scheduled_time.hour for r in described.recent] == [13, 19]
    assert described.times_missed == 0


async def test_a_trigger_starts_a_run_now() -> None:
    async with env() as e:
        handle = await e.client.create_schedule("weekly", report, Report("w", 2), cron="@weekly")
        await e.sleep(timedelta(minutes=5))
        await handle.trigger()
        await e.sleep(timedelta(minutes=1))
        described = await handle.describe()
        done = await results(e, described)
    [run] = described.recent
    assert run.trigger is True and run.workflow_id.startswith("weekly@2026-12-05T12:05")
    assert run.workflow_id.endswith("~trigger1")
    assert done == ["w:2@2026-12-05T12:05+00:00"]
    assert described.next_run_at == datetime(2026, 12, 6, tzinfo=UTC)  # a Sunday


@pytest.mark.parametrize("overlap", ["skip", "allow"])
async def test_the_overlap_policy(overlap: str) -> None:
    async with env() as e:
        handle = await e.client.create_schedule(
            "slow", slow_report, 90, every=timedelta(hours=1), overlap=overlap
        )
        await e.sleep(timedelta(hours=3, minutes=1))  # 13:00, 14:00, 15:00
        described = await handle.describe()
    first, second, third = described.recent
    assert first.run_id is not None and third.run_id is not None
    if overlap == "skip":  # 13:00's run sleeps until 14:30
        assert second.run_id is None
        assert second.skipped == "slow@2026-12-05T13:00:00Z was still running"
        assert (described.runs_started, described.runs_skipped) == (2, 1)
    else:
        assert second.run_id is not None and second.skipped is None
        assert (described.runs_started, described.runs_skipped) == (3, 0)


async def test_a_run_that_continued_as_new_still_counts_as_running() -> None:
    async with env() as e:
        handle = await e.client.create_schedule(
            "rolling", rolling_report, 90, every=timedelta(hours=1)
        )
        await e.sleep(timedelta(hours=2, minutes=1))  # 13:00, 14:00
        described = await handle.describe()
    first, second = described.recent
    assert first.run_id is not None
    assert second.skipped == "rolling@2026-12-05T13:00:00Z was still running"


async def test_delete_ends_it_and_frees_the_id() -> None:
    async with env() as e:
        handle = await e.client.create_schedule("daily", report, Report("d", 1), cron="0 0 * * *")
        with pytest.raises(perdure.WorkflowAlreadyStartedError, match="'daily' already exists"):
            await e.client.create_schedule("daily", report, Report("d", 2), cron="0 1 * * *")
        assert [s.schedule_id for s in await e.client.list_schedules()] == ["daily"]
        await handle.delete()
        deleted = await handle.describe()
        assert deleted.status == "terminated" and deleted.next_run_at is None
        assert await e.client.list_schedules() == []
        await e.sleep(timedelta(days=1))
        assert (await handle.describe()).runs_started == 0
        again = await e.client.create_schedule("daily", report, Report("d", 3), cron="0 1 * * *")
        await e.sleep(timedelta(hours=14))
        described = await again.describe()
        done = await results(e, described)
    assert described.status == "running" and described.cron == "0 1 * * *"
    assert done == ["d:3@2026-12-07T01:00+00:00"]


async def test_a_long_lived_schedule_continues_as_new_and_keeps_its_count(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(schedules, "MAX_HISTORY", 25)
    async with env() as e:
        handle = await e.client.create_schedule(
            "often", report, Report("o", 1), every=timedelta(minutes=1)
        )
        await e.sleep(timedelta(minutes=30, seconds=30))
        described = await handle.describe()
        runs = await e.client.list(workflow="perdure.schedule")
        history = await handle.workflow_handle.history()
    assert described.runs_started == 30 and described.status == "running"
    assert [r.scheduled_time.minute for r in described.recent] == list(range(21, 31))
    assert len(runs) >= 3  # the schedule's runs, one continuing the other
    assert Replayer([report]).replay(history).ok


async def test_a_schedule_not_yet_run_by_a_worker_is_described_from_its_input() -> None:
    async with env() as e:
        handle = await e.client.create_schedule(
            "later", report, Report("l", 1), cron="30 * * * *", paused=False
        )
        # (Read at once: the environment's worker may not have run it yet.)
        described = await handle.describe()
    assert described.next_run_at == datetime(2026, 12, 5, 12, 30, tzinfo=UTC)
    assert described.recent == [] and described.status == "running"


@pytest.mark.parametrize(
    ("options", "says"),
    [
        ({}, "needs exactly one of cron= (an expression) or every= (a timedelta)"),
        ({"cron": "0 * * * *", "every": timedelta(hours=1)}, "needs exactly one of"),
        ({"cron": "0 25 * * *"}, "25 is out of range for the hour field"),
        ({"every": timedelta(milliseconds=10)}, "every must be a timedelta of at least one"),
        ({"every": 60}, "every must be a timedelta"),
        ({"every": timedelta(days=999_999_999)}, "at most a hundred years"),
        ({"cron": "@daily", "timezone": "Mars/Olympus"}, "unknown time zone 'Mars/Olympus'"),
        ({"cron": "@daily", "overlap": "queue"}, "overlap must be 'skip' or 'allow'"),
        ({"cron": "@daily", "catchup_window": timedelta(seconds=9)}, "at least ten seconds"),
        # (timedelta.max had been taken, and list_schedules() then failed for all)
        ({"cron": "@daily", "catchup_window": timedelta.max}, "catchup_window must be at most"),
    ],
)
async def test_bad_input_is_refused_and_makes_nothing(
    options: dict[str, object], says: str
) -> None:
    async with env() as e:
        with pytest.raises(ValueError) as caught:
            await e.client.create_schedule("bad", report, Report("b", 1), **options)  # type: ignore[arg-type]
        assert says in str(caught.value)
        assert await e.client.list(workflow="perdure.schedule") == []


async def test_arguments_that_do_not_fit_the_workflow_are_refused() -> None:
    async with env() as e:
        with pytest.raises(TypeError, match="report"):
            await e.client.create_schedule("bad", report, cron="@daily")
        assert await e.client.list() == []


@pytest.mark.parametrize(
    ("window", "started", "missed"),
    [(timedelta(minutes=10), 1, 59), (timedelta(seconds=10), 0, 60)],
)
async def test_after_an_outage_one_run_for_the_latest_time_within_the_window(
    window: timedelta, started: int, missed: int
) -> None:
    """A schedule whose workers were away for an hour (its cursor an hour
    back, as a worker finds it then), on a minute's interval, at 12:00:30."""
    async with env() as e:
        await e.sleep(timedelta(seconds=30))
        spec = schedules.make_spec(
            e.client,
            "outage",
            report,
            (Report("x", 1),),
            cron=None,
            every=timedelta(minutes=1),
            timezone="UTC",
            task_queue="default",
            overlap="skip",
            catchup_window=window,
        )
        away = _schedule_spec.ScheduleState(cursor=e.now().timestamp() - 3600)
        await e.client.start(
            _schedule_workflow.schedule_workflow,
            spec,
            away,
            id=_schedule_spec.schedule_workflow_id("outage"),
        )
        await e.sleep(timedelta(seconds=1))
        described = await e.client.get_schedule("outage").describe()
        assert (described.runs_started, described.times_missed) == (started, missed)
        assert [r.workflow_id for r in described.recent] == (
            ["outage@2026-12-05T12:00:00Z"] if started else []
        )
        await e.sleep(timedelta(minutes=1))  # then on time again
        described = await e.client.get_schedule("outage").describe()
    assert described.recent[-1].workflow_id == "outage@2026-12-05T12:01:00Z"
    assert described.runs_started == started + 1


@workflow.defn
async def when_due(label: str) -> str:
    due = schedules.scheduled_time()
    return f"{label} due {due.isoformat() if due else None}"


async def test_a_run_reads_the_time_it_was_due() -> None:
    async with WorkflowEnvironment(workflows=[when_due], start_time=START) as e:
        handle = await e.client.create_schedule("due", when_due, "d", cron="0 13 * * *")
        await e.sleep(timedelta(hours=1, seconds=5))
        await handle.trigger()
        await e.sleep(timedelta(seconds=1))
        timed, triggered = (await handle.describe()).recent
        said = [await e.client.get_handle(r.workflow_id).result() for r in (timed, triggered)]
        alone = await e.execute(when_due, "x", id="not-scheduled")
    assert said[0] == "d due 2026-12-05T13:00:00+00:00"
    assert said[1].startswith("d due 2026-12-05T13:00:05.")  # (when it was asked for)
    assert alone == "x due None"


async def test_update_changes_the_times_and_the_arguments_from_now_on() -> None:
    async with env() as e:
        handle = await e.client.create_schedule(
            "moving", report, Report("a", 1), every=timedelta(hours=1)
        )
        await e.sleep(timedelta(minutes=61))  # 13:00
        await handle.update(cron="30 * * * *", timezone="Europe/Paris")
        await e.sleep(timedelta(seconds=1))
        moved = await handle.describe()
        assert (moved.cron, moved.every, moved.timezone) == ("30 * * * *", None, "Europe/Paris")
        assert moved.next_run_at == datetime(2026, 12, 5, 13, 30, tzinfo=UTC)
        await e.sleep(timedelta(minutes=30))  # 13:30
        await handle.update(workflow=report, args=(Report("b", 2),), overlap="allow")
        await handle.update(every=timedelta(hours=2))  # the arguments stay
        await e.sleep(timedelta(hours=1))  # 14:00
        described = await handle.describe()
        done = await results(e, described)
    assert described.every == timedelta(hours=2) and described.overlap == "allow"
    assert described.runs_started == 3  # counts kept across the updates
    assert done == [
        "a:1@2026-12-05T13:00+00:00",
        "a:1@2026-12-05T13:30+00:00",
        "b:2@2026-12-05T14:00+00:00",
    ]


async def test_a_bad_update_is_refused_or_ignored_never_fatal() -> None:
    async with env() as e:
        handle = await e.client.create_schedule(
            "steady", report, Report("s", 1), every=timedelta(hours=1)
        )
        with pytest.raises(ValueError, match="out of range for the hour field"):
            await handle.update(cron="0 25 * * *")
        with pytest.raises(TypeError, match="report"):
            await handle.update(args=(1, 2, 3), workflow=report)
        # A hand-made signal with a bad spec: logged and ignored.
        for changes in (
            {"cron": "x", "every": None},
            {"every": 0},
            {"every": -5},
            {"catchup_window": 0},
            {"task_queue": "elsewhere"},
            {"timezone": "Mars/Olympus"},
            [1],
        ):
            await handle.workflow_handle.signal(
                "perdure.schedule", {"op": "update", "changes": changes}
            )
        await e.sleep(timedelta(hours=1, minutes=1))
        described = await handle.describe()
    assert described.status == "running" and described.runs_started == 1
    assert described.every == timedelta(hours=1)


async def test_a_deploy_script_may_create_it_each_time() -> None:
    """if_exists: "keep" leaves an existing schedule as it is; "update"
    brings it to the arguments given, and sends nothing when they match."""
    async with env() as e:
        first = await e.client.create_schedule(
            "deployed", report, Report("v1", 1), cron="0 * * * *", if_exists="update"
        )
        kept = await e.client.create_schedule(
            "deployed", report, Report("v9", 9), cron="@daily", if_exists="keep"
        )
        await e.sleep(timedelta(seconds=1))
        assert (await kept.describe()).cron == "0 * * * *"
        await e.client.create_schedule(
            "deployed", report, Report("v2", 2), cron="30 * * * *", if_exists="update"
        )
        await e.sleep(timedelta(seconds=1))
        updated = await first.describe()
        assert updated.cron == "30 * * * *"
        run_id = (await first.workflow_handle.describe()).run_id
        await e.client.create_schedule(  # the same again: nothing to send
            "deployed", report, Report("v2", 2), cron="30 * * * *", if_exists="update"
        )
        await e.sleep(timedelta(minutes=31))  # 12:30
        assert (await first.workflow_handle.describe()).run_id == run_id  # (no update)
        described = await first.describe()
        done = await results(e, described)
        with pytest.raises(ValueError, match="runs on task queue 'default', not 'other'"):
            await e.client.create_schedule(
                "deployed", report, Report("v2", 2), cron="@daily", task_queue="other",
                if_exists="update",
            )  # fmt: skip
        with pytest.raises(ValueError, match="if_exists must be"):
            await e.client.create_schedule(
                "deployed",
                report,
                Report("v2", 2),
                cron="@daily",
                if_exists="replace",  # type: ignore[arg-type]
            )
    assert done == ["v2:2@2026-12-05T12:30+00:00"]


async def test_backfill_starts_the_times_of_a_range_once() -> None:
    async with env() as e:
        handle = await e.client.create_schedule(
            "daily", report, Report("b", 1), cron="0 2 * * *", paused=True
        )
        day = datetime(2026, 12, 1, tzinfo=UTC)
        runs = await handle.backfill(day, day + timedelta(days=2, hours=2))  # 1st, 2nd, 3rd
        again = await handle.backfill(
            day + timedelta(days=2), datetime(2026, 12, 3, 2)
        )  # naive: UTC
        done = [await e.client.get_handle(r.workflow_id).result() for r in runs]
        with pytest.raises(ValueError, match="more than 1000 times"):
            await handle.backfill(day - timedelta(days=3000), day)
        with pytest.raises(ValueError, match="before its start"):
            await handle.backfill(day, day - timedelta(days=1))
        await handle.delete()
        with pytest.raises(perdure.WorkflowClosedError, match="was deleted"):
            await handle.backfill(day, day)
    assert [r.workflow_id for r in runs] == [
        "daily@2026-12-01T02:00:00Z",
        "daily@2026-12-02T02:00:00Z",
        "daily@2026-12-03T02:00:00Z",
    ]
    assert all(r.skipped is None for r in runs)
    assert done == [
        "b:1@2026-12-05T12:00+00:00",  # (run now: the time is the id's)
        "b:1@2026-12-05T12:00+00:00",
        "b:1@2026-12-05T12:00+00:00",
    ]
    [kept] = again
    assert (
        kept.run_id == runs[2].run_id
        and kept.skipped == "daily@2026-12-03T02:00:00Z already has its run"
    )
