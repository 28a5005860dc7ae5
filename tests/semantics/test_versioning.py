"""Versioning with workflow.patched: a run started on version 1 finishes on
version 2's code along the old branch; new runs take the new branch."""

from __future__ import annotations

from pathlib import Path

from semantics_harness import SemanticsCluster

V2 = Path(__file__).resolve().with_name("semantics_workloads_v2.py")


def test_old_runs_keep_the_old_branch_after_a_redeploy(cluster: SemanticsCluster) -> None:
    v1 = cluster.start()
    old = cluster.client.start("versioned_flow", "old", id="v-old")
    cluster.wait_until(lambda: old.describe().waiting_signals == ["go"], 20, what="run on v1")
    cluster.kill(v1)  # the deploy: v1 dies, v2 takes over
    cluster.start(module=V2)
    new = cluster.client.start("versioned_flow", "new", id="v-new")
    cluster.wait_until(lambda: new.describe().waiting_signals == ["go"], 20, what="run on v2")
    old.signal("go")
    new.signal("go")
    assert old.result(timeout=20) == "done old-a / v1"
    assert new.result(timeout=20) == "done new-a / v2"
    assert old.describe().last_error is None
    new_types = [e["type"] for e in new.history()]
    assert "PatchRecorded" in new_types
    assert "PatchRecorded" not in [e["type"] for e in old.history()]
    tags = sorted(e["tag"] for e in cluster.side_events("step"))
    assert tags == ["new-a", "new-audit", "old-a"]
