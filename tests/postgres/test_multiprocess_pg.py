"""Four worker processes share one PostgreSQL database; one is SIGKILLed mid-way.

Every workflow completes exactly once, and no step whose completion was
recorded runs again: a step runs twice only if its first execution was cut
short by the SIGKILL (the at-least-once allowance for attempts in flight).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from crash_harness import Cluster, check_executions

import perdure
import perdure.client

pytestmark = pytest.mark.slow

COUNT, STEPS, MAX_ACTIVITIES = 500, 10, 50


def live_workers(url: str) -> list[perdure.client.WorkerInfo]:
    async def query() -> list[perdure.client.WorkerInfo]:
        async with await perdure.Client.connect(url) as client:
            return await client.list_workers()

    return asyncio.run(query())


def completed(cluster: Cluster) -> bool:
    runs = cluster.client.list(limit=COUNT + 10)
    assert len(runs) == COUNT, f"{len(runs)} runs for {COUNT} workflows"
    bad = [(r.id, r.status) for r in runs if r.status not in ("running", "completed")]
    assert not bad, f"runs that did not complete: {bad[:5]}"
    return all(r.status == "completed" for r in runs)


def histories(cluster: Cluster, handles: list[Any]) -> dict[str, list[dict[str, Any]]]:
    """Each run completed once, with its own result; its history, by workflow id."""
    found = {}
    for handle in handles:
        assert handle.result(timeout=5) == [f"{handle.id}#{n}" for n in range(1, STEPS + 1)]
        history = handle.history()
        types = [e["type"] for e in history]
        assert types.count("WorkflowStarted") == types.count("WorkflowCompleted") == 1
        assert types[-1] == "WorkflowCompleted", types
        assert types.count("ActivityScheduled") == types.count("ActivityCompleted") == STEPS
        found[handle.id] = history
    return found


def test_four_workers_one_sigkilled(cluster: Cluster) -> None:
    # A lease longer than the harness default: a live worker starved of CPU by
    # three others and the server (2 cores) must not lose its leases.
    options = ("--max-activities", str(MAX_ACTIVITIES), "--lease-timeout", "4")
    workers = [cluster.start_worker(*options) for _ in range(4)]
    victim = workers[0]
    cluster.wait_until(
        lambda: {w.pid for w in live_workers(cluster.url)} == {w.pid for w in workers},
        timeout=10,
        what="the four workers in the registry",
    )
    began = time.monotonic()
    handles = [cluster.client.start("sequential", STEPS, 0.0, id=f"wf-{i}") for i in range(COUNT)]

    def a_third_done() -> bool:
        by_pid = cluster.executions_by_pid()
        return sum(map(len, by_pid.values())) >= COUNT * STEPS // 3 and bool(by_pid.get(victim.pid))

    cluster.wait_until(a_third_done, timeout=60, interval=0.02, what="a third of the steps")
    cluster.kill(victim)
    ran_in_victim = {(e.wf, e.step) for e in cluster.executions_by_pid()[victim.pid]}
    cluster.wait_until(
        lambda: completed(cluster), timeout=90, interval=0.2, what=f"{COUNT} workflows"
    )
    elapsed = time.monotonic() - began

    executions = cluster.executions()
    duplicated = check_executions(
        executions, histories(cluster, handles), STEPS, killed_pids={victim.pid}
    )
    assert set(duplicated) <= ran_in_victim
    assert len(duplicated) <= MAX_ACTIVITIES, duplicated
    assert len(executions) == COUNT * STEPS + len(duplicated)
    per_pid = {pid: len(done) for pid, done in cluster.executions_by_pid().items()}
    print(
        f"{COUNT} x {STEPS} steps on 4 workers in {elapsed:.1f}s; victim ran "
        f"{len(ran_in_victim)} before SIGKILL, {len(duplicated)} re-ran; split {per_pid}"
    )
    assert all(w.alive() for w in workers[1:])
    cluster.assert_no_tracebacks()
