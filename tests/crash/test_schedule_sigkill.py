"""A schedule's worker SIGKILLed while it starts a time's run (before or
after an activity's completion is recorded: the scheduled run's step, whose
completion comes before that of the start activity that made the run; or
the schedule's turn before or after its commit): the next worker takes the
schedule on, and each time still has one run."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from crash_harness import Cluster

pytestmark = pytest.mark.slow


CRASH_POINTS = [
    "activity.before_complete:1",
    "activity.after_complete:1",
    "turn.before_commit:2",
    "turn.after_commit:2",
]


@pytest.mark.parametrize("crash_at", CRASH_POINTS)
def test_a_schedule_survives_sigkill_while_it_starts_a_run(cluster: Cluster, crash_at: str) -> None:
    schedule_crash(cluster, crash_at)


def schedule_crash(cluster: Cluster, crash_at: str) -> None:
    """Shared with tests/postgres/test_schedule_pg.py."""
    client = cluster.client
    schedule = client.create_schedule(
        "beat", "sequential", 1, 0.0, every=timedelta(seconds=1), task_queue="default"
    )
    first = cluster.crash_worker_at(crash_at)

    cluster.start_worker()
    schedule.update(overlap="allow")  # (the blocking client's handle, too)
    cluster.wait_until(
        lambda: schedule.describe().overlap == "allow", timeout=60, what="the update"
    )
    cluster.wait_until(
        lambda: schedule.describe().runs_started >= 4, timeout=60, what="four scheduled runs"
    )
    described = schedule.describe()
    started = [r for r in described.recent if r.run_id is not None]
    ids = [r.workflow_id for r in started]
    assert len(set(ids)) == len(ids)
    # Every run of the workflow is one the schedule recorded (or one it
    # started after describe() looked): none started twice for one time,
    # none started and forgotten.
    runs = {r.id: r.run_id for r in client.list(workflow="sequential", limit=1000)}
    assert {wid: runs.get(wid) for wid in ids} == {r.workflow_id: r.run_id for r in started}
    assert all(wid > ids[-1] for wid in set(runs) - set(ids)), (runs, ids)
    for r in started:
        client.get_handle(r.workflow_id).result(timeout=30)
    # Each run's step ran; after the crash, at most once more (a step the
    # killed worker began and had not recorded runs again: at least once).
    ran = Counter(e.wf for e in cluster.executions())
    again = Counter(e.wf for e in cluster.executions() if e.pid != first.pid)
    assert all(ran[wid] >= 1 and again[wid] <= 1 for wid in ids), ran
    # Times before the schedule was made, backfilled through the blocking
    # client: started once; a second backfill of them starts nothing.
    end = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    first_fill = schedule.backfill(end - timedelta(seconds=2), end)
    assert len(first_fill) == 3 and not any(r.skipped for r in first_fill)
    assert all(r.skipped for r in schedule.backfill(end - timedelta(seconds=2), end))
