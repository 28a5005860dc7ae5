"""A reset run's first turn, cut by SIGKILL before and after its commit: the
turn's inputs, taken again from the new run's inbox, are taken once; the
steps before the point never run again; the step scheduled again keeps the
old run's idempotency key. ``reset_crash`` is shared with tests/postgres."""

from __future__ import annotations

from collections import Counter

import pytest
from crash_harness import Cluster

pytestmark = pytest.mark.slow

STEPS = 6


def reset_crash(cluster: Cluster, crash_at: str) -> None:
    old = cluster.client.start("sequential", STEPS, 0.02, id="wf-reset")
    # The first worker dies right after committing turn 4, which took step
    # 3's result and leased step 4 to itself; then an operator terminates
    # the stalled run and resets it: turn 4 is taken again.
    cluster.crash_worker_at("turn.after_commit:4")
    old.terminate("its worker is gone; reset")
    new = old.reset(reason="take it from step 4")
    ran_before = Counter(e.step for e in cluster.executions())
    assert set(ran_before) <= {1, 2, 3, 4} and all(n == 1 for n in ran_before.values())

    cluster.crash_worker_at(crash_at)

    cluster.start_worker()
    assert new.result(timeout=60) == [f"wf-reset#{n}" for n in range(1, STEPS + 1)]

    history = new.history()
    kinds = Counter(e["type"] for e in history)
    assert kinds["WorkflowReset"] == 1 and kinds["WorkflowStarted"] == 1
    completed = [e["ref"] for e in history if e["type"] == "ActivityCompleted"]
    assert completed == list(range(1, STEPS + 1))  # step 3's result taken once
    executions = cluster.executions()
    by_step = Counter(e.step for e in executions)
    assert by_step[1] == by_step[2] == by_step[3] == 1, by_step  # kept: never run again
    assert all(by_step[n] == 1 for n in range(5, STEPS + 1)), by_step
    # Step 4: perhaps begun by the first worker and by the second (each killed),
    # then run by the third: always under the old run's key.
    assert 1 <= by_step[4] <= 3
    keys = {e.key for e in executions if e.step == 4}
    assert keys == {f"wf-reset/{old.run_id}/4"}


@pytest.mark.parametrize("crash_at", ["turn.before_commit:1", "turn.after_commit:1"])
def test_a_reset_runs_first_turn_survives_sigkill(cluster: Cluster, crash_at: str) -> None:
    reset_crash(cluster, crash_at)
