"""PostgreSQL restarts in the middle of a run: workers and clients reconnect and
carry on; every workflow completes exactly once and nothing is lost.

Runs on a private server started for the test (``private_server``), never on
the shared one. Around the restart, turns and activity completions that were
in flight fail with StoreError; their leases expire and they run again, which
is the at-least-once allowance: an activity may run again only as a new
attempt of a step whose completion was not recorded, never after it was.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from crash_harness import Cluster, check_executions

import perdure

pytestmark = pytest.mark.slow

COUNT, STEPS = 40, 6


def settled(cluster: Cluster) -> bool:
    """All runs completed; False (not an error) while the server is away."""
    try:
        runs = cluster.client.list(limit=COUNT + 10)
    except perdure.StoreError:
        return False
    assert len(runs) == COUNT, f"{len(runs)} runs for {COUNT} workflows"
    bad = [(r.id, r.status) for r in runs if r.status not in ("running", "completed")]
    assert not bad, f"runs that did not complete: {bad}"
    return all(r.status == "completed" for r in runs)


def test_a_postgres_restart_mid_run(private_cluster: Cluster, private_server: Any) -> None:
    cluster = private_cluster
    workers = [cluster.start_worker("--lease-timeout", "2") for _ in range(2)]
    # Both connected (registered) before the restart: a worker whose first
    # connection meets the restart waits for the server instead (see
    # test_open_while_restarting_pg.py); what is tested here is a run's.
    cluster.wait_until(
        lambda: len(cluster.client.list_workers()) == 2, timeout=30, what="both workers to serve"
    )
    handles = [cluster.client.start("sequential", STEPS, 0.05, id=f"wf-{i}") for i in range(COUNT)]

    def under_way() -> bool:
        return len(cluster.executions()) >= COUNT * STEPS // 3

    cluster.wait_until(under_way, timeout=30, interval=0.02, what="a third of the steps")
    before = len(cluster.executions())
    began = time.monotonic()
    private_server.restart()
    outage = time.monotonic() - began
    assert len(cluster.executions()) < COUNT * STEPS, "the run ended before the restart"

    cluster.wait_until(lambda: settled(cluster), timeout=60, interval=0.2, what="all workflows")
    histories = {}
    for handle in handles:
        assert handle.result(timeout=5) == [f"{handle.id}#{n}" for n in range(1, STEPS + 1)]
        history = handle.history()
        types = [e["type"] for e in history]
        assert types.count("WorkflowStarted") == types.count("WorkflowCompleted") == 1
        assert types.count("ActivityScheduled") == types.count("ActivityCompleted") == STEPS
        histories[handle.id] = history
    executions = cluster.executions()
    # Any worker's attempt may have been cut short by the restart (not only a
    # killed one's); check_executions still proves none ran after completion.
    rerun = check_executions(executions, histories, STEPS, killed_pids={w.pid for w in workers})
    assert len(executions) - COUNT * STEPS >= len(rerun)  # a step may even run thrice
    assert all(w.alive() for w in workers), "a worker died with the server"
    print(
        f"restart took {outage:.1f}s with {before}/{COUNT * STEPS} steps done; "
        f"{len(rerun)} step(s) ran again"
    )
