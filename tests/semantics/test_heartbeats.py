"""Heartbeats and timeouts: a heartbeating activity whose worker dies is
retried elsewhere from its last heartbeat; schedule-to-close and workflow
execution timeouts end things on time, even with no worker running then."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest
from semantics_harness import SemanticsCluster

import perdure
from perdure import RetryPolicy, activity, workflow


def test_stalled_activity_resumes_from_its_last_heartbeat(cluster: SemanticsCluster) -> None:
    worker = cluster.start()
    handle = cluster.client.start("heartbeat_flow", "job", 30)
    cluster.wait_until(
        lambda: len(cluster.side_events("chunk")) >= 15, 20, what="15 chunks of progress"
    )
    cluster.kill(worker)
    cluster.start()
    assert handle.result(timeout=30) == 30
    starts = cluster.side_events("crunch-start")
    assert [s["attempt"] for s in starts] == [1, 2]
    resumed = starts[1]["resume_from"]
    assert isinstance(resumed, int) and resumed >= 5, starts  # not from scratch
    chunks = [e["chunk"] for e in cluster.side_events("chunk")]
    assert sorted(set(chunks)) == list(range(1, 31))
    assert len(chunks) < 30 + 15  # only the work since the last heartbeat was redone
    # The killed attempt is on record: its lease expired, the second one succeeded.
    [done] = [e for e in handle.history() if e["type"] == "ActivityCompleted" and e["attempt"] == 2]
    lost, last = done["attempts"]
    assert (lost["attempt"], lost["error"]["type"], last["error"]) == (1, "LeaseExpired", None)
    assert lost["started_at"] < lost["ended_at"] <= last["started_at"]


def test_execution_timeout_fires_with_no_worker_alive(cluster: SemanticsCluster) -> None:
    worker = cluster.start()
    handle = cluster.client.start(
        "slow_poke", execution_timeout=timedelta(seconds=1.5), id="sleepy"
    )
    cluster.wait_until(lambda: handle.describe().pending_timers, 20, what="the sleep")
    cluster.kill(worker)
    cluster.start()
    with pytest.raises(perdure.WorkflowTimedOutError, match="execution timeout"):
        handle.result(timeout=20)
    assert handle.history()[-1]["type"] == "WorkflowTimedOut"
    assert handle.describe().pending_timers == []


@activity.defn(
    retry=RetryPolicy(initial_interval=timedelta(milliseconds=100), backoff=1.0),
    schedule_to_close_timeout=timedelta(seconds=0.6),
)
async def never_works() -> None:
    raise ConnectionError("still down")


@workflow.defn
async def bounded() -> str:
    try:
        await never_works()
    except perdure.ActivityError as exc:
        return f"{exc.cause.type} after {exc.attempt}: {exc.cause.message}"
    return "?"


async def test_schedule_to_close_bounds_all_retries(tmp_path: Path) -> None:
    client = await perdure.Client.connect(f"sqlite:///{tmp_path / 's2c.db'}")
    try:
        async with perdure.Worker(client, [bounded], [never_works], poll_interval=0.01):
            loop = asyncio.get_running_loop()
            started = loop.time()
            result = await client.execute(bounded, timeout=20)
            elapsed = loop.time() - started
        cause, rest = result.split(" after ", 1)
        attempts = int(rest.split(":", 1)[0])
        # The deadline ends the retries: with the last attempt's own failure when
        # the next could not start in time; or, when the next was due in time but
        # no worker took it before the deadline (a loaded machine), with a timeout
        # that names the failure the activity was retrying.
        retried = "failed: ConnectionError: still down)"
        assert cause == "ConnectionError" or (
            cause == "ActivityTimeoutError" and result.endswith(retried)
        ), result
        assert 3 <= attempts <= 7  # ~100 ms apart within 600 ms
        assert elapsed < 5
    finally:
        await client.close()
