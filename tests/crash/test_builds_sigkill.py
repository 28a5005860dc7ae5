"""Worker builds across a SIGKILL (docs/versioning.md, "Pinning runs to a
build"): a ``perdure worker --build-id b1`` process is killed right after
its run's first step completed; a worker of a new build, b2, whose code
would not replay that run's history, starts. The run, pinned to b1,
waits for a worker of b1 (b2 never takes its turn: no failed turn, no
execution by b2's process), and a restarted b1 worker finishes it: each
step ran once. A run started meanwhile goes to b2, the current build, and
runs b2's code."""

from __future__ import annotations

from pathlib import Path

import pytest
from crash_harness import Cluster

pytestmark = pytest.mark.slow

MODULE = Path(__file__).resolve().with_name("builds_workload.py")


def test_a_pinned_run_waits_for_its_build_across_a_sigkill(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = cluster.client
    old = client.start("order", id="old")
    monkeypatch.setenv("PERDURE_TEST_CODE", "1")
    cluster.crash_worker_at("activity.after_complete:1", "--build-id", "b1", module=MODULE)
    assert client.get_handle("old").describe().build_id == "b1"

    monkeypatch.setenv("PERDURE_TEST_CODE", "2")
    newer = cluster.start_worker("--build-id", "b2", module=MODULE)
    new = client.start("order", id="new")
    old.signal("ship", "now")
    new.signal("ship", "soon")
    assert new.result(timeout=60) == ["check@2", "reserve@2", "soon", "ship@2"]
    cluster.wait_until(
        lambda: old.describe().waiting_for_worker, timeout=30, what="the old run to wait for b1"
    )
    described = old.describe()
    assert described.status == "running" and described.last_error is None

    monkeypatch.setenv("PERDURE_TEST_CODE", "1")
    cluster.start_worker("--build-id", "b1", module=MODULE)
    assert old.result(timeout=60) == ["reserve@1", "now", "ship@1"]
    steps = sorted((e.wf, e.step, e.pid == newer.pid) for e in cluster.executions())
    # Each step of each run ran once; the new build's process ran only the new run's.
    assert steps == [
        ("new", 0, True),
        ("new", 1, True),
        ("new", 2, True),
        ("old", 1, False),
        ("old", 2, False),
    ]
    builds = [(b.build_id, b.current, b.open_runs) for b in client.builds("default")]
    assert builds == [("b2", True, 0), ("b1", False, 0)]
    cluster.assert_no_tracebacks()


def test_a_run_handed_to_the_ramping_build_across_a_sigkill(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """b2 ramps at 100% beside b1 (docs/versioning.md, "Ramping a new
    build"): a worker of b1 that claimed a new run is killed before it
    handed the run over. Nothing of the run ran on b1: once the lease runs
    out, another b1 worker hands it over, and b2 runs it from its start,
    each step once."""
    client = cluster.client
    client.set_current_build("default", "b1")
    client.set_ramping_build("default", "b2", 100)
    ramped = client.start("order", id="ramped")
    monkeypatch.setenv("PERDURE_TEST_CODE", "1")
    cluster.crash_worker_at("turn.before_handover:1", "--build-id", "b1", module=MODULE)
    assert ramped.describe().build_id is None  # (not handed over: the kill came first)
    monkeypatch.setenv("PERDURE_TEST_CODE", "2")
    canary = cluster.start_worker("--build-id", "b2", module=MODULE)
    monkeypatch.setenv("PERDURE_TEST_CODE", "1")
    cluster.start_worker("--build-id", "b1", module=MODULE)
    cluster.wait_until(
        lambda: ramped.describe().build_id == "b2", timeout=30, what="the run handed to b2"
    )
    ramped.signal("ship", "soon")
    assert ramped.result(timeout=60) == ["check@2", "reserve@2", "soon", "ship@2"]
    steps = sorted((e.wf, e.step, e.pid == canary.pid) for e in cluster.executions())
    assert steps == [("ramped", 0, True), ("ramped", 1, True), ("ramped", 2, True)]
    builds = [(b.build_id, b.current, b.ramp) for b in client.builds("default")]
    assert builds == [("b1", True, None), ("b2", False, 100.0)]
    cluster.assert_no_tracebacks()
