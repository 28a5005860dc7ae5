"""Several worker processes on one SQLite file: every workflow completes exactly
once, and steps run exactly once unless a SIGKILL cut their execution short."""

from __future__ import annotations

import time
from typing import Any

import pytest
from crash_harness import Cluster, check_executions

pytestmark = pytest.mark.slow


def start_all(cluster: Cluster, count: int, steps: int, delay: float) -> list[Any]:
    return [cluster.client.start("sequential", steps, delay, id=f"wf-{i}") for i in range(count)]


def all_completed(cluster: Cluster, count: int) -> bool:
    runs = cluster.client.list(limit=count + 10)
    assert len(runs) == count, f"{len(runs)} runs for {count} workflows"
    bad = [(r.id, r.status) for r in runs if r.status not in ("running", "completed")]
    assert not bad, f"runs that did not complete: {bad}\n{cluster.diagnostics()}"
    return all(r.status == "completed" for r in runs)


def check_results(handles: list[Any], steps: int) -> dict[str, list[dict[str, Any]]]:
    """Each run completed once with its own result; return the histories by id."""
    histories = {}
    for handle in handles:
        assert handle.result(timeout=5) == [f"{handle.id}#{n}" for n in range(1, steps + 1)]
        history = handle.history()
        types = [e["type"] for e in history]
        assert types.count("WorkflowStarted") == 1 and types.count("WorkflowCompleted") == 1
        assert types[-1] == "WorkflowCompleted", types
        assert types.count("ActivityScheduled") == types.count("ActivityCompleted") == steps
        histories[handle.id] = history
    return histories


def test_two_workers_share_one_sqlite_file(
    cluster: Cluster, record_property: pytest.RecordProperty
) -> None:
    count, steps = 200, 3
    workers = [cluster.start_worker(), cluster.start_worker()]
    # "ready" means imported; wait until both serve (registered, about to poll):
    # a worker still starting up while the other ran all 200 would prove nothing.
    cluster.wait_until(
        lambda: len(cluster.client.list_workers()) == 2, timeout=30, what="both workers to serve"
    )
    began = time.monotonic()
    handles = start_all(cluster, count, steps, delay=0.01)
    cluster.wait_until(
        lambda: all_completed(cluster, count),
        timeout=90,
        interval=0.1,
        what=f"{count} workflows to complete",
    )
    elapsed = time.monotonic() - began
    record_property("elapsed_s", round(elapsed, 2))

    histories = check_results(handles, steps)
    executions = cluster.executions()
    # No kill, so no step may run twice, and no attempt may be lost to an
    # expired lease (that would mean a live worker's lease ran out).
    assert check_executions(executions, histories, steps, killed_pids=set()) == []
    assert len(executions) == count * steps
    retried = [e for e in executions if e.attempt != 1]
    assert not retried, f"attempts beyond the first without any crash: {retried[:5]}"

    per_pid = {w.pid: 0 for w in workers}
    for e in executions:
        per_pid[e.pid] += 1
    print(f"{count} workflows x {steps} steps on 2 workers: {elapsed:.2f}s; split {per_pid}")
    assert all(per_pid.values()), f"a worker did no work: {per_pid}\n{cluster.diagnostics()}"
    assert all(w.alive() for w in workers)
    cluster.assert_no_tracebacks()


def test_one_of_two_workers_sigkilled_midway(cluster: Cluster) -> None:
    count, steps, max_activities = 50, 5, 8
    options = ("--max-activities", str(max_activities))
    victim, survivor = cluster.start_worker(*options), cluster.start_worker(*options)
    handles = start_all(cluster, count, steps, delay=0.05)

    def a_third_done() -> bool:
        by_pid = cluster.executions_by_pid()
        total = sum(len(v) for v in by_pid.values())
        return total >= count * steps // 3 and bool(by_pid.get(victim.pid))

    cluster.wait_until(
        a_third_done,
        timeout=60,
        interval=0.01,
        what="a third of the steps to run, some in the victim",
    )
    cluster.kill(victim)
    ran_in_victim = {(e.wf, e.step) for e in cluster.executions_by_pid()[victim.pid]}
    replacement = cluster.start_worker(*options)

    cluster.wait_until(
        lambda: all_completed(cluster, count),
        timeout=60,
        interval=0.1,
        what=f"{count} workflows to complete",
    )
    histories = check_results(handles, steps)
    executions = cluster.executions()
    # Every re-run step had an execution in the killed process, cut short there.
    duplicated = check_executions(executions, histories, steps, killed_pids={victim.pid})
    assert set(duplicated) <= ran_in_victim
    assert len(duplicated) <= max_activities, duplicated
    assert len(executions) == count * steps + len(duplicated)
    print(
        f"victim ran {len(ran_in_victim)} steps before SIGKILL; {len(duplicated)} re-ran: "
        f"{sorted(duplicated)}"
    )
    assert survivor.alive() and replacement.alive()
    cluster.assert_no_tracebacks()
