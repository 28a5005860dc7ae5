"""The monitoring loop over virtual days: many iterations, many runs, each run's
history bounded; the latest status is always readable by workflow id."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from perdure.testing import WorkflowEnvironment

from ..story import run_story
from .monitor import Health, MonitorConfig, Totals, check_disk, monitor, send_alert

CONFIG = MonitorConfig(path="/data", every_seconds=60, min_free_percent=10, max_history=100)


async def test_six_hours_of_checks_in_bounded_runs() -> None:
    calls: list[int] = []

    def fake_disk(path: str, min_free_percent: float) -> Health:
        calls.append(1)
        free = 5.0 if 100 <= len(calls) < 110 else 50.0  # low for ten checks, then cleaned up
        return Health(path, free, "ok" if free >= min_free_percent else "low")

    async with WorkflowEnvironment(
        [monitor], [check_disk, send_alert], activity_overrides={"check_disk": fake_disk}
    ) as env:
        await env.start(monitor, CONFIG, id="disk-monitor")
        latest = env.get_handle("disk-monitor")  # follows the chain to the current run

        await env.sleep(timedelta(hours=6))  # six virtual hours, a check a minute

        healthy = {"path": "/data", "free_percent": 50.0, "status": "ok"}
        assert await latest.state("latest") == healthy
        runs = await env.client.list(workflow="monitor", limit=1000)
        assert len(runs) > 10
        assert [r.status for r in runs[1:]] == ["continued_as_new"] * (len(runs) - 1)
        assert runs[0].status == "running" and runs[0].run_id == (await latest.describe()).run_id
        for run in runs:
            length = (await env.get_handle("disk-monitor", run.run_id).describe()).history_length
            assert length < CONFIG.max_history + 20, (run.run_id, length)  # one iteration past

        await latest.signal("stop")
        totals = Totals(**await latest.result())  # an untyped handle returns plain JSON

    assert totals == Totals(checks=len(calls), alerts=1, runs=len(runs), last_status="ok")
    assert len(calls) >= 6 * 60 - 1  # every minute, across every run


async def test_stop_ends_the_loop_at_once() -> None:
    async with WorkflowEnvironment([monitor], [check_disk, send_alert]) as env:
        handle = await env.start(monitor, MonitorConfig(path="/"), id="m")
        await env.sleep(timedelta(minutes=5))
        await handle.signal("stop")
        totals = await handle.result()
    assert totals.runs == 1 and 5 <= totals.checks <= 6


@pytest.mark.slow
def test_the_story_program(tmp_path: Path) -> None:
    # A rollover comes after about seven checks (40 events), every half
    # second: 4 s left no margin on a loaded machine (CI once saw 7 checks
    # and none); 6 s leaves a few checks' worth.
    printed = run_story("monitoring", tmp_path, "--seconds", "6")
    assert "continued as new after" in printed and "stopped: " in printed
