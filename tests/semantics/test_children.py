"""Child workflows: results and failures reach the parent, a crash while
children run loses nothing, and parent close policies reach the children."""

from __future__ import annotations

import pytest
from semantics_harness import SemanticsCluster

import perdure


def _types(history: list[dict[str, object]]) -> list[object]:
    return [e["type"] for e in history]


def test_children_complete_and_fail_into_the_parent_across_a_crash(
    cluster: SemanticsCluster,
) -> None:
    worker = cluster.start()
    handle = cluster.client.start("family", 3, 0.5, id="fam")
    cluster.wait_until(lambda: len(cluster.side_events("step")) >= 2, 20, what="children running")
    cluster.kill(worker)
    cluster.start()
    result = handle.result(timeout=30)
    assert result == ["DONE KID-0", "DONE KID-1", "DONE KID-2", "ChildWorkflowError: failed"]
    parent = cluster.client.get_handle("fam").history()
    types = _types(parent)
    assert types.count("ChildWorkflowRequested") == 4
    assert types.count("ChildWorkflowStarted") == 4
    assert types.count("ChildWorkflowCompleted") == 3
    assert types.count("ChildWorkflowFailed") == 1
    for i in range(3):
        kid = cluster.client.get_handle(f"fam-kid-{i}")
        assert kid.describe().parent_run_id == handle.run_id
        # Each child's step completed once, whatever ran twice around the kill.
        assert _types(kid.history()).count("ActivityCompleted") == 1
    runs = [e for e in cluster.side_events("step") if e["tag"] == "kid-0"]
    assert 1 <= len(runs) <= 2


@pytest.mark.parametrize("policy", ["cancel", "terminate", "abandon"])
def test_parent_close_policy(cluster: SemanticsCluster, policy: str) -> None:
    worker = cluster.start()
    parent = cluster.client.start("guardian", policy, id=f"g-{policy}")
    child = cluster.client.get_handle(f"g-{policy}-child")
    cluster.wait_until(lambda: child_waiting(child), 20, what="the child to wait for its signal")
    cluster.kill(worker)  # the parent ends while no worker runs...
    parent.cancel()
    cluster.start()  # ...and the policy is applied when it does
    with pytest.raises(perdure.WorkflowCancelledError):
        parent.result(timeout=20)
    if policy == "cancel":
        with pytest.raises(perdure.WorkflowCancelledError):
            child.result(timeout=20)
        assert any(e["tag"] == "orphan-cleanup" for e in cluster.side_events("step"))
    elif policy == "terminate":
        with pytest.raises(perdure.WorkflowTerminatedError, match="parent"):
            child.result(timeout=20)
    else:
        assert child.describe().status == "running"
        child.terminate("test over")


def child_waiting(child: perdure.SyncWorkflowHandle[object]) -> bool:
    try:
        return child.describe().waiting_signals == ["never"]
    except perdure.WorkflowNotFoundError:
        return False
